"""Live logs: how many bytes each stream has produced, for which attempt.

Revision ID: 0003
Revises: 0002
"""
from alembic import op
import sqlalchemy as sa

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("detail_logs", sa.Column("attempt", sa.Integer(), nullable=False, server_default="0"))
    op.add_column("detail_logs", sa.Column("stdout_total", sa.BigInteger(), nullable=False, server_default="0"))
    op.add_column("detail_logs", sa.Column("stderr_total", sa.BigInteger(), nullable=False, server_default="0"))


def downgrade():
    op.drop_column("detail_logs", "stderr_total")
    op.drop_column("detail_logs", "stdout_total")
    op.drop_column("detail_logs", "attempt")
