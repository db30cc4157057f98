"""Schedules: a task RUN on a cron schedule (``/schedule/``), in Kubernetes CronJob's words.

``POST /schedule/`` takes a ``NewSchedule``; ``PATCH /schedule/{id}/`` a
``ScheduleChange`` (suspend, resume, change); ``POST /schedule/{id}/`` a
``ScheduleOperation`` (RUN: run now).  A schedule's ``run`` is a RUN body
(``run.py``), checked with the same rules (``schedule_run``), its fields named
``run.<field>`` when wrong.  The cron expression's shape is checked here
(``check_cron``); the scheduler checks it again with croniter, and the timezone
against the zone database.
"""
import functools
import importlib.resources
import re
import zoneinfo
from typing import ClassVar, Literal, Optional

from pydantic import ConfigDict, Field, field_validator, model_validator

from stevedore_jobs.contract.checks import ID_PATTERN, NO_CONTROL, Invalid, json_integer, shown, some_of
from stevedore_jobs.contract.requests import (
    NAME_MAX, STRICT, TEAM_FILTER_SAYS, Limits, NewestFirst, Request, team_filter)
from stevedore_jobs.contract.responses import SUBMITTED_BY, TEAM_OF, Answer, Epoch
from stevedore_jobs.contract.run import run_parts

POLICIES = ("Allow", "Forbid", "Replace")
Policy = Literal["Allow", "Forbid", "Replace"]
CRON_MAX = 100
TIMEZONE_MAX = 64
TIMEZONE_PATTERN = r"^[A-Za-z0-9_+\-]+(/[A-Za-z0-9_+\-]+)*$"
DEADLINE_MAX = 31 * 24 * 3600
MACROS = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
OUTCOMES = ("FIRED", "SKIPPED", "FAILED", "MISSED")
FIRES_SHOWN = 20
# the shape only (the ranges, and whether it ever runs, are checked by the scheduler)
# fields apart by spaces (a tab or a newline is a control character, refused at the door as everywhere)
CRON_PATTERN = (r"^ *(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|[0-9A-Za-z*,/-]+"
                r"( +[0-9A-Za-z*,/-]+){4,5}) *$")



@functools.lru_cache(maxsize=1)
def timezone_keys():
    """The IANA keys a schedule's ``timezone`` may be: those the ``tzdata`` package lists, the same on every
    host (the system's ``zoneinfo.available_timezones()`` has ``localtime`` too on Debian, a link to
    /etc/localtime: a zone that would be each scheduler host's own); without that package, the system's."""
    try:
        keys = importlib.resources.files("tzdata").joinpath("zones").read_text().split()
    except (ModuleNotFoundError, OSError):
        keys = zoneinfo.available_timezones() - {"localtime"}
    return frozenset(keys) | {"UTC"}


