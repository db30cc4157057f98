"""A run's failure policy: what stopped it, its failures counted, its deadline.

``ended_by`` is why the failure policy stopped a run ("max_failures" or
"deadline"; null otherwise): the run's status is derived from its counters, and
this makes one stopped by max_failures end ERROR and one stopped by its
deadline end KILLED, however its other executions ended.  ``n_failed`` counts
the executions that ended ERROR, or KILLED by their own timeout, after their
retries (what ``max_failures`` is compared with).  ``deadline_at`` is when the
deadline stops the run (null: no deadline, or not yet armed).  Existing rows get
nulls and 0: they have no policy.

Revision ID: 0014
Revises: 0013
"""
from alembic import op
import sqlalchemy as sa

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

ACTIVE = "status IN ('QUEUED', 'RUNNING')"


def upgrade():
    op.add_column("results", sa.Column("ended_by", sa.String(16), nullable=True))
    op.add_column("results", sa.Column("n_failed", sa.Integer(), nullable=False, server_default="0"))
    op.add_column("results", sa.Column("deadline_at", sa.Float(), nullable=True))
    # the deadline timer's query: active runs past their deadline, not yet stopped
    op.create_index("ix_results_deadline", "results", ["deadline_at"],
                    postgresql_where=sa.text(f"deadline_at IS NOT NULL AND ended_by IS NULL AND {ACTIVE}"))
    # the sweep's query: runs the policy stopped whose stop was cut short
    op.create_index("ix_results_stopping", "results", ["id"],
                    postgresql_where=sa.text(f"ended_by IS NOT NULL AND NOT cancel_requested AND {ACTIVE}"))


def downgrade():
    op.drop_index("ix_results_stopping", table_name="results")
    op.drop_index("ix_results_deadline", table_name="results")
    op.drop_column("results", "deadline_at")
    op.drop_column("results", "n_failed")
    op.drop_column("results", "ended_by")
