"""Private-registry credentials of a task (sealed); webhook delivery state of a result.

Revision ID: 0004
Revises: 0003
"""
from alembic import op
import sqlalchemy as sa

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("tasks", sa.Column("credentials", sa.Text(), nullable=True))
    op.add_column("results", sa.Column("webhook_status", sa.String(16), nullable=True))
    op.add_column("results", sa.Column("webhook_deliveries", sa.JSON(), nullable=True))
    op.add_column("results", sa.Column("webhook_lease", sa.Float(), nullable=True))
    op.create_index("ix_results_webhook_due", "results", ["webhook_lease"],
                    postgresql_where=sa.text("webhook_status IN ('PENDING', 'DELIVERING')"))


def downgrade():
    op.drop_index("ix_results_webhook_due", table_name="results")
    op.drop_column("results", "webhook_lease")
    op.drop_column("results", "webhook_deliveries")
    op.drop_column("results", "webhook_status")
    op.drop_column("tasks", "credentials")
