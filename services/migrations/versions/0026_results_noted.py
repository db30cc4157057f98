"""A partial index of the active runs that say why they wait (``ix_results_noted``).

The fleet sweep (services/scheduler/fleet.py ``hold_teams``) clears the note of a run whose team's
``max_running`` was 0 once it is raised.  Without this index that query read every active run each
sweep; with it, only the few runs that have a note.

Revision ID: 0026
Revises: 0025
"""
from alembic import op
import sqlalchemy as sa

revision = "0026"
down_revision = "0025"
branch_labels = None
depends_on = None


INDEX = "ix_results_noted"


def upgrade():
    with op.get_context().autocommit_block():  # built concurrently: writes to results go on meanwhile
        invalid = op.get_bind().execute(sa.text(
            "SELECT 1 FROM pg_index JOIN pg_class ON pg_class.oid = indexrelid"
            " WHERE relname = :name AND NOT indisvalid"), {"name": INDEX}).first()
        if invalid:  # left by a build interrupted: IF NOT EXISTS would keep it
            op.drop_index(INDEX, table_name="results", postgresql_concurrently=True)
        op.create_index(INDEX, "results", ["id"], postgresql_where=sa.text(
            "unschedulable IS NOT NULL AND status IN ('QUEUED', 'RUNNING')"),
            postgresql_concurrently=True, if_not_exists=True)


def downgrade():
    op.drop_index(INDEX, table_name="results")
