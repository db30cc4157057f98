"""What crosses between services, declared once: the work a runner claims, each runner report,
each event payload (``shared/events.py`` names the events) and the RPC replies another service reads.
A reply the gateway passes on as the HTTP answer (a task, a result, a detail) is the contract's own
model (``stevedore_jobs.contract``), not restated here.

pydantic v2 models.  A sender builds the model and sends ``wire(model)`` (its
``model_dump()``: nameko's serializer still sends plain JSON); a receiver
validates what it must not trust (``received``).  ``docs/events.md`` is
checked against the event models by a unit test.

Which RPCs only read is declared here too, with each RPC's reply
(``SCHEDULER_CALLS``, ``REGISTRY_CALLS``): a caller, which never imports
another service, asks those as transient messages (shared/rpc.py).
"""
import logging
from typing import Any, Literal, NamedTuple

from pydantic import Field, StrictInt, StrictStr, ValidationError

from shared import events
# the base, and the registry's messages, are declared apart and are part of this module's names
from shared.task_messages import (  # noqa: F401
    SessionEnded, TaskDeleted, TaskFacts, TaskImported, TaskImportFailed, TaskSubmitted, TokenRevoked)
from shared.wire import Message, received, wire  # noqa: F401
from stevedore_jobs.contract import AuditEntry, Detail, Logs, Result, Runner, Schedule, Task
from stevedore_jobs.contract.secrets import Secret
from stevedore_jobs.contract.items import merged
from stevedore_jobs.contract.teams import Team

log = logging.getLogger(__name__)

Number = int | float  # kept as sent: an int stays an int on the wire


# ---------------------------------------------------------------- scheduler -> runner

class WorkItem(Message):
    """One attempt of an execution, as a runner runs it: an entry of ``claim_executions``' reply (and each
    entry of ``runner_holdings``, with the execution's ``status``)."""

    detail_id: str
    result_id: str
    task_id: str
    index: int
    attempt: int
    image: str
    command: list[str] | str | None = None
    env: dict[str, str] = {}
    timeout: Number | None = None
    memory: str | int | None = None
    disk: str | None = None  # the most it may write to disk (RUN's ``disk``); None: the runner's default
    cpus: Number | None = None
    lease_seconds: Number
    # this installation's id, which labels the container (services/runner/reconcile.py)
    installation: str | None = None
    # the run's number of executions (a rerun's: the run it reruns), STEVEDORE_TIMES; None from an older
    # scheduler (the runner then sets none)
    times: int | None = None
    labels: dict[str, str] = {}  # the RUN's: on its containers as Docker labels user.stevedore/<key>
    # the GPU device ids this attempt gets, its own (RUN's ``gpus``; services/scheduler/fleet.py); None: none
    gpu_ids: list[str] | None = None
    # a GA4GH TES task ({"task": the TES document, "images": each executor's pinned image}): its executors
    # run in turn (services/runner/tes.py); None for any other run
    tes: dict[str, Any] | None = None
    # the values of the run's ``secret_env``, opened for this claim's reply alone (services/scheduler/secrets.py):
    # into the container's environment, never stored, logged or reported (``received_work``)
    secret_env: dict[str, str] = {}
    # whose run this is: its team and the principal that made it, copied by the runner into each event it sends
    # about the attempt (None from an older scheduler)
    team: str | None = None
    submitted_by: str | None = None

    @classmethod
    def of(cls, detail_id, result_id, task_id, index, attempt, image, params, lease_seconds, own=None, **more):
        """The work of an attempt of a run with ``params`` (the run's stored parameters) and ``own``
        (the execution's own, from items or a matrix: its env merged over the run's, its command instead)."""
        params = merged(params or {}, own)
        times, labels = params.get("run_times") or params.get("times"), params.get("labels") or {}
        return cls(detail_id=detail_id, result_id=result_id, task_id=task_id, index=index, attempt=attempt,
                   image=image, command=params.get("command"), env=params.get("env") or {}, **more,
                   timeout=params.get("timeout"), memory=params.get("memory"), cpus=params.get("cpus"),
                   disk=params.get("disk"),
                   lease_seconds=lease_seconds, times=times if isinstance(times, int) else None, labels=labels)


