"""Runner labels, constraints and GPUs (services/scheduler/fleet.py).

``results.constraints`` (JSONB, the RUN's ``constraints``: only a runner whose labels contain them
claims its executions, ``constraints <@ labels``), ``results.gpus`` (the GPUs each execution asks),
``results.unschedulable`` (why no live runner can take the run, or null), ``details.gpu_ids`` (the device
ids an execution's runner gave it).  And ``runners``: each runner as its last heartbeat or claim told
it, so that any scheduler replica answers ``GET /runner/``.  All nullable, no default: no table rewritten.

Revision ID: 0017
Revises: 0016 (relinked at merge after 0016, the labels branch's)
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("results", sa.Column("constraints", postgresql.JSONB(), nullable=True))
    op.add_column("results", sa.Column("gpus", sa.Integer(), nullable=True))
    op.add_column("results", sa.Column("unschedulable", sa.Text(), nullable=True))
    op.add_column("details", sa.Column("gpu_ids", sa.JSON(), nullable=True))
    # the sweep's question: active runs that not every runner may take
    op.create_index("ix_results_placed", "results", ["id"], postgresql_where=sa.text(
        "(constraints IS NOT NULL OR gpus > 0) AND status IN ('QUEUED', 'RUNNING')"))
    op.create_table(
        "runners",
        sa.Column("id", sa.String(200), primary_key=True),
        sa.Column("labels", postgresql.JSONB(), nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("slots", sa.Integer(), nullable=True),
        sa.Column("busy", sa.Integer(), nullable=True),
        sa.Column("gpus", sa.JSON(), nullable=True),
        sa.Column("gpus_free", sa.Integer(), nullable=True),
        sa.Column("engine", sa.String(200), nullable=True),
        sa.Column("first_seen", sa.Float(), nullable=False),
        sa.Column("last_heartbeat", sa.Float(), nullable=False),
    )


def downgrade():
    op.drop_table("runners")
    op.drop_index("ix_results_placed", table_name="results")
    op.drop_column("details", "gpu_ids")
    op.drop_column("results", "unschedulable")
    op.drop_column("results", "gpus")
    op.drop_column("results", "constraints")
