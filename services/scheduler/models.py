"""Tables written by the scheduler service.

A result is one RUN; a detail is one execution of it.  The result keeps
per-status counters that change in the same transaction as its details, so
reading a result of 100,000 executions costs one row.
"""
from sqlalchemy import (JSON, BigInteger, Boolean, Float, ForeignKey, Index, Integer, LargeBinary, String, Text,
                        UniqueConstraint, text)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Result(Base):
    __tablename__ = "results"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    task_id: Mapped[str] = mapped_column(String(32), index=True)
    task_name: Mapped[str] = mapped_column(String(200))
    image: Mapped[str] = mapped_column(String(400))
    status: Mapped[str] = mapped_column(String(16), index=True)
    times: Mapped[int] = mapped_column(Integer)
    params: Mapped[dict] = mapped_column(JSON)
    priority: Mapped[int] = mapped_column(Integer, default=5)
    parallelism: Mapped[int | None] = mapped_column(Integer)
    # what the RUN asks of a runner (params' memory in bytes, cpus): the claim compares them
    # with a runner's ceilings without reading params (migration 0010)
    memory_bytes: Mapped[int | None] = mapped_column(BigInteger)
    cpus: Mapped[float | None] = mapped_column(Float)
    submitted_at: Mapped[float] = mapped_column(Float, index=True)
    start: Mapped[float | None] = mapped_column(Float)
    end: Mapped[float | None] = mapped_column(Float)
    # how many details exist; equals times once the fan-out is done
    created: Mapped[int] = mapped_column(Integer, default=0)
    # executions claimed by a runner and not yet finished (for parallelism)
    active: Mapped[int] = mapped_column(Integer, default=0)
    n_running: Mapped[int] = mapped_column(Integer, default=0)
    n_complete: Mapped[int] = mapped_column(Integer, default=0)
    n_error: Mapped[int] = mapped_column(Integer, default=0)
    n_cancelled: Mapped[int] = mapped_column(Integer, default=0)
    n_killed: Mapped[int] = mapped_column(Integer, default=0)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    idempotency_key: Mapped[str | None] = mapped_column(String(200))  # unique per team (migration 0019)
    # RERUN_FAILED links: the result this one reruns, and the reruns of this one
    rerun_of: Mapped[str | None] = mapped_column(String(32))
    reruns: Mapped[list] = mapped_column(JSON, default=list)
    finished_notified: Mapped[bool] = mapped_column(Boolean, default=False)
    # webhook to params["callback_url"] (services/scheduler/webhooks.py): None until
    # tried, then DELIVERING (held until webhook_lease), DELIVERED or FAILED
    webhook_status: Mapped[str | None] = mapped_column(String(16))
    # whether params has a callback_url, set when the result is made (migration 0025): the webhook and
    # retention sweeps filter on it, never parsing params (a stored row PostgreSQL's JSON parser refuses,
    # a lone surrogate escape an older version let in, would fail their query for every result)
    has_callback: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    webhook_deliveries: Mapped[list | None] = mapped_column(JSON)
    webhook_lease: Mapped[float | None] = mapped_column(Float)
    # the failure policy (services/scheduler/executions/policy.py, migration 0014): why it stopped
    # the run ("max_failures", "deadline"; None), the failures it counts, and when the deadline falls
    ended_by: Mapped[str | None] = mapped_column(String(16))
    n_failed: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    deadline_at: Mapped[float | None] = mapped_column(Float)
    # what a RUN's items or matrix give each execution, by position ({"items": [...]} or
    # {"matrix": {...}}; a rerun's: {"items": [...]}): read by the fan-out, never by a claim (0015)
    execution_params: Mapped[dict | None] = mapped_column(JSON, deferred=True)
    # RUN's ``after`` (migration 0013, services/scheduler/executions/dependencies.py): the conditions
    # not yet met while the run waits (None: none, or all held), and why a rule ended the run
    waiting_for: Mapped[list | None] = mapped_column(JSON(none_as_null=True))  # None: SQL NULL
    reason: Mapped[str | None] = mapped_column(Text)
    released_at: Mapped[float | None] = mapped_column(Float)  # when a run that waited was released
    # the schedule that started this run (services/scheduler/schedules/), None for a RUN (migration 0012)
    schedule_id: Mapped[str | None] = mapped_column(String(32), index=True)
    # the RUN's labels ({} if none; also in params when given), filtered by ?label= through the GIN
    # index (migration 0016, stevedore_jobs/contract/labels.py)
    labels: Mapped[dict] = mapped_column(JSONB, default=dict, server_default=text("'{}'::jsonb"))
    # RUN's ``constraints`` and ``gpus`` (migration 0017, services/scheduler/fleet.py): only a runner whose
    # labels contain the constraints and that has that many GPUs free claims its executions; why no live
    # runner can (None: one can, or it asks nothing)
    constraints: Mapped[dict | None] = mapped_column(JSONB(none_as_null=True))
    gpus: Mapped[int | None] = mapped_column(Integer)
    unschedulable: Mapped[str | None] = mapped_column(Text)
    # the team it belongs to and the principal that made it (migration 0018, shared/principals.py)
    team: Mapped[str] = mapped_column(String(63), index=True, default="default", server_default="default")
    submitted_by: Mapped[str | None] = mapped_column(String(200))
    # a GA4GH TES task's document, its executors' images and the imports it waits for (migration 0023,
    # services/scheduler/tes.py); None for any other run.  Deferred: read only by the TES routes and claims
    tes: Mapped[dict | None] = mapped_column(JSONB(none_as_null=True), deferred=True)

    __table_args__ = (
        UniqueConstraint("team", "idempotency_key", name="uq_results_team_idempotency_key"),
        Index("ix_results_labels", "labels", postgresql_using="gin"),
        # the fleet sweep's query: active runs not every runner may take (migration 0017)
        Index("ix_results_placed", "id", postgresql_where=text(
            "(constraints IS NOT NULL OR gpus > 0) AND status IN ('QUEUED', 'RUNNING')")),
        # the notes the fleet sweep clears once a team's max_running is raised (migration 0026)
        Index("ix_results_noted", "id", postgresql_where=text(
            "unschedulable IS NOT NULL AND status IN ('QUEUED', 'RUNNING')")),
        # the dependencies' sweep: runs still waiting
        Index("ix_results_waiting", "id", postgresql_where=text("waiting_for IS NOT NULL")),
        # the webhook timer's query: attempts due
        Index("ix_results_webhook_due", "webhook_lease",
              postgresql_where=text("webhook_status IN ('PENDING', 'DELIVERING')")),
        # the forgotten-webhook sweep's query: results with a callback_url never tried (migration 0025)
        Index("ix_results_webhook_untried", "end",
              postgresql_where=text("has_callback AND webhook_status IS NULL")),
        # the retention sweep's query: ended results, oldest end first
        Index("ix_results_ended", "end",
              postgresql_where=text("status IN ('COMPLETE', 'ERROR', 'CANCELLED', 'KILLED')")),
        # the deadline timer's query, and the sweep's of stops cut short (migration 0014)
        Index("ix_results_deadline", "deadline_at", postgresql_where=text(
            "deadline_at IS NOT NULL AND ended_by IS NULL AND status IN ('QUEUED', 'RUNNING')")),
        Index("ix_results_stopping", "id", postgresql_where=text(
            "ended_by IS NOT NULL AND NOT cancel_requested AND status IN ('QUEUED', 'RUNNING')")),
        # GA4GH TES tasks, newest first (migration 0023, services/scheduler/tes.py)
        Index("ix_results_tes", "submitted_at", "id", postgresql_where=text("tes IS NOT NULL")),
        # a team's active runs, whose queued executions a RUN's max_queued counts (migration 0022)
        Index("ix_results_team_active", "team", postgresql_where=text("status IN ('QUEUED', 'RUNNING')")),
    )


