"""Whether a run has a ``callback_url``, as a column of its own (``results.has_callback``).

The forgotten-webhook sweep and the retention sweep used to read it out of ``params`` with
``params ->> 'callback_url'`` for every candidate row.  ``params`` is JSON (not JSONB): PostgreSQL
stores the text as it was sent and parses it at each ``->>``, and one stored row holding an escape
its parser refuses (a lone surrogate ``"\\ud800"``, which an older version let in; ``"\\u0000"``)
failed the whole query, for every result: no forgotten webhook sent, no result ever deleted.  Now
the sweeps read the boolean, set when a result is made (services/scheduler/executions/submit.py).

The backfill never asks PostgreSQL to parse ``params``: it reads each row's text (``params::text``
is the stored text, unparsed) in batches by id, parses it in Python (whose ``json`` accepts lone
surrogates), and marks the rows that have one.  Only rows whose text names ``callback_url`` at all
are read: Stevedore writes ``params`` with Python's ``json.dumps``, which spells keys as they are.
A row whose text is no JSON object is left false (no webhook; retention may delete it once ended).

A trigger marks a run inserted unmarked whose ``params`` name a callback_url: a scheduler of before
still running during a rolling upgrade makes runs without knowing the column, and their webhooks
would otherwise never be sent.  It reads the stored text first (no parsing unless it names
``callback_url`` at all), and a row PostgreSQL cannot parse stays unmarked, as in the backfill.

A partial index (``ix_results_webhook_untried``) answers the forgotten-webhook sweep's query
without reading the ended results that have no webhook to send.

Services keep running through it: only the column (a constant default: no table rewrite) and the
trigger are made in the migration's transaction, which commits at once.  Then, in autocommit, the
backfill marks the rows in small transactions of their own (the trigger marks the runs inserted
meanwhile), holding at most ``BATCH_BYTES`` of ``params`` text (a larger row alone), and the index
is built CONCURRENTLY.  Run again after an interruption, it goes on: the column, function and
trigger are made if missing, the backfill marks what is left, and an index left INVALID by an
interrupted build is dropped and built again.

Revision ID: 0025
Revises: 0024
"""
import json

from alembic import op
import sqlalchemy as sa

revision = "0025"
down_revision = "0024"
branch_labels = None
depends_on = None

BATCH = 1000  # rows looked at (their ids and sizes) at a time
BATCH_BYTES = 16 * 1024 * 1024  # ``params`` text read and held at a time (a larger row is read alone)
INDEX = "ix_results_webhook_untried"


# for rows inserted by a scheduler of before (it does not set has_callback): see the module's docstring
MARK_FUNCTION = """
CREATE OR REPLACE FUNCTION results_mark_callback() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT NEW.has_callback AND strpos(NEW.params::text, 'callback_url') > 0 THEN
        BEGIN
            NEW.has_callback := coalesce(NEW.params ->> 'callback_url', '') <> '';
        EXCEPTION WHEN others THEN
            NULL;  -- stored text PostgreSQL's parser refuses: left unmarked
        END;
    END IF;
    RETURN NEW;
END
$$
"""


def has_callback(params_text):
    """Whether stored ``params`` text names a callback_url, as ``describe`` in webhooks.py reads it."""
    try:
        params = json.loads(params_text)
    except ValueError:
        return False
    return isinstance(params, dict) and bool(params.get("callback_url"))


def upgrade():
    # short: ACCESS EXCLUSIVE on results only for these statements, committed before the backfill
    op.execute("ALTER TABLE results ADD COLUMN IF NOT EXISTS has_callback boolean NOT NULL DEFAULT false")
    op.execute(MARK_FUNCTION)
    op.execute("DROP TRIGGER IF EXISTS results_mark_callback ON results")
    op.execute("CREATE TRIGGER results_mark_callback BEFORE INSERT ON results"
               " FOR EACH ROW EXECUTE FUNCTION results_mark_callback()")
    with op.get_context().autocommit_block():  # each statement below is a transaction of its own
        conn = op.get_bind()
        backfill(conn)
        invalid = conn.execute(sa.text(
            "SELECT 1 FROM pg_index JOIN pg_class ON pg_class.oid = indexrelid"
            " WHERE relname = :name AND NOT indisvalid"), {"name": INDEX}).first()
        if invalid:  # left by a build interrupted: IF NOT EXISTS would keep it
            op.drop_index(INDEX, table_name="results", postgresql_concurrently=True)
        op.create_index(INDEX, "results", ["end"], postgresql_where=sa.text("has_callback AND webhook_status IS NULL"),
                        postgresql_concurrently=True, if_not_exists=True)


def backfill(conn):
    """Mark the rows whose stored ``params`` text has a callback_url, reading at most BATCH_BYTES of it at once."""
    after = ""
    while True:
        sizes = conn.execute(sa.text(
            "SELECT id, octet_length(params::text) AS size FROM results"
            " WHERE id > :after AND NOT has_callback AND strpos(params::text, 'callback_url') > 0"
            " ORDER BY id LIMIT :batch"), {"after": after, "batch": BATCH}).all()
        if not sizes:
            return
        for ids in by_bytes(sizes):
            rows = conn.execute(sa.text("SELECT id, params::text AS params FROM results WHERE id = ANY(:ids)"),
                                {"ids": ids}).all()
            marked = [row.id for row in rows if row.params is not None and has_callback(row.params)]
            del rows
            if marked:
                conn.execute(sa.text("UPDATE results SET has_callback = true WHERE id = ANY(:ids)"),
                             {"ids": marked})
        after = sizes[-1].id


def by_bytes(sizes):
    """The ids of ``sizes`` (rows of id, size) in groups of at most BATCH_BYTES in all, or of one row."""
    group, total = [], 0
    for row in sizes:
        if group and total + row.size > BATCH_BYTES:
            yield group
            group, total = [], 0
        group.append(row.id)
        total += row.size
    if group:
        yield group


def downgrade():
    op.drop_index(INDEX, table_name="results", if_exists=True)
    op.execute("DROP TRIGGER IF EXISTS results_mark_callback ON results")
    op.execute("DROP FUNCTION IF EXISTS results_mark_callback()")
    op.drop_column("results", "has_callback")
