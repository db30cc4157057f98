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


def upgrade():
    op.create_index("ix_results_noted", "results", ["id"], postgresql_where=sa.text(
        "unschedulable IS NOT NULL AND status IN ('QUEUED', 'RUNNING')"))


def downgrade():
    op.drop_index("ix_results_noted", table_name="results")