class Detail(Base):
    __tablename__ = "details"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, server_default=text("nextval('details_seq')"))
    result_id: Mapped[str] = mapped_column(String(32))
    task_id: Mapped[str] = mapped_column(String(32))
    index: Mapped[int] = mapped_column(Integer)
    priority: Mapped[int] = mapped_column(Integer, default=5)
    status: Mapped[str] = mapped_column(String(16))
    submitted_at: Mapped[float] = mapped_column(Float)
    start: Mapped[float | None] = mapped_column(Float)
    end: Mapped[float | None] = mapped_column(Float)
    exit_code: Mapped[int | None] = mapped_column(Integer)
    reason: Mapped[str | None] = mapped_column(Text)
    # the runner holding this execution (claimed or running), then the one that ran it
    runner: Mapped[str | None] = mapped_column(String(200))
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    container_id: Mapped[str | None] = mapped_column(String(80))
    lease_expires_at: Mapped[float | None] = mapped_column(Float)
    not_before: Mapped[float | None] = mapped_column(Float)
    attempts: Mapped[list] = mapped_column(JSON, default=list)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    # this execution's own parameters ({"env"?, "command"?}), merged over its run's; None: the run's (0015)
    params: Mapped[dict | None] = mapped_column(JSON)
    # its run's ``after`` does not hold yet (for it): not claimable (migration 0013)
    waiting: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    # the GPU device ids its runner gave its last attempt (migration 0017); None: none
    gpu_ids: Mapped[list | None] = mapped_column(JSON(none_as_null=True))
    # a TES task's executor logs, outputs and failure kind, as its runner reported them (migration 0023)
    tes_log: Mapped[dict | None] = mapped_column(JSONB(none_as_null=True), deferred=True)
    # its run's team, copied when it is made: the claim's index starts at a team's work (migration 0022)
    team: Mapped[str] = mapped_column(String(63), default="default", server_default="default")

    __table_args__ = (
        UniqueConstraint("result_id", "index", name="uq_details_result_index"),
        # the claim query: a team's executions queued, unclaimed, not waiting for another run, highest
        # priority first, oldest first (services/scheduler/executions/fairshare.py; migration 0022)
        Index(
            "ix_details_claimable", "team", text("priority DESC"), "seq",
            postgresql_where=text("status = 'QUEUED' AND runner IS NULL AND NOT waiting"),
        ),
        Index("ix_details_held", "lease_expires_at",
              postgresql_where=text("runner IS NOT NULL AND status IN ('QUEUED', 'RUNNING')")),
        # a result's duration percentiles: the executions that ran
        Index("ix_details_ran", "result_id", postgresql_include=["start", "end"],
              postgresql_where=text('start IS NOT NULL AND "end" IS NOT NULL')),
    )


