"""What the API answers: tasks, results, details, logs, health, and the error shape."""
from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, create_model

from stevedore_jobs.contract.statuses import ExecutionStatus, TaskStatus, WebhookStatus

Epoch = Optional[float]
TEAM_OF = "the team it belongs to"
SUBMITTED_BY = "the principal that made it (null: made before principals)"


class Answer(BaseModel):
    # answers may grow fields (never lose them): a client reads what it knows
    model_config = ConfigDict(extra="allow")


class Error(Answer):
    """Every error: ``{"error": CODE, "message": "field: what is wrong"}``."""

    error: str = Field(description="VALIDATION_ERROR, UNAUTHORIZED, FORBIDDEN, NOT_FOUND, "
                                   "METHOD_NOT_ALLOWED, CONFLICT, TOO_MANY_REQUESTS, UNAVAILABLE, "
                                   "PAYLOAD_TOO_LARGE, ...")
    message: str = Field(description="names the field first: `times: must be an integer from 1 to 100000`")


class Task(Answer):
    task_id: str
    id: str = Field(description="the same as task_id")
    name: str
    repository: str
    status: TaskStatus
    error: Optional[str] = Field(description="why the import failed (status ERROR)")
    digest: Optional[str] = Field(description="repo@sha256:... that executions run")
    image_id: Optional[str]
    created_at: float
    updated_at: float
    imported_at: Epoch
    private: bool = Field(description="whether the task has registry credentials (never shown)")
    labels: dict[str, str] = Field(default_factory=dict, description="the task's labels (`{}` if none)")
    team: Optional[str] = Field(None, description=TEAM_OF)
    submitted_by: Optional[str] = Field(None, description=SUBMITTED_BY)


class RunParams(Answer):
    """What a run was run with (a run stored by an older version may lack some)."""

    times: Optional[int] = None
    command: Optional[list[str] | str] = Field(
        None, description="the words run; a string only in a run stored before a command string was "
                          "split into words at submit")
    env: Optional[dict[str, str]] = None
    timeout: Optional[float] = None
    parallelism: Optional[int] = None
    retries: Optional[int] = None
    memory: Optional[str] = None
    disk: Optional[str] = None
    cpus: Optional[float] = None
    priority: Optional[int] = None
    callback_url: Optional[str] = None
    max_failures: Optional[int] = None
    retry_on_exit_codes: Optional[list[int]] = None
    no_retry_on_exit_codes: Optional[list[int]] = None
    deadline: Optional[float] = None
    per_execution: Optional[Literal["items", "matrix"]] = Field(
        None, description="with items or a matrix: each execution has parameters of its own (its detail's "
                          "`params`)")
    after: Optional[list["Condition"]] = Field(None, description="the runs this one waits for (absent if none)")
    labels: Optional[dict[str, str]] = Field(None, description="the RUN's labels (absent if none)")
    secret_env: Optional[dict[str, str]] = Field(
        None, description="variable -> the name of the secret it is given (never a value; absent if none)")
    per_index: Optional[bool] = Field(None, description="execution i waits for execution i of each (with after)")
    constraints: Optional[dict[str, str]] = Field(None, description="runner labels it needs (absent if none)")
    gpus: Optional[int] = Field(None, description="GPUs each execution gets (absent if none asked)")


class Condition(Answer):
    """One condition of a RUN's ``after``."""

    result_id: str = Field(description="the run waited for")
    when: Literal["COMPLETE", "ENDED"] = Field(description="COMPLETE: once it ended COMPLETE; ENDED: once it ended")


class Durations(Answer):
    p50: Optional[float] = Field(description="median seconds of the executions that ran")
    p95: Optional[float]


class Delivery(Answer):
    attempt: int
    at: float
    outcome: str


class Webhook(Answer):
    url: str
    status: WebhookStatus
    delivered: bool
    deliveries: list[Delivery]
    next_attempt_at: Epoch


