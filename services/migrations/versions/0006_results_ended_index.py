"""Index of the results that ended, by their end: the retention sweep's oldest first.

Revision ID: 0006
Revises: 0005
"""
from alembic import op
import sqlalchemy as sa

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade():
    op.create_index("ix_results_ended", "results", ["end"],
                    postgresql_where=sa.text("status IN ('COMPLETE', 'ERROR', 'CANCELLED', 'KILLED')"))


def downgrade():
    op.drop_index("ix_results_ended", table_name="results")
