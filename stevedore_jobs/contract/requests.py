"""What a client sends: request bodies, query parameters and headers, with their real constraints.

Each model is validated in strict mode (``"5"`` is not an integer, ``true`` not
a number) and a failure is one ``Invalid`` naming the field as the API tells it:
``times: must be an integer from 1 to 100000`` (``parse``).  The RUN body
depends on the installation's ``Limits`` (``RUN_MAX_TIMES``,
``CONTAINER_MAX_MEMORY``, ``CONTAINER_MAX_CPUS``): ``run.run_request(limits)``.
"""
import math
import re
from typing import Annotated, ClassVar, Literal, NamedTuple, Optional, get_args

import annotated_types
import pydantic
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from stevedore_jobs.contract.checks import (
    ID_PATTERN, NO_CONTROL, REFERENCE_PATTERN, REPOSITORY_MAX, SHOWN_MAX, TEAM_MAX, TEAM_PATTERN, Invalid,
    parse_reference, shown)
from stevedore_jobs.contract.labels import (
    FILTER_PATTERN, FILTERS_MAX, LABELS_DESCRIPTION, LabelMap, check_labels, parse_filters)
from stevedore_jobs.contract.statuses import ExecutionStatus, TaskStatus


class Limits(NamedTuple):
    """The installation's maxima of one RUN (settings RUN_MAX_TIMES, CONTAINER_MAX_MEMORY in bytes,
    CONTAINER_MAX_CPUS, CONTAINER_MAX_DISK in bytes)."""

    max_times: int = 100000
    max_memory: int = 8 * 1024 ** 3
    max_cpus: float = 4.0
    max_disk: int = 100 * 1024 ** 3


STRICT = ConfigDict(strict=True, regex_engine="python-re")
NAME_MAX = 200
CREDENTIAL_MAX = 1024
PAGE_MAX = 1000
PAGE_DEFAULT = 100
IDEMPOTENCY_KEY_MAX = 200


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
        # a string username needs a string password and the other way round (null is not given)
        "allOf": [{"if": {"required": [one], "properties": {one: {"type": "string"}}},
                   "then": {"required": [other], "properties": {other: {"type": "string"}}}}
                  for one, other in (("username", "password"), ("password", "username"))] + [
            # without a name the repository is the name, so it must fit one
            {"if": {"not": {"required": ["name"], "properties": {"name": {"type": "string"}}}},
             "then": {"properties": {"repository": {"maxLength": NAME_MAX}}}}]})

    repository: str = Field(
        max_length=REPOSITORY_MAX, pattern=REFERENCE_PATTERN,
        description="Docker image reference, e.g. localhost:5000/team/app:1.0 (pulled and pinned to its digest)")
    name: Optional[str] = Field(
        None, min_length=1, max_length=NAME_MAX, pattern=r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$",
        description="unique name (default: the repository); surrounding spaces are dropped")
    status: Optional[Literal["SUBMITTED"]] = Field(
        None, description="the seed lists it: a client may only ask for the initial status")
    username: Optional[str] = Field(None, min_length=1, max_length=CREDENTIAL_MAX, pattern=NO_CONTROL,
                                    description="registry login (with password; never shown again)")
    password: Optional[str] = Field(None, min_length=1, max_length=CREDENTIAL_MAX, pattern=NO_CONTROL,
                                    description="registry password (with username; sealed at rest)")
    labels: Optional[LabelMap] = Field(None, description=LABELS_DESCRIPTION)

    @field_validator("labels", mode="before")
    @classmethod
    def _labels(cls, value):
        return check_labels(value)

    SAYS: ClassVar[dict] = {"status": "may only be SUBMITTED when creating a task",
                            "username": "must be a non-empty string", "password": "must be a non-empty string"}

    @model_validator(mode="after")
    def _named(self):
        if self.name is None and len(self.repository) > NAME_MAX:
            raise Invalid(f"is required when the repository is longer than {NAME_MAX} characters "
                          "(the name it would default to)", "name")
        return self

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
    model_config = ConfigDict(**STRICT, extra="forbid")  # a field it does not take is refused, not dropped

    operation: Literal["CANCEL", "RERUN_FAILED"]


class DetailOperation(Request):
    """POST /result/{result_id}/detail/{detail_id}/: CANCEL one execution."""
    model_config = ConfigDict(**STRICT, extra="forbid")  # a field it does not take is refused, not dropped

    operation: Literal["CANCEL"]


# ---------------------------------------------------------------- query parameters and headers

class Page(Request):
    """?limit= and ?after= of every list."""

    model_config = ConfigDict(regex_engine="python-re")

    limit: int = Field(PAGE_DEFAULT, ge=1, le=PAGE_MAX,
                       description="items per page, at most (fewer when their JSON passes the server's "
                                   "LIST_PAGE_BYTES; the Link header says more exist)")
    after: Optional[str] = Field(None, pattern=ID_PATTERN,
                                 description="the id after which the page starts (the Link header's)")
    SAYS: ClassVar[dict] = {"after": "must be the id of a listed item (32 hex digits)"}

    @field_validator("limit", mode="before")
    @classmethod
    def _limit(cls, value):
        if isinstance(value, str):  # digits only: no sign, no spaces, no underscores
            return int(value) if value.isascii() and value.isdigit() and len(value) <= 5 else -1
        return value

    def query(self):
        return self.model_dump(exclude_none=True) | {"after": self.after}