class RunnerInfo(Message):
    """What a runner tells of itself with each heartbeat and claim (``info``): the runner list's row
    (services/scheduler/fleet.py)."""

    labels: dict[str, str] = {}
    slots: int | None = None
    busy: int | None = None
    gpus: list[str] = []
    gpus_free: int | None = None
    engine: str | None = None
    # with a claim: the executions it runs now (the claim's fair share counts the others it holds in the
    # database as ended, their reports on their way: services/scheduler/executions/fairshare.py); None: not told
    held: list[str] | None = None
    # with a claim: made ahead by a runner whose slots are all busy (services/runner/ahead.py): not idle
    ahead: bool = False


class Holding(WorkItem):
    """An execution the database says a runner holds (``runner_holdings``)."""

    status: str


class ExecutionState(Message):
    """Who holds an execution now (``execution_states``, by detail id)."""

    attempt: int
    runner: str | None
    status: str


# ---------------------------------------------------------------- runner -> scheduler (events)

class ReportKey(Message):
    """What names the attempt a report is about; a report without it cannot be folded."""

    detail_id: StrictStr
    attempt: StrictInt


class ExecutionStarted(ReportKey):
    """``execution_started``: a container started."""

    runner: str
    start: Number
    container_id: str | None = None
    # whose run it is, as the claim's ``WorkItem`` said: for subscribers (the scheduler reads its own rows);
    # None from a runner or scheduler of before teams
    team: str | None = None
    submitted_by: str | None = None
    # the output so far when it started, as ``execution_output`` carries it (None: none yet, or a runner
    # from before; a scheduler from before keeps it as an unknown field)
    logs: dict[str, Any] | None = None


class ExecutionOutput(ReportKey):
    """``execution_output``: a running attempt's output so far, about once a second."""

    runner: str | None = None
    logs: dict[str, Any]
    # whose run it is, as the claim's ``WorkItem`` said: for subscribers (the scheduler reads its own rows);
    # None from a runner or scheduler of before teams
    team: str | None = None
    submitted_by: str | None = None


class ExecutionFinished(ReportKey):
    """``execution_finished``: an attempt ended.  Read field by field by the scheduler
    (``executions.reports.readable``): a field that cannot be stored is noted, never a lost outcome."""

    runner: str | None = None
    status: str
    exit_code: int | None = None
    reason: str | None = None
    start: Number | None = None
    end: Number | None = None
    container_id: str | None = None
    logs: dict[str, Any] | None = None
    # a TES task's: each executor's log, its outputs, and whether it failed as EXECUTOR_ERROR or SYSTEM_ERROR
    tes_log: dict[str, Any] | None = None
    # whose run it is, as the claim's ``WorkItem`` said: for subscribers (the scheduler reads its own rows);
    # None from a runner or scheduler of before teams
    team: str | None = None
    submitted_by: str | None = None


REPORTS_PER_MESSAGE = 256  # reports an ``execution_reports`` message carries at most (a runner sends fewer)


class ExecutionReport(Message):
    """One report of an ``execution_reports`` message: the event it would have been sent as, and its body
    (read as that event's is: ``ExecutionStarted``, or field by field as an ``ExecutionFinished``)."""

    event: Literal["execution_started", "execution_finished"]
    report: dict[str, Any]


class ExecutionReports(Message):
    """``execution_reports``: a runner's start and end reports of several executions, in the order it made
    them, coalesced into one persistent message (services/runner/reporting.py ``ReportBatches``)."""

    runner: str | None = None
    reports: list[ExecutionReport] = Field(max_length=REPORTS_PER_MESSAGE)


def owned(work):
    """Whose run a claimed (or held) work item is, as each runner event about the attempt says it."""
    return {"team": work.get("team"), "submitted_by": work.get("submitted_by")}


def finished_report(**fields):
    """An ``execution_finished`` report as sent.  Should a field not be what ``ExecutionFinished``
    says, it is sent as built all the same (and logged): the scheduler reads it field by field,
    so the attempt's outcome is never lost to a field."""
    try:
        return wire(ExecutionFinished(**fields))
    except ValidationError as exc:
        log.error("the report of execution %s (attempt %s) is sent as built, though not an "
                  "ExecutionFinished: %s", fields.get("detail_id"), fields.get("attempt"), exc)
        return fields