class Result(Answer):
    result_id: str
    id: str = Field(description="the same as result_id")
    task_id: str
    task_name: Optional[str]
    status: ExecutionStatus
    submitted_at: float
    start: Epoch = Field(description="the first execution's start")
    end: Epoch = Field(description="the last one's end, once the run ended")
    duration: Epoch = Field(description="end - start")
    times: int
    image: Optional[str] = Field(description="the digest its executions run")
    params: RunParams
    counts: dict[ExecutionStatus, int] = Field(description="executions per status")
    cancel_requested: bool
    rerun_of: Optional[str] = Field(description="the result this one reran")
    reruns: list[str] = Field(description="results rerunning this one's failures")
    waiting_for: Optional[list[Condition]] = Field(
        None, description="the conditions of `params.after` not yet met while the run waits (QUEUED); null once "
                          "they all hold, or when it has none")
    reason: Optional[str] = Field(None, description="why a rule ended the run: \"max_failures\" or \"deadline\" "
                                                    "(its failure policy, set from that moment), or a sentence naming "
                                                    "a dependency that can no longer hold; else null")
    deadline_at: Epoch = Field(None, description="when its `deadline` stops it (null without a deadline, or "
                                                 "while it waits for other runs)")
    parallelism: Optional[int] = Field(None, description="the run's parallelism now (`params` keeps what it "
                                                         "was run with; PATCH changes this); null: no limit")
    priority: Optional[int] = Field(None, description="the priority of its executions not yet started, now")
    durations: Optional[Durations] = Field(None, description="GET /result/{id}/ only")
    webhook: Optional[Webhook] = Field(None, description="GET /result/{id}/ only; null without callback_url")
    schedule_id: Optional[str] = Field(None, description="the schedule that started this run; null for a RUN")
    labels: dict[str, str] = Field(default_factory=dict, description="the RUN's labels (`{}` if none; "
                                                                     "`params.labels` too when given)")
    unschedulable: Optional[str] = Field(
        None, description="while it is QUEUED: why no live runner can take it (none has the labels of its "
                          "`constraints`, or its `gpus`; or its team's `max_running` is 0); null once one can "
                          "(it starts when one claims it)")
    team: Optional[str] = Field(None, description=TEAM_OF)
    submitted_by: Optional[str] = Field(None, description=SUBMITTED_BY + "; a schedule's fire: the schedule's maker")


class ExecutionParams(Answer):
    """One execution's own parameters: its env merged over the run's, its command in place of the run's."""

    env: Optional[dict[str, str]] = None
    command: Optional[list[str]] = None


class Attempt(Answer):
    attempt: Optional[int] = None
    runner: Optional[str] = None
    status: Optional[ExecutionStatus] = None
    exit_code: Optional[int] = None
    reason: Optional[str] = None
    start: Epoch = None
    end: Epoch = None
    duration: Epoch = None


class Detail(Answer):
    result_id: str
    detail_id: str
    id: str = Field(description="the same as detail_id")
    task_id: str
    index: int
    status: ExecutionStatus
    submitted_at: float
    start: Epoch
    end: Epoch
    duration: Epoch
    exit_code: Optional[int]
    reason: Optional[str] = Field(description="why it ended ERROR or KILLED, in words")
    runner: Optional[str] = Field(description="the runner that claimed it")
    attempt: int
    attempts: list[Attempt] = Field(description="each ended attempt")
    params: Optional[ExecutionParams] = Field(
        None, description="this execution's own parameters (from the RUN's items or matrix), merged over "
                          "the run's; null when it runs with the run's alone")
    gpu_ids: Optional[list[str]] = Field(None, description="the GPU device ids its runner gave it (its last "
                                                           "attempt); null when it asked for none")


def _stream_fields():
    fields = {}
    for stream in ("stdout", "stderr"):
        fields.update({
            stream: (str, Field(description="the kept bytes decoded as UTF-8, invalid sequences as U+FFFD")),
            f"{stream}_bytes": (int, Field(description="bytes kept")),
            f"{stream}_head": (int, Field(description="of the kept bytes, how many are the stream's first")),
            f"{stream}_head_chars": (int, Field(description="characters those head bytes decode to")),
            f"{stream}_omitted": (int, Field(description="bytes left out after the head")),
            f"{stream}_total": (int, Field(description="bytes the stream produced")),
            f"{stream}_truncated": (bool, Field(description="whether any bytes were left out")),
        })
    return fields


class LogsBase(Answer):
    detail_id: str
    status: ExecutionStatus
    attempt: int
    logs_attempt: Optional[int] = Field(None, description="the attempt whose output this is")
    encoding: Literal["utf-8"]


Logs = create_model("Logs", __base__=LogsBase, __doc__="An execution's output as text.", **_stream_fields())


class LogEvent(Answer):
    """One server-sent event of ``GET .../logs/?follow=true``: new output of a stream (one line per data
    line), bytes ``skipped`` (not kept), a new ``attempt``, and the ``end`` (status, exit_code, reason)."""

    event: Literal["stdout", "stderr", "skipped", "attempt", "end"]
    data: str = Field(description="the text (stdout, stderr) or a JSON object (skipped, attempt, end)")
    id: Optional[str] = None
    retry: Optional[int] = None


class Health(Answer):
    status: Literal["ok"]
    registry: str
    scheduler: str