class ResultDependency(Base):
    """One condition of a RUN's ``after``: ``result_id`` waits for ``after_result_id`` (migration 0013).

    Rows go with their run (ON DELETE CASCADE); the run waited for may be deleted once it ended.
    """
    __tablename__ = "result_dependencies"

    result_id: Mapped[str] = mapped_column(String(32), ForeignKey("results.id", ondelete="CASCADE"),
                                           primary_key=True)
    after_result_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    when: Mapped[str] = mapped_column(String(16))
    per_index: Mapped[bool] = mapped_column(Boolean, default=False)
    position: Mapped[int] = mapped_column(Integer, default=0)

    __table_args__ = (
        # what waits for a run that just ended (or one of whose executions did)
        Index("ix_result_dependencies_after", "after_result_id"),
    )


class DetailLog(Base):
    __tablename__ = "detail_logs"

    detail_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    # the logs are those of this attempt; totals count every byte the stream produced.
    # Output is bytes as the job wrote them (migration 0008).  Of the kept bytes, the first
    # ``*_head`` are the stream's first bytes and the rest its last; ``*_total - length``
    # bytes were omitted between them (a stream was cut exactly when that is above 0)
    attempt: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    stdout_total: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    stderr_total: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    stdout: Mapped[bytes] = mapped_column(LargeBinary, default=b"")
    stderr: Mapped[bytes] = mapped_column(LargeBinary, default=b"")
    stdout_head: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    stderr_head: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")


