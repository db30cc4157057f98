"""Labels of runs and tasks (``labels``: ``{"project": "vision"}``, stevedore_jobs/contract/labels.py).

``results.labels`` and ``tasks.labels``: JSONB, ``{}`` when none, each with a GIN index (``jsonb_ops``) that
answers the lists' ``?label=`` filters (``labels @> '{"k": "v"}'`` and ``labels ? 'k'``).  A constant
default: adding the columns rewrites no table (PostgreSQL 11+); building the indexes reads each table once.

Revision ID: 0016
Revises: 0015
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade():
    for table in ("results", "tasks"):
        op.add_column(table, sa.Column("labels", postgresql.JSONB(), nullable=False,
                                       server_default=sa.text("'{}'::jsonb")))
        op.create_index(f"ix_{table}_labels", table, ["labels"], postgresql_using="gin")


def downgrade():
    for table in ("tasks", "results"):
        op.drop_index(f"ix_{table}_labels", table_name=table)
        op.drop_column(table, "labels")
