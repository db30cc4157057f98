"""What a client sends: request bodies, query parameters and headers, with their real constraints.

Each model is validated in strict mode (``"5"`` is not an integer, ``true`` not
a number) and a failure is one ``Invalid`` naming the field as the API tells it:
``times: must be an integer from 1 to 100000`` (``parse``).  The RUN body
depends on the installation's ``Limits`` (``RUN_MAX_TIMES``,
``CONTAINER_MAX_MEMORY``, ``CONTAINER_MAX_CPUS``): ``run_request(limits)``.
"""
import functools
import re
import shlex
from typing import Annotated, ClassVar, Literal, NamedTuple, Optional, Union, get_args
from urllib.parse import urlsplit

import annotated_types
import pydantic
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from stevedore_jobs.contract.checks import (
    MEMORY_PATTERN, REFERENCE_PATTERN, REPOSITORY_MAX, SHOWN_MAX, Invalid, memory_bytes,
    parse_reference, shown, size_text)
from stevedore_jobs.contract.statuses import ExecutionStatus, TaskStatus


class Limits(NamedTuple):
    """The installation's maxima of one RUN (settings RUN_MAX_TIMES, CONTAINER_MAX_MEMORY in bytes,
    CONTAINER_MAX_CPUS)."""

    max_times: int = 100000
    max_memory: int = 8 * 1024 ** 3
    max_cpus: float = 4.0


STRICT = ConfigDict(strict=True, regex_engine="python-re")
NAME_MAX = 200
CREDENTIAL_MAX = 1024
CALLBACK_URL_MAX = 2048
COMMAND_MAX = 65536
ENV_MAX = 1000
ENV_NAME_PATTERN = r"^(?!STEVEDORE_)[A-Za-z_][A-Za-z0-9_]{0,254}$"
ENV_VALUE_MAX = 65536
TIMEOUT_MAX = 31 * 24 * 3600
PARALLELISM_MAX = 100000
RETRIES_MAX = 100
PRIORITY_MAX, PRIORITY_DEFAULT = 9, 5
PAGE_MAX = 1000
PAGE_DEFAULT = 100
IDEMPOTENCY_KEY_MAX = 200
NO_CONTROL = r"^[^\x00-\x1f\x7f-\x9f]*$"


# ---------------------------------------------------------------- failures as the API tells them

def number(value):
    """A bound as a message says it: 100000, 0.01, 2."""
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _range_message(info):
    """``must be an integer from 1 to 10`` from a field's type and its ge/le."""
    kinds = set(get_args(info.annotation)) or {info.annotation}
    kind = "an integer" if int in kinds else "a number"
    low = next((m.ge for m in info.metadata if isinstance(m, annotated_types.Ge)), None)
    high = next((m.le for m in info.metadata if isinstance(m, annotated_types.Le)), None)
    if low is None or high is None:
        return None
    return f"must be {kind} from {number(low)} to {number(high)}"


def invalid(model, exc):
    """The first failure of ``exc`` (a pydantic ValidationError of ``model``) as one ``Invalid``."""
    error = exc.errors(include_url=False)[0]
    cause = (error.get("ctx") or {}).get("error")
    if isinstance(cause, Invalid):
        return cause
    loc = error["loc"]
    field = str(loc[0])[:SHOWN_MAX] if loc else "body"
    info = model.model_fields.get(field)
    if error["type"] == "extra_forbidden" or info is None:
        return Invalid(f"unknown field; accepted are {', '.join(sorted(model.model_fields))}", field)
    says = model.SAYS.get(field) or _range_message(info) or "is not valid"
    if error["type"] == "missing":
        return Invalid(model.REQUIRED.get(field, "is required"), field)
    if error["input"] is None and field in model.REQUIRED:
        return Invalid(model.REQUIRED[field], field)
    if error["input"] is None:
        return Invalid(f"must not be null; {says.removeprefix('must be ')}", field)
    return Invalid(says + model.NOTES.get(field, ""), field)


def parse(model, data):
    """``data`` as ``model``, or the ``Invalid`` naming the first field that is wrong."""
    if not isinstance(data, dict):
        raise Invalid("must be a JSON object", "body")
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as exc:
        raise invalid(model, exc) from None


