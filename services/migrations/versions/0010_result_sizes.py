"""A run's memory and cpus as columns of their own, which the claim compares with a runner's ceilings.

The claim used to read them out of the ``params`` JSON of every candidate run:
one stored row whose JSON PostgreSQL cannot read (a lone surrogate escape that
an older version let in) then failed every claim of every runner.  Now the claim
never parses ``params``.  Unfinished runs are filled in here, row by row, and a
row that cannot be read is left empty (it runs with the runner's default).

Revision ID: 0010
Revises: 0009
"""
from alembic import op
import sqlalchemy as sa

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("results", sa.Column("memory_bytes", sa.BigInteger(), nullable=True))
    op.add_column("results", sa.Column("cpus", sa.Float(), nullable=True))
    op.execute("""
    DO $$
    DECLARE r record;
    BEGIN
        FOR r IN SELECT id FROM results WHERE status IN ('QUEUED', 'RUNNING') LOOP
            BEGIN
                UPDATE results SET
                    memory_bytes = CAST(substring(params->>'memory' from '^[0-9]+') AS numeric)
                        * CASE lower(right(params->>'memory', 1))
                            WHEN 'k' THEN 1024 WHEN 'm' THEN 1048576 WHEN 'g' THEN 1073741824 ELSE 1 END,
                    cpus = CAST(params->>'cpus' AS double precision)
                WHERE id = r.id;
            EXCEPTION WHEN others THEN
                NULL;  -- unreadable params: no size, the runner's default applies
            END;
        END LOOP;
    END $$;
    """)


def downgrade():
    op.drop_column("results", "cpus")
    op.drop_column("results", "memory_bytes")
