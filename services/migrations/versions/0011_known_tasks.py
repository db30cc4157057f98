"""Registry and scheduler one-way: task versions, and the scheduler's own copy of its tasks.

``tasks.version`` rises with every change of a task's status; the registry's
task events carry it.  ``known_tasks`` is the scheduler's copy of what a RUN
needs of a task (status, name, digest), written only by the scheduler, and the
row a RUN and a task's DELETE lock in turn (services/scheduler/knowntasks.py).
Tasks deleted before this migration, whose results remain, are entered as
deleted, so that a run of theirs is not rerun.

Revision ID: 0011
Revises: 0010
"""
from alembic import op
import sqlalchemy as sa

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("tasks", sa.Column("version", sa.BigInteger(), nullable=False, server_default="0"))
    op.create_table(
        "known_tasks",
        sa.Column("task_id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(200), nullable=True),
        sa.Column("status", sa.String(16), nullable=True),
        sa.Column("digest", sa.String(400), nullable=True),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("deleted", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("learned_at", sa.Float(), nullable=False, server_default="0"),
    )
    op.execute("""
    INSERT INTO known_tasks (task_id, version, deleted)
    SELECT DISTINCT task_id, 0, true FROM results WHERE task_id NOT IN (SELECT id FROM tasks)
    """)


def downgrade():
    op.drop_table("known_tasks")
    op.drop_column("tasks", "version")