TIME_MAX = 1e11  # epoch seconds: the year 5138


def seconds_text(value):
    """A time in epoch seconds given as text, as a number (inf, nan and what is no number: -1, refused)."""
    if isinstance(value, str):
        try:
            seconds = float(value)
        except ValueError:
            return -1.0
        return seconds if math.isfinite(seconds) else -1.0
    return value


class NewestFirst(Page):
    """?limit=, ?after= and ?after_key= of a list newest first: ``after_key``, which the Link header gives, is
    the time of the item ``after`` names; with it the next page goes on from where that item was, even when it
    was deleted since (retention, DELETE)."""

    after_key: Optional[float] = Field(
        None, ge=0, le=TIME_MAX, allow_inf_nan=False,
        description="the time of the item `after` names (epoch seconds; the Link header gives it): the page goes "
                    "on from where that item was, even when it was deleted since; without `after`: the items older "
                    "than this time")
    SAYS: ClassVar[dict] = {**Page.SAYS, "after_key": "must be the time of the item named by after (epoch "
                                                      "seconds, as the Link header gives it)"}

    @field_validator("after_key", mode="before")
    @classmethod
    def _key(cls, value):
        return seconds_text(value)


TEAM_FILTER_SAYS = ("must be a team's name: 1 to 63 lower-case letters, digits and '-', starting and ending "
                    "with a letter or digit")


def team_filter():
    """``?team=`` of the lists of team-owned things: the same as the X-Stevedore-Team header (a GET's)."""
    return Field(None, max_length=TEAM_MAX, pattern=TEAM_PATTERN,
                 description="only this team's (admins and operators; a member's or viewer's own team only: "
                             "another is 403); the X-Stevedore-Team header picks it as well")


LABEL_FILTER_DESCRIPTION = (f"`key=value` (the label has that value) or `key` (the label is set); repeat it, "
                            f"at most {FILTERS_MAX} times: all must hold")


class LabelFilter(NewestFirst):
    """?label= (repeatable) of the lists of tasks and results."""

    label: Optional[list[Annotated[str, Field(pattern=FILTER_PATTERN)]]] = Field(
        None, max_length=FILTERS_MAX, description=LABEL_FILTER_DESCRIPTION)
    MANY: ClassVar[frozenset] = frozenset({"label"})
    SAYS: ClassVar[dict] = {**NewestFirst.SAYS, "label": f"must be key=value or key, at most {FILTERS_MAX} of them"}

    @field_validator("label", mode="before")
    @classmethod
    def _label(cls, value):
        if value is None:
            return None
        parse_filters(value)
        return [value] if isinstance(value, str) else value


class TaskListQuery(LabelFilter):
    status: Optional[TaskStatus] = Field(None, description="only tasks in this status")
    team: Optional[str] = team_filter()
    SAYS: ClassVar[dict] = {**LabelFilter.SAYS, "status": f"must be one of {', '.join(get_args(TaskStatus))}",
                            "team": TEAM_FILTER_SAYS}


class ResultListQuery(LabelFilter):
    status: Optional[ExecutionStatus] = Field(None, description="only results in this status")
    task_id: Optional[str] = Field(None, pattern=ID_PATTERN, description="only results of this task")
    schedule_id: Optional[str] = Field(None, pattern=ID_PATTERN, description="only results this schedule started")
    team: Optional[str] = team_filter()
    SAYS: ClassVar[dict] = {**LabelFilter.SAYS, "status": f"must be one of {', '.join(get_args(ExecutionStatus))}",
                            "team": TEAM_FILTER_SAYS,
                            "task_id": "must be a task's id (32 hex digits)",
                            "schedule_id": "must be a schedule's id (32 hex digits)"}


class DetailListQuery(Page):
    status: Optional[ExecutionStatus] = Field(None, description="only executions in this status")
    SAYS: ClassVar[dict] = {**Page.SAYS, "status": f"must be one of {', '.join(get_args(ExecutionStatus))}"}


class LogsQuery(Request):
    model_config = ConfigDict(strict=False)  # "true", "false", "1", "0", "yes", "no"
    follow: bool = Field(False, description="server-sent events of new output until the execution ends")
    SAYS: ClassVar[dict] = {"follow": "must be true or false"}


def query(model, args):
    """The query parameters ``args`` (a mapping of strings) as ``model``: unknown ones are ignored."""
    many = getattr(model, "MANY", frozenset())
    return parse(model, {name: args.getlist(name) if name in many and hasattr(args, "getlist") else args[name]
                         for name in model.model_fields if name in args})


IDEMPOTENCY_KEY_PATTERN = r"^[\x20-\x7e]*[\x21-\x7e][\x20-\x7e]*$"


def idempotency_key(value):
    """The Idempotency-Key header's value, if any: 1 to 200 printable ASCII characters (spaces around dropped)."""
    if value is None:
        return None
    key = value.strip()
    if not re.fullmatch(IDEMPOTENCY_KEY_PATTERN[1:-1], key) or len(key) > IDEMPOTENCY_KEY_MAX:
        raise Invalid(f"must be 1 to {IDEMPOTENCY_KEY_MAX} printable characters", "Idempotency-Key")
    return key
