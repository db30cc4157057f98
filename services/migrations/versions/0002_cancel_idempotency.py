"""Cancel of single executions, idempotency keys, reruns of failed executions.

Revision ID: 0002
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("details", sa.Column("cancel_requested", sa.Boolean(), nullable=False,
                                       server_default=sa.false()))
    op.add_column("tasks", sa.Column("idempotency_key", sa.String(200), nullable=True))
    op.create_unique_constraint("uq_tasks_idempotency_key", "tasks", ["idempotency_key"])
    op.add_column("results", sa.Column("idempotency_key", sa.String(200), nullable=True))
    op.create_unique_constraint("uq_results_idempotency_key", "results", ["idempotency_key"])
    op.add_column("results", sa.Column("rerun_of", sa.String(32), nullable=True))
    op.add_column("results", sa.Column("reruns", sa.JSON(), nullable=False, server_default="[]"))


def downgrade():
    op.drop_column("results", "reruns")
    op.drop_column("results", "rerun_of")
    op.drop_constraint("uq_results_idempotency_key", "results")
    op.drop_column("results", "idempotency_key")
    op.drop_constraint("uq_tasks_idempotency_key", "tasks")
    op.drop_column("tasks", "idempotency_key")
    op.drop_column("details", "cancel_requested")
