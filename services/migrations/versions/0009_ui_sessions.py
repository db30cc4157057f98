"""Web UI sessions: the browser's cookie holds a session secret, no longer an API token.

Only the secret's sha256 is stored, with the hash of the API token it was
signed in with and its times (epoch seconds on the database's clock).  Written
by the registry alone.

Revision ID: 0009
Revises: 0008
"""
from alembic import op
import sqlalchemy as sa

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "ui_sessions",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("token_fingerprint", sa.String(64), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
    )
    op.create_index("ix_ui_sessions_expires_at", "ui_sessions", ["expires_at"])
    op.create_index("ix_ui_sessions_token_created", "ui_sessions", ["token_fingerprint", "created_at"])


def downgrade():
    op.drop_table("ui_sessions")