class Request(BaseModel):
    model_config = STRICT
    # a field's message for any failure not told otherwise, when it has no ge/le to say it
    SAYS: ClassVar[dict] = {}
    # what a missing (or null) required field is told
    REQUIRED: ClassVar[dict] = {}
    # said after a range
    NOTES: ClassVar[dict] = {}


def operation(body, allowed):
    """The ``operation`` of a POST body, one of ``allowed``."""
    if not isinstance(body, dict):
        raise Invalid("must be a JSON object", "body")
    op = body.get("operation")
    if op is None:
        raise Invalid(f"is required; one of {', '.join(allowed)}", "operation")
    if op not in allowed:
        raise Invalid(f"{shown(op)} is not supported; one of {', '.join(allowed)}", "operation")
    return op


# ---------------------------------------------------------------- tasks

def _no_control(value, field):
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise Invalid("must not contain control characters", field)
    return value


class NewTask(Request):
    """POST /task/: register an image as a task.  Other fields are ignored."""

    model_config = ConfigDict(**STRICT, json_schema_extra={
        "dependentRequired": {"username": ["password"], "password": ["username"]}})

    repository: str = Field(
        max_length=REPOSITORY_MAX, pattern=REFERENCE_PATTERN,
        description="Docker image reference, e.g. localhost:5000/team/app:1.0 (pulled and pinned to its digest)")
    name: Optional[str] = Field(
        None, min_length=1, max_length=NAME_MAX, pattern=r"^[^\x00-\x1f\x7f-\x9f]*\S[^\x00-\x1f\x7f-\x9f]*$",
        description="unique name (default: the repository); surrounding spaces are dropped")
    status: Optional[Literal["SUBMITTED"]] = Field(
        None, description="the seed lists it: a client may only ask for the initial status")
    username: Optional[str] = Field(None, min_length=1, max_length=CREDENTIAL_MAX, pattern=NO_CONTROL,
                                    description="registry login (with password; never shown again)")
    password: Optional[str] = Field(None, min_length=1, max_length=CREDENTIAL_MAX, pattern=NO_CONTROL,
                                    description="registry password (with username; sealed at rest)")

    SAYS: ClassVar[dict] = {"status": "may only be SUBMITTED when creating a task",
                            "username": "must be a non-empty string", "password": "must be a non-empty string"}

    @model_validator(mode="after")
    def _credentials_in_pairs(self):
        for field, value, other in (("username", self.username, self.password),
                                    ("password", self.password, self.username)):
            if value is None and other is not None:
                raise Invalid(f"is required when {'password' if field == 'username' else 'username'} "
                              "is given (send both or neither)", field)
        return self

    @field_validator("repository", mode="before")
    @classmethod
    def _reference(cls, value):
        parse_reference(value)
        return value

    @field_validator("name", mode="before")
    @classmethod
    def _name(cls, value):
        if value is None:
            return None
        if not isinstance(value, str):
            raise Invalid("must be a string", "name")
        value = value.strip()
        if not value:
            raise Invalid("must not be empty", "name")
        if len(value) > NAME_MAX:
            raise Invalid(f"must be at most {NAME_MAX} characters", "name")
        return _no_control(value, "name")

    @field_validator("username", "password", mode="before")
    @classmethod
    def _credential(cls, value, info):
        if value is None:
            return None
        if not isinstance(value, str) or not value:
            raise Invalid("must be a non-empty string", info.field_name)
        if len(value) > CREDENTIAL_MAX:
            raise Invalid(f"must be at most {CREDENTIAL_MAX} characters", info.field_name)
        return _no_control(value, info.field_name)

    def credentials(self):
        """``{"username", "password"}``, or None (a public image)."""
        return None if self.username is None else {"username": self.username, "password": self.password}


class TaskOperation(Request):
    """POST /task/{task_id}/ with IMPORT: pull the image again (other fields are ignored)."""

    operation: Literal["IMPORT"]