# ---------------------------------------------------------------- scheduler events and replies

class ResultSubmitted(Message):
    """``result_submitted``: a RUN was accepted; ``fanned_out`` when its executions were made with it."""

    result_id: str
    fanned_out: bool = False
    labels: dict[str, str] = {}  # the RUN's labels (absent from an older scheduler)
    team: str | None = None          # the team it belongs to (absent from an older service)
    submitted_by: str | None = None  # the principal that made it (None: made before principals)


class ExecutionsQueued(Message):
    """``executions_queued``: executions can be claimed; wakes the idle runners named in ``runners``,
    or every runner when it names none (sent without it)."""

    result_id: str
    count: int
    runners: list[str] | None = None
    team: str | None = None          # the team it belongs to (absent from an older service)
    submitted_by: str | None = None  # the principal that made it (None: made before principals)


class ResultCancelled(Message):
    """``result_cancelled``: a run was cancelled (runners stop what they hold of it); ``reason``: why its
    failure policy stopped it ("max_failures", "deadline"), or the sentence naming the dependency that can
    no longer hold (its result's ``reason``); absent for a cancel by its user."""

    result_id: str
    reason: str | None = None
    team: str | None = None          # the team it belongs to (absent from an older service)
    submitted_by: str | None = None  # the principal that made it (None: made before principals)


class ResultChanged(Message):
    """``result_changed``: a run's parallelism and/or priority was changed (PATCH /result/{id}/); ``changed``
    names the fields, ``previous`` their values before, ``parallelism`` and ``priority`` are the run's now."""

    result_id: str
    changed: list[str]
    previous: dict[str, int | None]
    parallelism: int | None
    priority: int
    team: str | None = None          # the team it belongs to (absent from an older service)
    submitted_by: str | None = None  # the principal that made it (None: made before principals)


class ExecutionCancelRequested(Message):
    """``execution_cancel_requested``: one execution was cancelled."""

    result_id: str
    detail_id: str
    team: str | None = None          # the team it belongs to (absent from an older service)
    submitted_by: str | None = None  # the principal that made it (None: made before principals)


class ResultReleased(Message):
    """``result_released``: a run that waited for others (its ``after``) had its first executions released."""

    result_id: str
    team: str | None = None          # the team it belongs to (absent from an older service)
    submitted_by: str | None = None  # the principal that made it (None: made before principals)


class ResultDeleted(Message):
    """``result_deleted``: an ended run was deleted, by DELETE (``expired`` false) or retention."""

    result_id: str
    task_id: str
    expired: bool
    team: str | None = None          # the team it belongs to (absent from an older service)
    submitted_by: str | None = None  # the principal that made it (None: made before principals)


class ScheduleFired(Message):
    """``schedule_fired``: a schedule's tick (or a run now) started a run."""

    schedule_id: str
    task_id: str
    result_id: str
    scheduled_for: float
    manual: bool = False
    missed: int = 0
    team: str | None = None          # the team it belongs to (absent from an older service)
    submitted_by: str | None = None  # the principal that made it (None: made before principals)


class ScheduleFailed(Message):
    """``schedule_failed``: a schedule's tick could not start a run (task not READY, the RUN refused)."""

    schedule_id: str
    task_id: str
    scheduled_for: float
    reason: str
    team: str | None = None          # the team it belongs to (absent from an older service)
    submitted_by: str | None = None  # the principal that made it (None: made before principals)


class BackboneProbe(Message):
    """``backbone_probe``: internal, the scheduler's own round trip through RabbitMQ."""

    instance: str
    at: float


