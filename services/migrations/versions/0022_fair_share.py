"""Quotas and fair share (issue 18): each team's executions held by runners, and each execution's team.

``teams.active``: how many of the team's executions runners hold now (claimed and not ended), kept by
the claim and by every end of a claim in the transaction that changes the detail and its result, as
``results.active`` is (services/scheduler/executions/claims.py): the claim's fair share and
``max_running`` read it.  ``details.team``: the team of the detail's run, copied when the detail is
made, so that the claim's index (``ix_details_claimable``) starts at a team's claimable executions.
Both constant server defaults (``default``, 0): no table rewritten.  Existing details of a run of
another team (none unless the teams' code ran before this migration) are given their run's team.
``ix_results_team_active``: a team's QUEUED or RUNNING runs, which a RUN's ``max_queued`` counts.

Revision ID: 0022
Revises: 0021 (relinked at merge)
"""
from alembic import op
import sqlalchemy as sa

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None

CLAIMABLE = "status = 'QUEUED' AND runner IS NULL AND NOT waiting"


def upgrade():
    op.add_column("teams", sa.Column("active", sa.Integer(), nullable=False, server_default="0"))
    op.add_column("details", sa.Column("team", sa.String(63), nullable=False, server_default="default"))
    op.execute("UPDATE details d SET team = r.team FROM results r "
               "WHERE r.id = d.result_id AND r.team <> 'default'")
    # what runners hold now, per team (a deployment upgraded with executions running)
    op.execute("UPDATE teams t SET active = coalesce((SELECT sum(r.active) FROM results r "
               "WHERE r.team = t.name AND r.status IN ('QUEUED', 'RUNNING')), 0)")
    op.drop_index("ix_details_claimable", table_name="details")
    op.create_index("ix_details_claimable", "details", ["team", sa.text("priority DESC"), "seq"],
                    postgresql_where=sa.text(CLAIMABLE))
    op.create_index("ix_results_team_active", "results", ["team"],
                    postgresql_where=sa.text("status IN ('QUEUED', 'RUNNING')"))


def downgrade():
    op.drop_index("ix_results_team_active", table_name="results")
    op.drop_index("ix_details_claimable", table_name="details")
    op.create_index("ix_details_claimable", "details", [sa.text("priority DESC"), "seq"],
                    postgresql_where=sa.text(CLAIMABLE))
    op.drop_column("details", "team")
    op.drop_column("teams", "active")