class ResultOperation(Request):
    """POST /result/{result_id}/: CANCEL the run, or RERUN_FAILED its failed executions."""

    operation: Literal["CANCEL", "RERUN_FAILED"]


class DetailOperation(Request):
    """POST /result/{result_id}/detail/{detail_id}/: CANCEL one execution."""

    operation: Literal["CANCEL"]


# ---------------------------------------------------------------- RUN

def split_command(value):
    """A RUN's ``command`` as the list of words stored and run (a string split as a POSIX shell would)."""
    if value is None:
        return None
    if isinstance(value, str):
        if not value.strip():
            raise Invalid("must not be empty", "command")
        if len(value) > COMMAND_MAX:
            raise Invalid(f"must be at most {COMMAND_MAX} characters", "command")
        try:  # what is stored and run is this list, so a RUN accepted can always be started
            words = shlex.split(value)
        except ValueError as exc:  # an unbalanced quote, a trailing backslash
            raise Invalid(f"cannot be split into words like a shell command ({exc}); "
                          "close its quotes, or send a list of strings", "command") from None
        if not words:
            raise Invalid("must not be empty", "command")
        return words
    if isinstance(value, list) and value and all(isinstance(part, str) for part in value):
        if sum(len(part) for part in value) > COMMAND_MAX:
            raise Invalid(f"must be at most {COMMAND_MAX} characters in all", "command")
        return value
    raise Invalid("must be a string or a non-empty list of strings", "command")


def check_env(value):
    if value is None:
        return None
    if not isinstance(value, dict):
        raise Invalid("must be an object of string values", "env")
    if len(value) > ENV_MAX:
        raise Invalid(f"must have at most {ENV_MAX} variables", "env")
    for key, item in value.items():
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key) or len(key) > 255:
            raise Invalid(f"{shown(key)} is not a valid variable name", "env")
        if key.startswith("STEVEDORE_"):
            raise Invalid(f"{shown(key)}: the STEVEDORE_ prefix is reserved", "env")
        if not isinstance(item, str):
            raise Invalid(f"{key}: value must be a string", "env")
        if len(item) > ENV_VALUE_MAX:
            raise Invalid(f"{key}: value must be at most {ENV_VALUE_MAX} characters", "env")
    return value


def check_callback_url(value):
    """A RUN's ``callback_url``: an absolute http(s) URL without user:password."""
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise Invalid("must be an http:// or https:// URL", "callback_url")
    if len(value) > CALLBACK_URL_MAX:
        raise Invalid(f"must be at most {CALLBACK_URL_MAX} characters", "callback_url")
    if any(ord(ch) <= 32 or ord(ch) == 127 for ch in value):
        raise Invalid("must not contain spaces or control characters", "callback_url")
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 -- raises ValueError on a malformed port
    except ValueError as exc:
        raise Invalid(f"is not a valid URL ({exc})", "callback_url") from exc
    if parts.scheme not in ("http", "https"):
        raise Invalid("must be an http:// or https:// URL", "callback_url")
    if not parts.hostname:
        raise Invalid("must name a host, e.g. https://ci.example.com/hooks/stevedore", "callback_url")
    if parts.username is not None or parts.password is not None:
        raise Invalid("must not carry user:password (they would be shown with the result)", "callback_url")
    if parts.fragment:
        raise Invalid("must not have a #fragment", "callback_url")
    return value


def memory_within(value, max_memory):
    """``value`` (a size) if it is within ``max_memory`` bytes (None: no ceiling)."""
    size = memory_bytes(value)
    if max_memory and size and size > max_memory:
        raise Invalid(f"must be at most {size_text(max_memory)}, this installation's ceiling "
                      "(CONTAINER_MAX_MEMORY)", "memory")
    return value


CPUS_MIN = 0.01
CPUS_NOTE = ", this installation's ceiling (CONTAINER_MAX_CPUS)"


def cpus_within(value, max_cpus):
    if max_cpus and value and value > max_cpus:
        raise Invalid(f"must be a number from {CPUS_MIN} to {number(max_cpus)}{CPUS_NOTE}", "cpus")
    return value


