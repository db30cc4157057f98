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

BATCH = 1000  # rows read (and their ``params`` text held) at a time


# for rows inserted by a scheduler of before (it does not set has_callback): see the module's docstring
MARK_FUNCTION = """
CREATE FUNCTION results_mark_callback() RETURNS trigger LANGUAGE plpgsql AS $$
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
    op.add_column("results", sa.Column("has_callback", sa.Boolean(), nullable=False,
                                       server_default=sa.text("false")))
    conn = op.get_bind()
    after = ""
    while True:
        rows = conn.execute(sa.text(
            "SELECT id, params::text AS params FROM results"
            " WHERE id > :after AND strpos(params::text, 'callback_url') > 0 ORDER BY id LIMIT :batch"),
            {"after": after, "batch": BATCH}).all()
        if not rows:
            break
        marked = [row.id for row in rows if row.params is not None and has_callback(row.params)]
        if marked:
            conn.execute(sa.text("UPDATE results SET has_callback = true WHERE id = ANY(:ids)"), {"ids": marked})
        after = rows[-1].id
    op.execute(MARK_FUNCTION)
    op.execute("CREATE TRIGGER results_mark_callback BEFORE INSERT ON results"
               " FOR EACH ROW EXECUTE FUNCTION results_mark_callback()")
    op.create_index("ix_results_webhook_untried", "results", ["end"],
                    postgresql_where=sa.text("has_callback AND webhook_status IS NULL"))


def downgrade():
    op.drop_index("ix_results_webhook_untried", table_name="results")
    op.execute("DROP TRIGGER results_mark_callback ON results")
    op.execute("DROP FUNCTION results_mark_callback()")
    op.drop_column("results", "has_callback")
