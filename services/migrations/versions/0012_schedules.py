"""Schedules: a task RUN on a cron schedule, its fires, and the schedule that made a result.

``schedules`` (written only by the scheduler) holds each schedule and its next
tick; ``schedule_fires`` one row per tick (FIRED, SKIPPED, FAILED, MISSED) or
"run now", UNIQUE (schedule_id, scheduled_for) for ticks so that the database
makes a tick fire once whatever the number of scheduler replicas.
``results.schedule_id`` names the schedule that started a run (null for a RUN).

Revision ID: 0012
Revises: 0011
"""
from alembic import op
import sqlalchemy as sa

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "schedules",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("task_id", sa.String(32), nullable=False, index=True),
        sa.Column("name", sa.String(200), nullable=True),
        sa.Column("cron", sa.String(100), nullable=False),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("concurrency_policy", sa.String(8), nullable=False),
        sa.Column("suspend", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("starting_deadline_seconds", sa.Integer(), nullable=True),
        sa.Column("run", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.Column("next_run_at", sa.Float(), nullable=True),
        sa.Column("last_fire_at", sa.Float(), nullable=True),
        sa.Column("last_result_id", sa.String(32), nullable=True),
        sa.Column("n_fired", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("n_skipped", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("n_missed", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("n_failed", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("idempotency_key", sa.String(200), nullable=True),
    )
    op.create_unique_constraint("uq_schedules_idempotency_key", "schedules", ["idempotency_key"])
    op.create_index("ix_schedules_due", "schedules", ["next_run_at"],
                    postgresql_where=sa.text("NOT suspend AND next_run_at IS NOT NULL"))
    op.create_table(
        "schedule_fires",
        sa.Column("id", sa.BigInteger(), primary_key=True, autoincrement=True),
        sa.Column("schedule_id", sa.String(32), sa.ForeignKey("schedules.id", ondelete="CASCADE"),
                  nullable=False, index=True),
        sa.Column("scheduled_for", sa.Float(), nullable=False),
        sa.Column("fired_at", sa.Float(), nullable=False),
        sa.Column("manual", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("outcome", sa.String(8), nullable=False),
        sa.Column("result_id", sa.String(32), nullable=True),
        sa.Column("missed", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("reason", sa.Text(), nullable=True),
    )
    op.create_index("uq_schedule_fires_tick", "schedule_fires", ["schedule_id", "scheduled_for"], unique=True,
                    postgresql_where=sa.text("NOT manual"))
    op.add_column("results", sa.Column("schedule_id", sa.String(32), nullable=True))
    op.create_index("ix_results_schedule_id", "results", ["schedule_id"])


def downgrade():
    op.drop_index("ix_results_schedule_id", table_name="results")
    op.drop_column("results", "schedule_id")
    op.drop_table("schedule_fires")
    op.drop_table("schedules")
