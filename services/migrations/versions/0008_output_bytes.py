"""An execution's output kept as bytes, with how much of it is the stream's start.

stdout/stderr become bytea: a job's output is any bytes (a NUL, invalid UTF-8),
which PostgreSQL text cannot hold.  Existing text is converted losslessly
(its UTF-8 bytes).  ``*_head`` says how many of the kept bytes are the
stream's first bytes (the rest are its last bytes; ``*_total - length``
bytes were omitted between them).  Rows written before kept the tail of a
cut stream, so their head is 0 when cut, their whole length when not.  The
``*_truncated`` flags go: a stream was cut exactly when its total exceeds
what is kept.

Revision ID: 0008
Revises: 0007
"""
from alembic import op
import sqlalchemy as sa

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

STREAMS = ("stdout", "stderr")


def upgrade():
    for stream in STREAMS:
        op.execute(f"ALTER TABLE detail_logs ALTER COLUMN {stream} TYPE bytea "
                   f"USING convert_to({stream}, 'UTF8')")
        op.add_column("detail_logs", sa.Column(f"{stream}_head", sa.BigInteger(), nullable=False,
                                               server_default="0"))
        op.execute(f"UPDATE detail_logs SET {stream}_head = octet_length({stream}) "
                   f"WHERE NOT {stream}_truncated")
        op.drop_column("detail_logs", f"{stream}_truncated")


def downgrade():
    # text cannot hold every byte: non-ASCII and control bytes come back as escapes (\ooo)
    for stream in STREAMS:
        op.add_column("detail_logs", sa.Column(f"{stream}_truncated", sa.Boolean(), nullable=False,
                                               server_default=sa.false()))
        op.execute(f"UPDATE detail_logs SET {stream}_truncated = {stream}_total > octet_length({stream})")
        op.alter_column("detail_logs", f"{stream}_truncated", server_default=None)
        op.drop_column("detail_logs", f"{stream}_head")
        op.execute(f"ALTER TABLE detail_logs ALTER COLUMN {stream} TYPE text "
                   f"USING encode({stream}, 'escape')")
