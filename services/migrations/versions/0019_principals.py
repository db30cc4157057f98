"""Principals and their API tokens (issue 18); task names and idempotency keys unique per team.

``principals``: a named person or service with a role and a team (services/registry/principals.py).
``api_tokens``: a principal's tokens, each stored only as the sha256 of the token, with its times
(expiry, revocation, last use).  Both written by the registry.

The global unique constraints on ``tasks.name`` and on the idempotency keys of tasks, results and
schedules give way to the same per team, so that no answer tells one team another's names.

Revision ID: 0019
Revises: 0022 (relinked at merge)
"""
from alembic import op
import sqlalchemy as sa

revision = "0019"
down_revision = "0022"
branch_labels = None
depends_on = None

# (table, the global constraint made by an earlier migration, the columns now unique per team)
PER_TEAM = (
    ("tasks", "tasks_name_key", "name"),
    ("tasks", "uq_tasks_idempotency_key", "idempotency_key"),
    ("results", "uq_results_idempotency_key", "idempotency_key"),
    ("schedules", "uq_schedules_idempotency_key", "idempotency_key"),
)


def upgrade():
    op.create_table(
        "principals",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("team", sa.String(63), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=True),
        sa.Column("disabled", sa.Boolean(), nullable=False, server_default=sa.text("false")),
    )
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("principal", sa.String(200), sa.ForeignKey("principals.name"), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=True),
        sa.Column("expires_at", sa.Float(), nullable=True),
        sa.Column("revoked_at", sa.Float(), nullable=True),
        sa.Column("last_used_at", sa.Float(), nullable=True),
        sa.UniqueConstraint("token_hash", name="uq_api_tokens_token_hash"),
    )
    op.create_index("ix_api_tokens_principal", "api_tokens", ["principal"])
    op.create_index("ix_api_tokens_created_at", "api_tokens", ["created_at"])
    for table, constraint, column in PER_TEAM:
        op.drop_constraint(constraint, table)
        op.create_unique_constraint(f"uq_{table}_team_{column}", table, ["team", column])


def downgrade():
    for table, constraint, column in reversed(PER_TEAM):
        op.drop_constraint(f"uq_{table}_team_{column}", table)
        op.create_unique_constraint(constraint, table, [column])
    op.drop_table("api_tokens")
    op.drop_table("principals")