class RunBase(Request):
    model_config = ConfigDict(**STRICT, extra="forbid")
    SAYS: ClassVar[dict] = {"operation": "must be RUN", "task_id": "must be a string"}
    NOTES: ClassVar[dict] = {"cpus": CPUS_NOTE}
    LIMITS: ClassVar[Limits] = Limits()

    def params(self):
        """The parameters the result is run with (stored with it as ``params``)."""
        params = self.model_dump(exclude={"operation", "task_id", "callback_url"})
        params["env"] = params["env"] or {}
        if self.callback_url is not None:
            params["callback_url"] = self.callback_url
        return params


@functools.lru_cache(maxsize=8)
def run_request(limits=Limits()):
    """The RUN body's model under ``limits``."""

    class RunRequest(RunBase):
        """POST /task/{task_id}/ with RUN: run the task's image ``times`` times."""

        LIMITS: ClassVar[Limits] = limits
        REQUIRED: ClassVar[dict] = {"times": f"is required (an integer from 1 to {limits.max_times})"}

        operation: Literal["RUN"] = Field(description="RUN (IMPORT takes no other field)")
        task_id: Optional[str] = Field(None, description="if given, must be the task of the path")
        times: int = Field(ge=1, le=limits.max_times, json_schema_extra={"x-setting": "RUN_MAX_TIMES"},
                           description="how many executions")
        command: Union[Annotated[str, Field(min_length=1, max_length=COMMAND_MAX)],
                       Annotated[list[str], Field(min_length=1)], None] = Field(
            None, description="overrides the image's command (run directly, no shell). A string is split into "
                              "words at submit as a POSIX shell would (quotes and backslashes, no expansion: "
                              "Python's `shlex`); the list is what is stored (`params.command`) and run. A string "
                              "that cannot be split (an unbalanced quote, a trailing backslash) is refused with "
                              "400 naming `command`")
        env: Optional[Annotated[
            dict[Annotated[str, Field(pattern=ENV_NAME_PATTERN)], Annotated[str, Field(max_length=ENV_VALUE_MAX)]],
            Field(max_length=ENV_MAX, json_schema_extra={"additionalProperties": False})]] = Field(
            None, description="added to the container's environment (`STEVEDORE_*` is reserved)")
        timeout: Optional[float] = Field(
            None, ge=1, le=TIMEOUT_MAX,
            description="seconds: an execution still running after it is stopped and ends KILLED, `reason` "
                        "\"timeout: ...\"")
        parallelism: Optional[int] = Field(None, ge=1, le=PARALLELISM_MAX,
                                           description="at most this many executions of the run held by "
                                                       "runners at once")
        retries: int = Field(0, ge=0, le=RETRIES_MAX,
                             description="more attempts for an execution that exits non-zero or whose runner "
                                         "is lost, after 1 s, 2 s, 4 s ... (`RETRY_BACKOFF`, capped by "
                                         "`RETRY_BACKOFF_MAX`)")
        memory: Optional[str] = Field(
            None, pattern=MEMORY_PATTERN, max_length=21, json_schema_extra={"x-setting": "CONTAINER_MAX_MEMORY"},
            description=f"container memory limit, a size such as `\"256m\"` or `\"1g\"` from 6m up to "
                        f"{size_text(limits.max_memory)} (default `CONTAINER_DEFAULT_MEMORY`); more than the "
                        f"ceiling is a 400 `memory: must be at most {size_text(limits.max_memory)}, this "
                        "installation's ceiling (CONTAINER_MAX_MEMORY)`")
        cpus: Optional[float] = Field(None, ge=CPUS_MIN, le=limits.max_cpus,
                                      json_schema_extra={"x-setting": "CONTAINER_MAX_CPUS"},
                                      description="container CPU limit; more is a 400 naming `cpus`")
        priority: int = Field(PRIORITY_DEFAULT, ge=0, le=PRIORITY_MAX,
                              description="queued executions of higher priority start first")
        callback_url: Optional[str] = Field(
            None, min_length=1, max_length=CALLBACK_URL_MAX, format="uri", pattern=r"^[hH][tT][tT][pP][sS]?://",
            description="an http(s) URL POSTed the result when the run ends, signed ([webhooks.md](webhooks.md))")

        @field_validator("command", mode="before")
        @classmethod
        def _command(cls, value):
            return split_command(value)

        @field_validator("env", mode="before")
        @classmethod
        def _env(cls, value):
            return check_env(value)

        @field_validator("memory", mode="before")
        @classmethod
        def _memory(cls, value):
            return memory_within(value, limits.max_memory)

        @field_validator("cpus", mode="after")
        @classmethod
        def _cpus(cls, value):
            return cpus_within(value, limits.max_cpus)

        @field_validator("callback_url", mode="before")
        @classmethod
        def _callback_url(cls, value):
            return check_callback_url(value)

    return RunRequest


