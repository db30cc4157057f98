"""Dependencies between runs: a RUN's ``after`` (services/scheduler/executions/dependencies.py).

``result_dependencies`` holds each condition (the run that waits, the run it
waits for, ``when``, ``per_index``), found by the run waited for when it, or one
of its executions, ends.  ``results.waiting_for`` lists the conditions still
unmet (shown by the API; the sweep re-checks the runs that have one);
``results.reason`` says why a rule ended a run.  ``details.waiting`` keeps an
execution out of the claim until its run's conditions hold for it: the claim's
partial index leaves such rows out, so runs that wait cost the claim nothing.
That index is built anew here: writes to ``details`` wait while it is built
(about a second per million queued executions).

Revision ID: 0013
Revises: 0012 (the lead relinks it after 0012 at merge)
"""
from alembic import op
import sqlalchemy as sa

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "result_dependencies",
        sa.Column("result_id", sa.String(32), sa.ForeignKey("results.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("after_result_id", sa.String(32), primary_key=True),
        sa.Column("when", sa.String(16), nullable=False),
        sa.Column("per_index", sa.Boolean(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
    )
    op.create_index("ix_result_dependencies_after", "result_dependencies", ["after_result_id"])
    op.add_column("results", sa.Column("waiting_for", sa.JSON(), nullable=True))
    op.add_column("results", sa.Column("reason", sa.Text(), nullable=True))
    op.add_column("results", sa.Column("released_at", sa.Float(), nullable=True))
    op.create_index("ix_results_waiting", "results", ["id"], postgresql_where=sa.text("waiting_for IS NOT NULL"))
    # a constant default: no rewrite of the table
    op.add_column("details", sa.Column("waiting", sa.Boolean(), nullable=False, server_default=sa.false()))
    # the claim's index, made anew without the rows that wait (none do yet)
    op.drop_index("ix_details_claimable", table_name="details")
    op.create_index("ix_details_claimable", "details", [sa.text("priority DESC"), "seq"],
                    postgresql_where=sa.text("status = 'QUEUED' AND runner IS NULL AND NOT waiting"))


def downgrade():
    op.drop_index("ix_details_claimable", table_name="details")
    op.create_index("ix_details_claimable", "details", [sa.text("priority DESC"), "seq"],
                    postgresql_where=sa.text("status = 'QUEUED' AND runner IS NULL"))
    op.drop_column("details", "waiting")
    op.drop_index("ix_results_waiting", table_name="results")
    op.drop_column("results", "released_at")
    op.drop_column("results", "reason")
    op.drop_column("results", "waiting_for")
    op.drop_index("ix_result_dependencies_after", table_name="result_dependencies")
    op.drop_table("result_dependencies")