# the payload model of each event, by (source, name)
EVENTS = {
    (events.REGISTRY, events.TASK_SUBMITTED): TaskSubmitted,
    (events.REGISTRY, events.TASK_IMPORTED): TaskImported,
    (events.REGISTRY, events.TASK_IMPORT_FAILED): TaskImportFailed,
    (events.REGISTRY, events.TASK_DELETED): TaskDeleted,
    (events.REGISTRY, events.TOKEN_REVOKED): TokenRevoked,
    (events.REGISTRY, events.SESSION_ENDED): SessionEnded,
    (events.SCHEDULER, events.RESULT_SUBMITTED): ResultSubmitted,
    (events.SCHEDULER, events.EXECUTIONS_QUEUED): ExecutionsQueued,
    (events.SCHEDULER, events.RESULT_FINISHED): Result,
    (events.SCHEDULER, events.RESULT_CANCELLED): ResultCancelled,
    (events.SCHEDULER, events.RESULT_CHANGED): ResultChanged,
    (events.SCHEDULER, events.EXECUTION_CANCEL_REQUESTED): ExecutionCancelRequested,
    (events.SCHEDULER, events.RESULT_DELETED): ResultDeleted,
    (events.SCHEDULER, events.RESULT_RELEASED): ResultReleased,
    (events.SCHEDULER, events.SCHEDULE_FIRED): ScheduleFired,
    (events.SCHEDULER, events.SCHEDULE_FAILED): ScheduleFailed,
    (events.SCHEDULER, events.BACKBONE_PROBE): BackboneProbe,
    (events.RUNNER, events.EXECUTION_STARTED): ExecutionStarted,
    (events.RUNNER, events.EXECUTION_FINISHED): ExecutionFinished,
    (events.RUNNER, events.EXECUTION_OUTPUT): ExecutionOutput,
    (events.RUNNER, events.EXECUTION_REPORTS): ExecutionReports,
}


# ---------------------------------------------------------------- RPCs other services call

class LogBytes(Message):
    """``get_log_bytes``: an execution's kept output, bytes exactly (base64), of the streams asked. A stream's
    ``_head`` bytes are its first, the rest its last; with ``since``, only what is kept past the offsets,
    ``<stream>_since`` saying where that starts.  The raw download and the log followers read it."""

    detail_id: str
    status: str
    attempt: int
    logs_attempt: int | None = None  # the attempt whose output this is (none kept yet: absent)
    encoding: Literal["base64"]
    stdout: str | None = None
    stdout_head: int | None = None
    stdout_total: int | None = None
    stdout_since: int | None = None
    stderr: str | None = None
    stderr_head: int | None = None
    stderr_total: int | None = None
    stderr_since: int | None = None


class ExecutionFigures(Message):
    """``execution_figures``: executions by status summed over every result, and what runners could claim now
    (the gateway's /metrics)."""

    executions: dict[str, int]
    queue_depth: int


class Call(NamedTuple):
    """An RPC another service calls: what it answers, and whether it only reads.

    A read changes nothing, so its request and reply travel as transient
    messages (shared/rpc.py): lost to a broker restart, it loses nothing.
    """

    reply: Any
    read: bool = False
    # its reply carries secrets (a claim's: ``WorkItem.secret_env``): sent transient, so RabbitMQ does not
    # write it to disk (it may still page it out under memory pressure); a reply lost is a claim handed back
    secret: bool = False
    # asked again anyway (a claim, a heartbeat): a request or reply lost to a broker restart costs nothing but
    # a retry, so both travel transient, never written to disk.  A claim the scheduler made whose reply was
    # lost is a claim the runner never heard of, handed back (services/runner/reconcile.py); a heartbeat lost
    # is followed by the next one well within the lease.
    repeated: bool = False


