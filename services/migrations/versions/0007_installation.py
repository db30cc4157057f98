"""This installation's id: one row, made once, that labels its containers.

Runners label every container with it, so a runner tells its own
installation's orphans (whose result may since have been deleted) from the
containers of another Stevedore installation sharing the Docker engine.

Revision ID: 0007
Revises: 0006
"""
from alembic import op
import sqlalchemy as sa

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "installation",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("one", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.UniqueConstraint("one"),
        sa.CheckConstraint("one", name="ck_installation_one_row"),
    )
    op.execute("INSERT INTO installation (id) VALUES (md5(random()::text || clock_timestamp()::text))")


def downgrade():
    op.drop_table("installation")