RunRequest = run_request()


def run_params(body, limits=Limits()):
    """Validate a RUN body (its operation checked already, or implied); the parameters the result is
    run with."""
    if not isinstance(body, dict):
        raise Invalid("must be a JSON object", "body")
    return parse(run_request(limits), {"operation": "RUN", **body}).params()


# ---------------------------------------------------------------- query parameters and headers

def _blank_is_none(value):
    return None if value == "" else value


class Page(Request):
    """?limit= and ?after= of every list."""

    model_config = ConfigDict(regex_engine="python-re")

    limit: int = Field(PAGE_DEFAULT, ge=1, le=PAGE_MAX, description="items per page")
    after: Optional[str] = Field(None, description="the id after which the page starts (the Link header's)")

    @field_validator("limit", mode="before")
    @classmethod
    def _limit(cls, value):
        if isinstance(value, str):  # digits only: no sign, no spaces, no underscores
            return int(value) if value.isascii() and value.isdigit() and len(value) <= 5 else -1
        return value

    @field_validator("after", mode="before")
    @classmethod
    def _after(cls, value):
        return _blank_is_none(value)

    def query(self):
        return self.model_dump(exclude_none=True) | {"after": self.after}


class TaskListQuery(Page):
    status: Optional[TaskStatus] = Field(None, description="only tasks in this status")
    SAYS: ClassVar[dict] = {"status": f"must be one of {', '.join(get_args(TaskStatus))}"}
    _status = field_validator("status", mode="before")(lambda cls, value: _blank_is_none(value))


class ResultListQuery(Page):
    status: Optional[ExecutionStatus] = Field(None, description="only results in this status")
    task_id: Optional[str] = Field(None, description="only results of this task")
    SAYS: ClassVar[dict] = {"status": f"must be one of {', '.join(get_args(ExecutionStatus))}"}
    _blanks = field_validator("status", "task_id", mode="before")(lambda cls, value: _blank_is_none(value))


class DetailListQuery(Page):
    status: Optional[ExecutionStatus] = Field(None, description="only executions in this status")
    SAYS: ClassVar[dict] = {"status": f"must be one of {', '.join(get_args(ExecutionStatus))}"}
    _status = field_validator("status", mode="before")(lambda cls, value: _blank_is_none(value))


class LogsQuery(Request):
    model_config = ConfigDict(strict=False)  # "true", "false", "1", "0", "yes", "no"
    follow: bool = Field(False, description="server-sent events of new output until the execution ends")
    SAYS: ClassVar[dict] = {"follow": "must be true or false"}


def query(model, args):
    """The query parameters ``args`` (a mapping of strings) as ``model``: unknown ones are ignored."""
    return parse(model, {name: args[name] for name in model.model_fields if name in args})


IDEMPOTENCY_KEY_PATTERN = r"^[\x20-\x7e]*[\x21-\x7e][\x20-\x7e]*$"


def idempotency_key(value):
    """The Idempotency-Key header's value, if any: 1 to 200 printable ASCII characters (spaces around dropped)."""
    if value is None:
        return None
    key = value.strip()
    if not re.fullmatch(IDEMPOTENCY_KEY_PATTERN[1:-1], key) or len(key) > IDEMPOTENCY_KEY_MAX:
        raise Invalid(f"must be 1 to {IDEMPOTENCY_KEY_MAX} printable characters", "Idempotency-Key")
    return key