SCHEDULER_CALLS = {
    "run_task": Call(Result),
    "rerun_failed": Call(Result),
    "cancel_result": Call(Result),
    "change_result": Call(Result),          # PATCH /result/{id}/: parallelism and/or priority
    "delete_result": Call(None),
    "close_task": Call(None),               # a task's DELETE: closed to RUNs for good, or 409
    "cancel_detail": Call(Detail),
    "claim_executions": Call(list[WorkItem], secret=True, repeated=True),  # a runner's claim for its free slots
    "claim_execution": Call(WorkItem | None, secret=True, repeated=True),  # one: a runner before batch claims
    "heartbeat": Call(list[str], repeated=True),  # the ids the runner must stop
    "release_claim": Call(bool),
    "get_result": Call(Result, read=True),
    "list_results": Call(list[Result], read=True),
    "get_detail": Call(Detail, read=True),
    "list_details": Call(list[Detail], read=True),
    "get_logs": Call(Logs, read=True),  # served as it is: GET .../logs/
    "get_log_bytes": Call(LogBytes, read=True),
    "execution_figures": Call(ExecutionFigures, read=True),
    "list_runners": Call(list[Runner], read=True),  # GET /runner/
    "runner_holdings": Call(list[Holding], read=True),
    "execution_states": Call(dict[str, ExecutionState], read=True),
    "installation_id": Call(str | None, read=True),
    "ping": Call(str, read=True),
    # schedules (services/scheduler/schedules/)
    "create_schedule": Call(Schedule),
    "update_schedule": Call(Schedule),
    "delete_schedule": Call(None),
    "run_schedule": Call(Result),
    "get_schedule": Call(Schedule, read=True),
    "list_schedules": Call(list[Schedule], read=True),
    # GA4GH TES (services/scheduler/tes.py): a TES task as TES shows it ({"id": ...} once made)
    "create_tes_task": Call(dict[str, str]),
    "cancel_tes_task": Call(dict),
    "get_tes_task": Call(dict[str, Any], read=True),
    "list_tes_tasks": Call(dict[str, Any], read=True),
    # secrets (services/scheduler/secrets.py): never a value, nor a sealed one, in a reply
    "put_secret": Call(dict[str, Any]),  # {"created": bool, "secret": Secret}
    "delete_secret": Call(None),
    "get_secret": Call(Secret, read=True),
    "list_secrets": Call(list[Secret], read=True),
    "list_audit": Call(list[AuditEntry], read=True),  # GET /audit/ (services/scheduler/auditing.py)
    # teams (services/scheduler/teams.py)
    "create_team": Call(Team),
    "update_team": Call(Team),
    "delete_team": Call(None),
    "get_team": Call(Team, read=True),
    "list_teams": Call(list[Team], read=True),
}

REGISTRY_CALLS = {
    "create_task": Call(Task),
    "import_task": Call(Task),
    "delete_task": Call(None),
    "create_session": Call(dict[str, Any]),
    # principals and their tokens (services/registry/principals.py)
    "create_token": Call(dict[str, Any]),
    "revoke_token": Call(dict[str, Any]),
    "resolve_token": Call(Any, read=True),     # the gateway's question for a bearer token (cached <= 1s)
    "list_tokens": Call(list[dict[str, Any]], read=True),
    "team_names": Call(list[str], read=True),
    "revoke_session": Call(None),
    "get_task": Call(Task, read=True),
    "task_facts": Call(TaskFacts, read=True),
    "list_tasks": Call(list[Task], read=True),
    "count_team_tasks": Call(int, read=True),  # a team's DELETE: 409 while it has tasks
    "count_team_principals": Call(int, read=True),  # a team's DELETE: 409 while principals of it have live tokens
    "pull_credentials": Call(dict[str, str] | None, read=True),
    "tes_image": Call(TaskFacts),   # the task importing a TES executor's image (services/registry/tes.py)
    "check_session": Call(Any, read=True),
    "ping": Call(str, read=True),
}

CALLS = {"scheduler": SCHEDULER_CALLS, "registry": REGISTRY_CALLS}


def reads(service):
    """The RPCs of ``service`` that only read."""
    return frozenset(name for name, call in CALLS.get(service, {}).items() if call.read)


def transient_calls(service):
    """The RPCs of ``service`` asked and answered as transient messages: those that only read, and those asked
    again anyway (``repeated``)."""
    return frozenset(name for name, call in CALLS.get(service, {}).items() if call.read or call.repeated)


def secret_replies(service):
    """The RPCs of ``service`` whose replies carry secrets (answered as transient messages)."""
    return frozenset(name for name, call in CALLS.get(service, {}).items() if call.secret)


def received_work(payload, what="a claim's reply"):
    """A claim's reply read as a ``WorkItem`` (None when it cannot be), its ``secret_env`` checked apart:
    a reply that cannot be read is logged, and its secrets must not be in the log."""
    if not isinstance(payload, dict):
        return received(WorkItem, payload, what)
    secret_env = payload.get("secret_env") or {}
    work = received(WorkItem, {**payload, "secret_env": {}}, what)
    if work is None:
        return None
    if not isinstance(secret_env, dict) or not all(
            isinstance(key, str) and isinstance(value, str) for key, value in secret_env.items()):
        log.warning("%s dropped: its secret_env is not an object of strings (its values are not logged)", what)
        return None
    work.secret_env = dict(secret_env)
    return work
