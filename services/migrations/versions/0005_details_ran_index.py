"""Index of the executions that ran (start and end known), for a result's duration percentiles.

Revision ID: 0005
Revises: 0004
"""
from alembic import op
import sqlalchemy as sa

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade():
    # GET /result/{id}/ reads p50/p95 of end - start over these rows only, from the index
    op.create_index("ix_details_ran", "details", ["result_id"], postgresql_include=["start", "end"],
                    postgresql_where=sa.text('start IS NOT NULL AND "end" IS NOT NULL'))


def downgrade():
    op.drop_index("ix_details_ran", table_name="details")