class Installation(Base):
    """One row: this installation's id, made by the migration (0007), labelling its containers."""
    __tablename__ = "installation"
    __table_args__ = (UniqueConstraint("one"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    one: Mapped[bool] = mapped_column(Boolean, default=True, server_default=text("true"))


class KnownTask(Base):
    """The scheduler's copy of what a RUN needs of a registry task (services/scheduler/knowntasks.py).

    Written from the registry's events and the facts the gateway hands on, each
    only over an older ``version``; ``deleted`` is final.  RUN and the task's
    DELETE lock this row in turn (migration 0011).
    """
    __tablename__ = "known_tasks"

    task_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[str | None] = mapped_column(String(16))  # None: a row made only to be locked
    digest: Mapped[str | None] = mapped_column(String(400))
    version: Mapped[int] = mapped_column(BigInteger)
    deleted: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    # epoch seconds on the database's clock when the registry last said so
    learned_at: Mapped[float] = mapped_column(Float, default=0, server_default="0")
    # the task's team, which its runs and schedules are of (migration 0024; None: not learned yet)
    team: Mapped[str | None] = mapped_column(String(63))


class Schedule(Base):
    """A task RUN on a cron schedule (services/scheduler/schedules/, migration 0012).

    ``next_run_at`` is the next tick (epoch seconds; None while suspended); the
    firing timer takes due rows ``FOR UPDATE SKIP LOCKED``, so one scheduler
    replica fires a tick, and moves ``next_run_at`` on in the same transaction
    that records the fire and makes the run.
    """
    __tablename__ = "schedules"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    task_id: Mapped[str] = mapped_column(String(32), index=True)
    name: Mapped[str | None] = mapped_column(String(200))
    cron: Mapped[str] = mapped_column(String(100))
    timezone: Mapped[str] = mapped_column(String(64))
    concurrency_policy: Mapped[str] = mapped_column(String(8))
    suspend: Mapped[bool] = mapped_column(Boolean, default=False)
    starting_deadline_seconds: Mapped[int | None] = mapped_column(Integer)
    run: Mapped[dict] = mapped_column(JSON)  # the RUN body (without operation), checked again at each fire
    created_at: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)
    next_run_at: Mapped[float | None] = mapped_column(Float)
    last_fire_at: Mapped[float | None] = mapped_column(Float)
    last_result_id: Mapped[str | None] = mapped_column(String(32))
    n_fired: Mapped[int] = mapped_column(Integer, default=0)
    n_skipped: Mapped[int] = mapped_column(Integer, default=0)
    n_missed: Mapped[int] = mapped_column(Integer, default=0)
    n_failed: Mapped[int] = mapped_column(Integer, default=0)
    idempotency_key: Mapped[str | None] = mapped_column(String(200))  # unique per team (migration 0019)
    # the team it belongs to and the principal that made it (migration 0018, shared/principals.py)
    team: Mapped[str] = mapped_column(String(63), index=True, default="default", server_default="default")
    submitted_by: Mapped[str | None] = mapped_column(String(200))

    __table_args__ = (
        UniqueConstraint("team", "idempotency_key", name="uq_schedules_team_idempotency_key"),
        # the firing timer's query: due schedules, earliest first
        Index("ix_schedules_due", "next_run_at", postgresql_where=text("NOT suspend AND next_run_at IS NOT NULL")),
    )


class ScheduleFire(Base):
    """One tick of a schedule (or a "run now"): FIRED with its result, SKIPPED, FAILED or MISSED.

    UNIQUE (schedule_id, scheduled_for) for ticks: the database makes a tick fire once.
    """
    __tablename__ = "schedule_fires"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    schedule_id: Mapped[str] = mapped_column(String(32), ForeignKey("schedules.id", ondelete="CASCADE"),
                                             index=True)
    scheduled_for: Mapped[float] = mapped_column(Float)
    fired_at: Mapped[float] = mapped_column(Float)
    manual: Mapped[bool] = mapped_column(Boolean, default=False)
    outcome: Mapped[str] = mapped_column(String(8))
    result_id: Mapped[str | None] = mapped_column(String(32))
    missed: Mapped[int] = mapped_column(Integer, default=0)  # earlier ticks not run (downtime)
    reason: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        Index("uq_schedule_fires_tick", "schedule_id", "scheduled_for", unique=True,
              postgresql_where=text("NOT manual")),
    )


class Runner(Base):
    """A runner as its last heartbeat or claim told it (services/scheduler/fleet.py, migration 0017).

    Written by any scheduler replica, at most every few seconds per runner; one not heard from for a
    lease is lost, and its row is deleted after a while.
    """
    __tablename__ = "runners"

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    labels: Mapped[dict] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    slots: Mapped[int | None] = mapped_column(Integer)
    busy: Mapped[int | None] = mapped_column(Integer)
    gpus: Mapped[list | None] = mapped_column(JSON)
    gpus_free: Mapped[int | None] = mapped_column(Integer)
    engine: Mapped[str | None] = mapped_column(String(200))
    first_seen: Mapped[float] = mapped_column(Float)
    last_heartbeat: Mapped[float] = mapped_column(Float)


class Team(Base):
    """A team (migration 0018): its fair-share weight and quotas (None: no quota).

    ``active``: its executions runners hold now (claimed, not ended; migration 0022), changed with
    ``results.active`` in the same transactions (services/scheduler/executions/claims.py, teams.py).
    """
    __tablename__ = "teams"

    name: Mapped[str] = mapped_column(String(63), primary_key=True)
    weight: Mapped[float] = mapped_column(Float, default=1.0, server_default="1")
    max_running: Mapped[int | None] = mapped_column(Integer)
    max_queued: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[float] = mapped_column(Float)
    active: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class Secret(Base):
    """A team's secret (migration 0020, services/scheduler/secrets.py): its value sealed by the gateway with
    STEVEDORE_CREDENTIALS_KEY (Fernet), opened only to answer the claim of an execution that names it."""
    __tablename__ = "secrets"

    team: Mapped[str] = mapped_column(String(63), primary_key=True)
    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    sealed: Mapped[str] = mapped_column(Text)
    created_at: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)
    created_by: Mapped[str | None] = mapped_column(String(200))
    updated_by: Mapped[str | None] = mapped_column(String(200))