# the standard fields: minute, hour, day of month, month, day of week (names only in the last two)
_FIELDS = (("minute", 0, 59, ()), ("hour", 0, 23, ()), ("day of month", 1, 31, ()),
           ("month", 1, 12, ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")),
           ("day of week", 0, 7, ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")))
_SECONDS = ("second", 0, 59, ())
_ITEM = re.compile(r"^(\*|[0-9A-Za-z]+(-[0-9A-Za-z]+)?)(/[0-9]+)?$")


def _value(text, low, high, names, field):
    if text.isdigit():
        if not low <= int(text) <= high:
            raise Invalid(f"{field} {shown(text)} is out of range {low}-{high}", "cron")
        return
    if text.upper() not in names:
        raise Invalid(f"{field} {shown(text)} is not a number{' or a name' if names else ''} "
                      "(croniter's extensions H, R, L, W and # are not accepted)", "cron")


def check_cron(value, allow_seconds=False):
    """A standard five-field cron expression or one of the @hourly-style macros (``@reboot`` is not a
    time); with ``allow_seconds`` (SCHEDULE_ALLOW_SECONDS, for tests) also six fields, the last seconds."""
    if not isinstance(value, str):
        raise Invalid("must be a string such as \"*/15 * * * *\" or \"@hourly\"", "cron")
    text = value.strip()
    if not text or len(value) > CRON_MAX:
        raise Invalid(f"must be 1 to {CRON_MAX} characters", "cron")
    if text.startswith("@"):
        if text.lower() not in MACROS:
            raise Invalid(f"{shown(text)} is not one of {', '.join(MACROS)}", "cron")
        return text.lower()
    parts = text.split()
    fields = _FIELDS + ((_SECONDS,) if allow_seconds and len(parts) == 6 else ())
    if len(parts) != len(fields):
        raise Invalid(f"must have 5 fields (minute hour day-of-month month day-of-week), not {len(parts)}"
                      + ("; or 6, the last seconds" if allow_seconds else ""), "cron")
    for part, (field, low, high, names) in zip(parts, fields):
        for item in part.split(","):
            match = _ITEM.match(item)
            if not match:
                raise Invalid(f"{field} {shown(part)} is not valid (numbers, names, *, ranges a-b, lists a,b "
                              "and steps /n; croniter's extensions H, R, L, W and # are not accepted)", "cron")
            if match.group(1) != "*":
                bounds = match.group(1).split("-")
                for bound in bounds:
                    _value(bound, low, high, names, field)
                order = [int(b) if b.isdigit() else names.index(b.upper()) + low for b in bounds]
                if len(order) == 2 and order[0] > order[1]:
                    raise Invalid(f"{field} {shown(part)}: a range must go up (a-b with a <= b)", "cron")
            if match.group(3) and int(match.group(3)[1:]) == 0:
                raise Invalid(f"{field} {shown(part)}: a step must be at least 1", "cron")
    return " ".join(parts)


# the RUN fields a schedule's run cannot carry: ``after`` (and its ``per_index``); its schema in
# /openapi.json leaves them out (``openapi.schedule_run_schema``).  With ``items`` or ``matrix``
# (PER_EXECUTION), ``times`` may be left out, as in a RUN
PER_EXECUTION = ("items", "matrix")
NOT_IN_A_SCHEDULE = ("after", "per_index")


def schedule_run(run, limits=Limits()):
    """A schedule's ``run`` (a RUN body; ``operation`` may be left out) as the parameters each fire runs
    with; a wrong field is named ``run.<field>``."""
    return schedule_run_parts(run, limits)[0]


def schedule_run_parts(run, limits=Limits()):
    """``schedule_run``, and what each execution of a fire is given (``{"items": [...]}``,
    ``{"matrix": {...}}`` or None), as a RUN's (``run.run_parts``)."""
    if not isinstance(run, dict):
        raise Invalid("must be a RUN body: an object with times, command, env, ...", "run")
    if "after" in run:
        raise Invalid("a schedule's run cannot wait for another run", "run.after")
    try:
        return run_parts(run, limits)
    except Invalid as exc:
        raise Invalid(exc.message, f"run.{exc.field}") from None


class ScheduleBase(Request):
    model_config = ConfigDict(**STRICT, extra="forbid")
    SAYS: ClassVar[dict] = {
        "task_id": "must be a task's id (32 hex digits)", "name": f"must be 1 to {NAME_MAX} characters",
        "cron": "must be a string such as \"*/15 * * * *\" or \"@hourly\"",
        "timezone": "must be a timezone of the IANA database, such as Europe/Berlin or UTC",
        "concurrency_policy": f"must be one of {', '.join(POLICIES)}", "suspend": "must be true or false",
        "run": "must be a RUN body: an object with times, command, env, ..."}
    # the cron's fields (``check_cron``) and the timezone are checked by the scheduler, which knows whether
    # seconds are allowed and has the zone database: after the task or schedule is found (404 first)

    @field_validator("starting_deadline_seconds", mode="before", check_fields=False)
    @classmethod
    def _json_integer(cls, value):
        return json_integer(value)


class NewSchedule(ScheduleBase):
    """POST /schedule/: run a task on a cron schedule."""

    REQUIRED: ClassVar[dict] = {"task_id": "is required (the task to run)", "cron": "is required",
                                "run": "is required (a RUN body: {\"times\": 1, ...})"}

    task_id: str = Field(pattern=ID_PATTERN, description="the task to run")
    name: Optional[str] = Field(None, min_length=1, max_length=NAME_MAX, pattern=NO_CONTROL,
                                description="a label (not unique)")
    cron: str = Field(max_length=CRON_MAX, pattern=CRON_PATTERN, description="five fields (minute hour day-of-month month "
                      "day-of-week: numbers, names, `*`, ranges, lists, steps) or a macro: "
                      f"{', '.join(MACROS)}; croniter's extensions (seconds, H, R, L, W, #) are refused "
                      "(seconds are allowed only with the testing setting SCHEDULE_ALLOW_SECONDS)")
    timezone: str = Field("UTC", max_length=TIMEZONE_MAX, pattern=TIMEZONE_PATTERN,
                          description="the IANA timezone the cron fields are read in (DST: "
                                      "[api.md](#schedules))")
    concurrency_policy: Policy = Field("Allow", description="Allow: a tick starts a run whatever runs; "
                                       "Forbid: a tick is SKIPPED while the previous run is unfinished; "
                                       "Replace: the previous unfinished run is cancelled, then the new starts")
    suspend: bool = Field(False, description="a suspended schedule does not fire (resume: false)")
    starting_deadline_seconds: Optional[int] = Field(
        None, ge=1, le=DEADLINE_MAX, description="a tick found more than this late (the scheduler was down) is "
                                                 "MISSED instead of run; null: the latest missed tick runs once")
    run: dict = Field(description="the RUN body each fire runs (`times`, `command`, `env`, ..., "
                                  "`callback_url`, `items` or `matrix`); `operation` may be left out, `after` is "
                                  "refused, a `task_id` must be the schedule's")


def NOT_NULL(schema):  # noqa: N802 -- a field that may be left out but not sent null: no default shown
    schema.pop("default", None)


class ScheduleChange(ScheduleBase):
    """PATCH /schedule/{schedule_id}/: suspend, resume or change a schedule (fields not sent stay); at least
    one field, as PATCH /result/{id}/ and /team/{name}/ (an empty body changed nothing and answered 200)."""
    model_config = ConfigDict(**STRICT, extra="forbid", json_schema_extra={"minProperties": 1})

    name: Optional[str] = Field(None, min_length=1, max_length=NAME_MAX, pattern=NO_CONTROL)
    # left out: kept as it is; null is refused (400 naming the field), but for starting_deadline_seconds
    cron: str = Field(None, max_length=CRON_MAX, pattern=CRON_PATTERN, json_schema_extra=NOT_NULL)
    timezone: str = Field(None, max_length=TIMEZONE_MAX, pattern=TIMEZONE_PATTERN, json_schema_extra=NOT_NULL)
    concurrency_policy: Policy = Field(None, json_schema_extra=NOT_NULL)
    suspend: bool = Field(None, description="true: suspend; false: resume (from the next tick)",
                          json_schema_extra=NOT_NULL)
    starting_deadline_seconds: Optional[int] = Field(None, ge=1, le=DEADLINE_MAX,
                                                     description="0 is not accepted; send null to clear it")
    run: dict = Field(None, json_schema_extra=NOT_NULL)

    @model_validator(mode="before")
    @classmethod
    def _something(cls, data):
        return some_of(data, SCHEDULE_CHANGES)


SCHEDULE_CHANGES = tuple(ScheduleChange.model_fields)


class ScheduleOperation(Request):
    """POST /schedule/{schedule_id}/ with RUN: run it now (the concurrency policy applies)."""
    model_config = ConfigDict(**STRICT, extra="forbid")  # run now runs the schedule's run: nothing else is taken

    operation: Literal["RUN"]


class ScheduleListQuery(NewestFirst):
    task_id: Optional[str] = Field(None, pattern=ID_PATTERN, description="only schedules of this task")
    team: Optional[str] = team_filter()
    SAYS: ClassVar[dict] = {**NewestFirst.SAYS, "task_id": "must be a task's id (32 hex digits)",
                            "team": TEAM_FILTER_SAYS}


# ---------------------------------------------------------------- answers

class ScheduleFire(Answer):
    scheduled_for: float = Field(description="the tick (or, for a run now, when it was asked)")
    fired_at: float
    manual: bool = Field(description="a run now, not a tick")
    outcome: Literal["FIRED", "SKIPPED", "FAILED", "MISSED"]
    result_id: Optional[str] = Field(description="the run it started (FIRED)")
    missed: int = Field(description="earlier ticks not run (the scheduler was down)")
    reason: Optional[str] = Field(description="why it was SKIPPED, FAILED or MISSED")


class ScheduleCounts(Answer):
    fired: int
    skipped: int
    missed: int
    failed: int


class Schedule(Answer):
    schedule_id: str
    id: str = Field(description="the same as schedule_id")
    task_id: str
    name: Optional[str]
    cron: str
    timezone: str
    concurrency_policy: Policy
    suspend: bool
    starting_deadline_seconds: Optional[int]
    run: dict = Field(description="the RUN body each fire runs")
    created_at: float
    updated_at: float
    next_run_at: Epoch = Field(description="the next tick; null while suspended")
    last_fire_at: Epoch
    last_result_id: Optional[str] = Field(description="the latest run it started")
    counts: ScheduleCounts
    fires: Optional[list[ScheduleFire]] = Field(None, description=f"GET /schedule/{{id}}/ only: the last "
                                                                  f"{FIRES_SHOWN} fires, newest first")
    failed_fires: Optional[list[ScheduleFire]] = Field(None, description="GET /schedule/{id}/ only: the last "
                                                                         f"{FIRES_SHOWN} FAILED fires")
    team: Optional[str] = Field(None, description=TEAM_OF + " (its runs too)")
    submitted_by: Optional[str] = Field(None, description=SUBMITTED_BY)
