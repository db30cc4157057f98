"""Teams (issue 18): the ``teams`` table, and the team and maker of every task, result and schedule.

``teams``: a team's name, its fair-share ``weight`` and its quotas (``max_running``, ``max_queued``;
null: none).  Every task, result and schedule gets ``team`` (existing rows: ``default``, a constant
server default, so no table is rewritten) and ``submitted_by`` (the principal that made it; null for
rows made before principals).  Uniqueness of names and idempotency keys per team comes with the
principals' migration.

Revision ID: 0018
Revises: 0017
"""
from alembic import op
import sqlalchemy as sa

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

TABLES = ("tasks", "results", "schedules")


def upgrade():
    op.create_table(
        "teams",
        sa.Column("name", sa.String(63), primary_key=True),
        sa.Column("weight", sa.Float(), nullable=False, server_default="1"),
        sa.Column("max_running", sa.Integer(), nullable=True),
        sa.Column("max_queued", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
    )
    op.execute("INSERT INTO teams (name, weight, created_at) VALUES ('default', 1, extract(epoch from now()))")
    for table in TABLES:
        op.add_column(table, sa.Column("team", sa.String(63), nullable=False, server_default="default"))
        op.add_column(table, sa.Column("submitted_by", sa.String(200), nullable=True))
        op.create_index(f"ix_{table}_team", table, ["team"])


def downgrade():
    for table in TABLES:
        op.drop_index(f"ix_{table}_team", table_name=table)
        op.drop_column(table, "submitted_by")
        op.drop_column(table, "team")
    op.drop_table("teams")
