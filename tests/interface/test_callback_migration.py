"""Migration 0025 marks the runs that have a callback_url, reading rows PostgreSQL's JSON parser refuses too."""
import uuid

import pytest
from alembic import command
from sqlalchemy import create_engine, text

from stevedore_jobs.migrate import alembic_config, ensure_database
from tests.support import drop_database

INSERT = text("""
    INSERT INTO results (id, task_id, task_name, image, status, times, params, priority, submitted_at, created,
                         active, n_running, n_complete, n_error, n_cancelled, n_killed, cancel_requested,
                         finished_notified)
    SELECT :prefix || lpad(CAST(n AS text), 6, '0'), 't', 'task', 'img', 'COMPLETE', 1, CAST(:params AS json),
           5, 1.0, 1, 0, 0, 1, 0, 0, 0, false, true
    FROM generate_series(1, :count) AS n
""")

# as stored text: escapes PostgreSQL's json parser refuses at ->> (a lone surrogate, NUL), Python's accepts
STORED = {
    "hook": ('{"times": 1, "callback_url": "http://127.0.0.1:9/hook"}', True),
    "badhook": ('{"times": 1, "env": {"BAD": "\\ud800"}, "callback_url": "http://127.0.0.1:9/hook"}', True),
    "nulhook": ('{"times": 1, "env": {"NUL": "\\u0000"}, "callback_url": "http://127.0.0.1:9/hook"}', True),
    "badplain": ('{"times": 1, "env": {"BAD": "\\udfff", "WORD": "callback_url"}}', False),
    "nullhook": ('{"times": 1, "callback_url": null}', False),
    "plain": ('{"times": 1}', False),
}


BIG = '{"env": {"PAD": "%s"}, "callback_url": "http://127.0.0.1:9/hook"}' % ("x" * (17 * 1024 * 1024))
INDEX_DEF = text("SELECT indexdef, indisvalid FROM pg_indexes JOIN pg_class ON relname = indexname"
                 " JOIN pg_index ON indexrelid = pg_class.oid WHERE indexname = 'ix_results_webhook_untried'")


@pytest.fixture
def url():
    url = f"postgresql+psycopg2://postgres@127.0.0.1:5432/stevedore_test_{uuid.uuid4().hex[:10]}"
    ensure_database(url)
    yield url
    drop_database(url)


def migrate(url, revision, down=False):
    (command.downgrade if down else command.upgrade)(alembic_config(url), revision)


def marked(conn):
    return dict(conn.execute(text("SELECT id, has_callback FROM results")).all())


def test_runs_with_a_callback_url_are_marked_whatever_else_their_stored_params_hold(url):
    migrate(url, "0024")
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            for prefix, (params, _) in STORED.items():
                conn.execute(INSERT, {"prefix": prefix, "params": params, "count": 1})
            # more than one batch of the backfill (1000 rows), interleaved by id with the rest
            conn.execute(INSERT, {"prefix": "many", "params": STORED["hook"][0], "count": 2100})
            # a row bigger than the backfill's byte cap (16 MiB of params text read at a time) is read alone
            conn.execute(INSERT, {"prefix": "big", "params": BIG, "count": 1})
        with engine.connect() as conn, pytest.raises(Exception, match="surrogate"):  # what the sweeps met
            conn.execute(text("SELECT count(*) FROM results WHERE params->>'callback_url' IS NULL"))
        migrate(url, "0025")
        with engine.begin() as conn:
            flags = marked(conn)
        assert {prefix: flags[prefix + "000001"] for prefix in STORED} == \
            {prefix: expected for prefix, (_, expected) in STORED.items()}
        assert flags["big000001"] and sum(flags.values()) == 3 + 2100 + 1
        # a scheduler of before, still running during a rolling upgrade, inserts runs without the column: the
        # trigger marks them, but for one PostgreSQL cannot parse (a lone surrogate, a NUL: refused at the door)
        with engine.begin() as conn:
            for prefix, (params, _) in STORED.items():
                conn.execute(INSERT, {"prefix": "old" + prefix, "params": params, "count": 1})
            flags = marked(conn)
        assert {prefix: flags["old" + prefix + "000001"] for prefix in STORED} == \
            {prefix: expected and prefix not in ("badhook", "nulhook") for prefix, (_, expected) in STORED.items()}
        migrate(url, "0024", down=True)
        with engine.begin() as conn:
            columns = conn.execute(text("SELECT column_name FROM information_schema.columns"
                                        " WHERE table_name = 'results'")).scalars().all()
        assert "has_callback" not in columns
    finally:
        engine.dispose()


def test_the_migration_interrupted_after_its_first_commit_goes_on_when_run_again(url):
    migrate(url, "0025")
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            built = conn.execute(INDEX_DEF).one()
            conn.execute(INSERT, {"prefix": "hook", "params": STORED["hook"][0], "count": 3})
            # as left by a stop during the backfill's index build: the column and trigger committed, the
            # version still 0025's parent, some rows unmarked, an INVALID index (a failed CONCURRENTLY build)
            conn.execute(text("UPDATE results SET has_callback = false WHERE id = 'hook000002'"))
            conn.execute(text("DROP INDEX ix_results_webhook_untried"))
            with pytest.raises(Exception, match="could not create unique index"):
                conn.execute(text("CREATE UNIQUE INDEX CONCURRENTLY ix_results_webhook_untried ON results (task_id)"))
            assert conn.execute(INDEX_DEF).one().indisvalid is False
        command.stamp(alembic_config(url), "0024")
        migrate(url, "0025")
        with engine.connect() as conn:
            assert conn.execute(INDEX_DEF).one() == (built.indexdef, True)
            assert set(marked(conn).values()) == {True}
        migrate(url, "0024", down=True)
        migrate(url, "0025")
    finally:
        engine.dispose()
