"""Secrets by reference (issue 18): the ``secrets`` table, written by the scheduler.

One row per (team, name): the value sealed with STEVEDORE_CREDENTIALS_KEY (a Fernet token, made by the
gateway), when it was created and last set, and by whom.  A run stores only the names it refers to
(``params.secret_env``).

Revision ID: 0020
Revises: 0023 (relinked at merge)
"""
from alembic import op
import sqlalchemy as sa

revision = "0020"
down_revision = "0023"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "secrets",
        sa.Column("team", sa.String(63), primary_key=True),
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("sealed", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=True),
        sa.Column("updated_by", sa.String(200), nullable=True),
    )


def downgrade():
    op.drop_table("secrets")
