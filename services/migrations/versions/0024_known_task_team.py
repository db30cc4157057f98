"""The team of each task in the scheduler's copy (``known_tasks.team``): a RUN is of its task's team.

A RUN by an admin or operator, whichever team it acts for, makes a run of the task's team (docs/api.md
"Tokens, roles and teams"); the scheduler learns the team from the registry's task events and
``task_facts``, as it learns the rest of the copy (services/scheduler/knowntasks.py).  Nullable, no
default: no table rewritten; a row from before (null) is not a confirmed copy, so the next RUN of its task
has the gateway ask the registry once, and the copy learns the team then.

Revision ID: 0024
Revises: 0019
"""
from alembic import op
import sqlalchemy as sa

revision = "0024"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("known_tasks", sa.Column("team", sa.String(63), nullable=True))


def downgrade():
    op.drop_column("known_tasks", "team")
