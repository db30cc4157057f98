"""GA4GH TES tasks (services/scheduler/tes.py, docs/tes.md).

``results.tes`` (JSONB): a run made by ``POST /ga4gh/tes/v1/tasks``: its TES document, the image each
executor runs (pinned once imported) and the imports it still waits for; null for any other run.
``details.tes_log`` (JSONB): what its runner reported of the task: each executor's log, the outputs, and
whether it failed as EXECUTOR_ERROR or SYSTEM_ERROR.  Both nullable, no default: no table rewritten.
An index of the TES runs, newest first (``GET /ga4gh/tes/v1/tasks``).

Revision ID: 0023
Revises: 0018 (relinked at merge)
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = "0023"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("results", sa.Column("tes", postgresql.JSONB(), nullable=True))
    op.add_column("details", sa.Column("tes_log", postgresql.JSONB(), nullable=True))
    op.create_index("ix_results_tes", "results", ["submitted_at", "id"],
                    postgresql_where=sa.text("tes IS NOT NULL"))


def downgrade():
    op.drop_index("ix_results_tes", table_name="results")
    op.drop_column("details", "tes_log")
    op.drop_column("results", "tes")
