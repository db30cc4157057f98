"""The audit log (issue 18): ``audit_log``, appended by every service that makes a change, in that
change's transaction (shared/audit.py); never updated; deleted only by the scheduler's retention sweep
(AUDIT_RETENTION_DAYS).  Indexes: by time (newest first, paging, retention) and per filter.

Revision ID: 0021
Revises: 0020 (relinked at merge)
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "audit_log",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("principal", sa.String(200), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("team", sa.String(63), nullable=True),
        sa.Column("address", sa.String(100), nullable=True),
        sa.Column("action", sa.String(61), nullable=False),
        sa.Column("target_type", sa.String(30), nullable=False),
        sa.Column("target_id", sa.String(200), nullable=True),
        sa.Column("summary", JSONB(), nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("outcome", sa.String(200), nullable=True),
    )
    op.create_index("ix_audit_log_at", "audit_log", ["at", "id"])
    op.create_index("ix_audit_log_principal", "audit_log", ["principal", "at"])
    op.create_index("ix_audit_log_team", "audit_log", ["team", "at"])
    op.create_index("ix_audit_log_action", "audit_log", ["action", "at"])
    op.create_index("ix_audit_log_target", "audit_log", ["target_type", "target_id", "at"])


def downgrade():
    op.drop_table("audit_log")
