"""Per-execution parameters (a RUN's ``items`` or ``matrix``).

``details.params``: an execution's own parameters (``{"env"?, "command"?}``), merged over its run's
by the claim; null for an execution of a plain run.  ``results.execution_params``: what the RUN spread
over its executions (``{"items": [...]}`` or ``{"matrix": {...}}``), read only by the fan-out (and
an Idempotency-Key's comparison), never by a claim.  Both nullable, no default: adding them rewrites
no table.

Revision ID: 0015
Revises: 0014 (relinked at merge after the other branches' revisions)
"""
from alembic import op
import sqlalchemy as sa

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("details", sa.Column("params", sa.JSON(), nullable=True))
    op.add_column("results", sa.Column("execution_params", sa.JSON(), nullable=True))


def downgrade():
    op.drop_column("results", "execution_params")
    op.drop_column("details", "params")
