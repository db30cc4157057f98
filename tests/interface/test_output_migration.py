"""Migration 0008 turns stored text output into its bytes, losing nothing, and back."""
import uuid

from alembic import command
from sqlalchemy import create_engine, text

from stevedore_jobs.migrate import alembic_config, ensure_database
from tests.support import drop_database


def migrate(url, revision, down=False):
    (command.downgrade if down else command.upgrade)(alembic_config(url), revision)


def test_text_output_becomes_its_utf8_bytes_with_the_head_it_had():
    url = f"postgresql+psycopg2://postgres@127.0.0.1:5432/stevedore_test_{uuid.uuid4().hex[:10]}"
    ensure_database(url)
    engine = create_engine(url)
    try:
        migrate(url, "0007")
        with engine.begin() as conn:
            conn.execute(text(
                "INSERT INTO detail_logs (detail_id, attempt, stdout, stderr, stdout_truncated,"
                " stderr_truncated, stdout_total, stderr_total)"
                " VALUES ('d1', 1, 'caf\u00e9 \u2713', 'tail only', false, true, 7, 500)"))
        migrate(url, "0008")
        with engine.begin() as conn:
            row = conn.execute(text("SELECT stdout, stderr, stdout_head, stderr_head FROM detail_logs")).one()
        assert bytes(row.stdout) == "caf\u00e9 \u2713".encode() and bytes(row.stderr) == b"tail only"
        assert (row.stdout_head, row.stderr_head) == (len("caf\u00e9 \u2713".encode()), 0)
        migrate(url, "0007", down=True)
        with engine.begin() as conn:
            row = conn.execute(text("SELECT stderr, stdout_truncated, stderr_truncated FROM detail_logs")).one()
        assert (row.stderr, row.stdout_truncated, row.stderr_truncated) == ("tail only", False, True)
    finally:
        engine.dispose()
        drop_database(url)
