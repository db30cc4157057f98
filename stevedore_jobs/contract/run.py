"""The RUN body: POST /task/{task_id}/ with ``"operation": "RUN"``, under the installation's ``Limits``."""
import functools
import re
import shlex
from typing import Annotated, ClassVar, Literal, Optional, Union
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SkipValidation, field_validator, model_validator

from stevedore_jobs.contract.checks import (
    CALLBACK_URL_PATTERN, COMMAND_PATTERN, ID_PATTERN, NO_CONTROL, NO_CONTROL_IN_TEXT, Invalid, memory_bytes,
    memory_pattern, shown, size_text)
from stevedore_jobs.contract import fleet
from stevedore_jobs.contract import items as per_execution
from stevedore_jobs.contract.labels import LABELS_DESCRIPTION, LabelMap, check_labels
from stevedore_jobs.contract.requests import STRICT, Limits, Request, number, parse

CALLBACK_URL_MAX = 2048
COMMAND_MAX = 65536
ENV_MAX = 1000
ENV_NAME_PATTERN = r"^(?!STEVEDORE_)[A-Za-z_][A-Za-z0-9_]{0,254}$"
ENV_VALUE_MAX = 65536
TIMEOUT_MAX = 31 * 24 * 3600
PARALLELISM_MAX = 100000
RETRIES_MAX = 100
PRIORITY_MAX, PRIORITY_DEFAULT = 9, 5
DEADLINE_MAX = 31 * 24 * 3600
EXIT_CODES_MAX = 256  # entries in retry_on_exit_codes / no_retry_on_exit_codes
EXIT_CODE_MAX = 255
# the failure policy's fields: left out of a run's stored params when not given, so a RUN without
# them is stored (and compared by its Idempotency-Key) as before they existed
POLICY_FIELDS = ("max_failures", "retry_on_exit_codes", "no_retry_on_exit_codes", "deadline")
# where a run may run (stevedore_jobs/contract/fleet.py): left out of params when not given, as POLICY_FIELDS
FLEET_FIELDS = ("constraints", "gpus")
AFTER_MAX = 20
WHEN = ("COMPLETE", "ENDED")


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


def check_exit_codes(value, field):
    """A list of exit codes (integers 0..255, at most 256 of them; 2.0 is 2), or None."""
    if value is None:
        return None
    if not isinstance(value, list):
        raise Invalid(f"must be a list of integers from 0 to {EXIT_CODE_MAX}", field)
    if len(value) > EXIT_CODES_MAX:
        raise Invalid(f"must have at most {EXIT_CODES_MAX} exit codes", field)
    codes = []
    for i, code in enumerate(value):
        if isinstance(code, float) and code.is_integer():
            code = int(code)
        if isinstance(code, bool) or not isinstance(code, int) or not 0 <= code <= EXIT_CODE_MAX:
            raise Invalid(f"must be an integer from 0 to {EXIT_CODE_MAX}", f"{field}[{i}]")
        codes.append(code)
    return codes


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


class After(BaseModel):
    """One condition of a RUN's ``after``: start once the run ``result_id`` ended (``when``)."""

    model_config = ConfigDict(**STRICT, extra="forbid")

    result_id: str = Field(pattern=ID_PATTERN, description="the run waited for (32 hex digits)")
    when: Literal["COMPLETE", "ENDED"] = Field(
        "COMPLETE", description="COMPLETE: once that run ended COMPLETE (any other end cancels this one); "
                                "ENDED: once it ended, however")


def check_after(value):
    """A RUN's ``after``: at most AFTER_MAX conditions, each naming another run once; None if not given.

    Each failure names its place, ``after[1].result_id``.
    """
    if value is None:
        return None
    if not isinstance(value, list):
        raise Invalid("must be a list of {\"result_id\", \"when\"} objects", "after")
    if len(value) > AFTER_MAX:
        raise Invalid(f"must have at most {AFTER_MAX} conditions", "after")
    seen = set()
    conditions = []
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            raise Invalid("must be an object {\"result_id\", \"when\"}", f"after[{i}]")
        for key in item:
            if key not in ("result_id", "when"):
                raise Invalid(f"{shown(key)} is not a field; accepted are result_id, when", f"after[{i}]")
        result_id = item.get("result_id")
        if not isinstance(result_id, str) or not re.fullmatch(r"[0-9a-f]{32}", result_id):
            raise Invalid("must be a result's id (32 hex digits)", f"after[{i}].result_id")
        when = item.get("when", "COMPLETE")
        if when not in WHEN:
            raise Invalid(f"must be one of {', '.join(WHEN)}", f"after[{i}].when")
        if result_id in seen:
            raise Invalid(f"{result_id} is named twice", f"after[{i}].result_id")
        seen.add(result_id)
        conditions.append(After(result_id=result_id, when=when))
    return conditions


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


def names_and_values(schema):
    """A map's schema as propertyNames and additionalProperties rather than patternProperties with
    additionalProperties false: the same constraint, in the shape openapi-python-client reads (it ignores
    patternProperties, so its client dropped every variable of ``env``)."""
    (pattern, value), = schema.pop("patternProperties").items()
    schema.update(propertyNames={"pattern": pattern}, additionalProperties=value)


CommandValue = Union[Annotated[str, Field(min_length=1, max_length=COMMAND_MAX, pattern=COMMAND_PATTERN)],
                     Annotated[list[Annotated[str, Field(pattern=NO_CONTROL_IN_TEXT)]], Field(min_length=1)]]
EnvMap = Annotated[
    dict[Annotated[str, Field(pattern=ENV_NAME_PATTERN)],
         Annotated[str, Field(max_length=ENV_VALUE_MAX, pattern=NO_CONTROL_IN_TEXT)]],
    Field(max_length=ENV_MAX, json_schema_extra=names_and_values)]


class Item(BaseModel):
    """One execution's own parameters (an entry of ``items``): its env merged over the run's, its command
    in place of the run's."""

    model_config = ConfigDict(**STRICT, extra="forbid")

    env: Optional[EnvMap] = Field(None, description="merged over the run's `env`")
    command: Optional[Union[CommandValue, None]] = Field(None, description="replaces the run's `command`")


def matrix_schema(schema):
    names_and_values(schema)
    schema.update(maxProperties=per_execution.MATRIX_KEYS_MAX, minProperties=1)


def matrix_map(max_times):
    """The matrix's type: each list at most ``max_times`` long (its product may be no more)."""
    return Annotated[
        dict[Annotated[str, Field(pattern=ENV_NAME_PATTERN)],
             Annotated[list[Annotated[str, Field(max_length=ENV_VALUE_MAX, pattern=NO_CONTROL_IN_TEXT)]],
                       Field(min_length=1, max_length=max_times)]],
        Field(json_schema_extra=matrix_schema)]


class RunBase(Request):
    model_config = ConfigDict(**STRICT, extra="forbid")
    SAYS: ClassVar[dict] = {"operation": "must be RUN", "task_id": "must be a string",
                            "per_index": "must be true or false"}
    NOTES: ClassVar[dict] = {"cpus": CPUS_NOTE}
    LIMITS: ClassVar[Limits] = Limits()

    @field_validator("times", "parallelism", "retries", "priority", "max_failures", "gpus", mode="before",
                     check_fields=False)
    @classmethod
    def _json_integer(cls, value):
        # JSON has one kind of number, and JSON Schema's integer is any number without a fraction:
        # 2.0 is the integer 2 (what a client's JSON encoder may write), 2.5 is refused
        if isinstance(value, float) and value.is_integer() and abs(value) <= 2 ** 53:
            return int(value)
        return value

    def params(self):
        """The parameters the result is run with (stored with it as ``params``): the run-wide ones; with
        ``items`` or ``matrix``, ``per_execution`` says which (each execution's own: ``spread``)."""
        params = self.model_dump(exclude={"operation", "task_id", "callback_url", "items", "matrix", "after",
                                          "per_index"})
        params["env"] = params["env"] or {}
        for field in POLICY_FIELDS + FLEET_FIELDS:
            if field in params and params[field] is None:
                del params[field]
        if not params.get("labels"):  # only when given: the params of a run without are as before
            params.pop("labels", None)
        if self.callback_url is not None:
            params["callback_url"] = self.callback_url
        spread = self.spread()
        if spread:
            params["times"] = per_execution.count(spread)
            params["per_execution"] = next(iter(spread))
        if self.after:  # only when given: the params of a run without are as before
            params["after"] = [condition.model_dump() for condition in self.after]
            params["per_index"] = self.per_index
        return params

    def spread(self):
        """``{"items": [...]}`` or ``{"matrix": {...}}`` (what each execution is given), or None."""
        if getattr(self, "items", None) is not None:
            return {"items": self.items}  # as _items made them: {"env"?, "command"?} with command a list
        if getattr(self, "matrix", None) is not None:
            return {"matrix": dict(self.matrix)}
        return None


def GIVEN(name, kind):  # noqa: N802 -- a schema: ``name`` is there, and not null
    return {"required": [name], "properties": {name: {"type": kind}}}


@functools.lru_cache(maxsize=8)
def run_request(limits=Limits()):
    """The RUN body's model under ``limits``."""

    class RunRequest(RunBase):
        """POST /task/{task_id}/ with RUN: run the task's image ``times`` times."""

        LIMITS: ClassVar[Limits] = limits
        REQUIRED: ClassVar[dict] = {"times": f"is required (an integer from 1 to {limits.max_times})"}
        model_config = ConfigDict(**STRICT, extra="forbid", json_schema_extra={
            # the two exit-code rules are one or the other (a null one is not given)
            "not": {"required": ["retry_on_exit_codes", "no_retry_on_exit_codes"],
                    "properties": {"retry_on_exit_codes": {"type": "array"},
                                   "no_retry_on_exit_codes": {"type": "array"}}},
            "allOf": [
                # times, unless items or matrix (not null) says how many; not both of those.  As if/then
                # rules, the shape NewTask's are in, which openapi-python-client reads past
                {"if": {"not": {"anyOf": [GIVEN("items", "array"), GIVEN("matrix", "object")]}},
                 "then": GIVEN("times", "integer")},
                {"if": GIVEN("items", "array"), "then": {"not": GIVEN("matrix", "object")}},
                # per_index pairs with the runs of a non-empty after
                {"if": {"required": ["per_index"], "properties": {"per_index": {"const": True}}},
                 "then": {"required": ["after"], "properties": {"after": {"type": "array", "minItems": 1}}}}]})

        operation: Literal["RUN"] = Field(description="RUN (IMPORT takes no other field)")
        task_id: Optional[str] = Field(None, pattern=NO_CONTROL,
                                       description="if given, must be the task of the path (else 409)")
        times: Optional[int] = Field(
            None, ge=1, le=limits.max_times, json_schema_extra={"x-setting": "RUN_MAX_TIMES"},
            description="how many executions; required unless `items` or `matrix` is given (then, if given, "
                        "it must equal their count)")
        command: Union[CommandValue, None] = Field(
            None, description="overrides the image's command (run directly, no shell). A string is split into "
                              "words at submit as a POSIX shell would (quotes and backslashes, no expansion: "
                              "Python's `shlex`); the list is what is stored (`params.command`) and run. A string "
                              "that cannot be split (an unbalanced quote, a trailing backslash) is refused with "
                              "400 naming `command`")
        env: Optional[EnvMap] = Field(
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
            None, pattern=memory_pattern(limits.max_memory), max_length=21, json_schema_extra={"x-setting": "CONTAINER_MAX_MEMORY"},
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
            None, min_length=1, max_length=CALLBACK_URL_MAX, json_schema_extra={"pattern": CALLBACK_URL_PATTERN},
            description="an http(s) URL POSTed the result when the run ends, signed ([webhooks.md](webhooks.md))")
        # checked whole by _items (per_execution.check_items, faults named items[3].env.FOO): the model's
        # own pass over up to RUN_MAX_TIMES entries is skipped, its schema is what the spec shows
        items: Optional[SkipValidation[Annotated[list[Item], Field(min_length=1, max_length=limits.max_times)]]] = Field(
            None, json_schema_extra={"x-setting": "RUN_MAX_TIMES"},
            description="one entry per execution, `{\"env\"?, \"command\"?}`: its env merged over the run's, "
                        "its command in place of the run's (execution `i` gets `items[i]`); at most "
                        f"`RUN_MAX_TIMES` entries and {per_execution.PER_EXECUTION_MAX_BYTES} bytes as JSON; "
                        "not with `matrix`")
        matrix: Optional[matrix_map(limits.max_times)] = Field(
            None, description=f"at most {per_execution.MATRIX_KEYS_MAX} variable names, each a non-empty list "
                              "of values: one execution per combination, its env merged over the run's; keys in "
                              "the order given, the last varying fastest (`{\"A\": [\"1\", \"2\"], \"B\": "
                              "[\"x\", \"y\"]}` runs A=1 B=x, A=1 B=y, A=2 B=x, A=2 B=y as indices 0..3); at "
                              f"most `RUN_MAX_TIMES` combinations and {per_execution.PER_EXECUTION_MAX_BYTES} "
                              "bytes as JSON; not with `items`")

        max_failures: Optional[int] = Field(
            None, ge=1, le=limits.max_times, json_schema_extra={"x-setting": "RUN_MAX_TIMES"},
            description="once this many executions ended ERROR, or KILLED by their `timeout`, after their "
                        "retries, the rest are stopped (queued ones end CANCELLED, running ones KILLED, "
                        "`reason` \"max_failures\") and the run ends ERROR with `reason` \"max_failures\"")
        retry_on_exit_codes: Optional[Annotated[
            list[Annotated[int, Field(ge=0, le=EXIT_CODE_MAX)]], Field(max_length=EXIT_CODES_MAX)]] = Field(
            None, description="with `retries`: only an execution that exited with one of these codes is "
                              "retried (a failure with no exit code, such as a lost runner, still is)")
        no_retry_on_exit_codes: Optional[Annotated[
            list[Annotated[int, Field(ge=0, le=EXIT_CODE_MAX)]], Field(max_length=EXIT_CODES_MAX)]] = Field(
            None, description="with `retries`: an execution that exited with one of these codes is not "
                              "retried; not with `retry_on_exit_codes` (400)")
        deadline: Optional[float] = Field(
            None, ge=1, le=DEADLINE_MAX,
            description="seconds for the whole run, from its submission (a run that waits for others: from "
                        "the end of its wait): then its queued executions end "
                        "CANCELLED, its running ones KILLED (`reason` \"deadline\") and the run ends "
                        "KILLED with `reason` \"deadline\"")

        @field_validator("retry_on_exit_codes", mode="before")
        @classmethod
        def _retry_on(cls, value):
            return check_exit_codes(value, "retry_on_exit_codes")

        @field_validator("no_retry_on_exit_codes", mode="before")
        @classmethod
        def _no_retry_on(cls, value):
            return check_exit_codes(value, "no_retry_on_exit_codes")

        @model_validator(mode="after")
        def _one_exit_code_rule(self):
            if self.retry_on_exit_codes is not None and self.no_retry_on_exit_codes is not None:
                raise Invalid("give retry_on_exit_codes or no_retry_on_exit_codes, not both",
                              "no_retry_on_exit_codes")
            return self

        after: Optional[Annotated[list[After], Field(max_length=AFTER_MAX)]] = Field(
            None, description=f"start only once other runs ended: at most {AFTER_MAX} conditions "
                              "`{\"result_id\", \"when\": \"COMPLETE\" (default) or \"ENDED\"}`, each naming "
                              "a run once. Until they hold the run stays QUEUED with `waiting_for`; one that can "
                              "no longer hold (a run waited for COMPLETE ended otherwise) ends it CANCELLED, its "
                              "`reason` naming it. An unknown `result_id` is a 400 naming `after[i].result_id`")
        per_index: bool = Field(
            False, description="with `after`: execution i waits only for execution i of each run named "
                               "(equal `times` required, else 400 naming `per_index`), instead of the whole run")

        constraints: Optional[fleet.Constraints] = Field(
            None, description=f"runner labels its executions need, all of them (`{{\"zone\": \"eu\"}}`): only a "
                              "runner whose `RUNNER_LABELS` have each of these values claims them, still in "
                              f"priority order; at most {fleet.LABELS_MAX} labels. While no live runner has "
                              "them the run stays QUEUED with `unschedulable` saying so")
        gpus: Optional[int] = Field(
            None, ge=0, le=fleet.GPUS_MAX,
            description="GPUs each execution gets, its own: only a runner with this many of its `RUNNER_GPUS` "
                        "free claims it, and hands the container those device ids (NVIDIA device requests)")

        @field_validator("constraints", mode="before")
        @classmethod
        def _constraints(cls, value):
            return fleet.check_labels(value, "constraints")

        @model_validator(mode="after")
        def _per_index(self):
            if self.per_index and not self.after:
                raise Invalid("needs `after` (the runs whose executions to pair with)", "per_index")
            return self

        labels: Optional[LabelMap] = Field(
            None, description=LABELS_DESCRIPTION + "; on the result (`labels`), its events and webhook, and on "
                              "its containers as Docker labels `user.stevedore/<key>`")

        @field_validator("labels", mode="before")
        @classmethod
        def _labels(cls, value):
            return check_labels(value)

        @field_validator("after", mode="before")
        @classmethod
        def _after(cls, value):
            return check_after(value)

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

        @field_validator("items", mode="before")
        @classmethod
        def _items(cls, value):
            if value is None:
                return None
            return per_execution.check_items(value, limits.max_times, split_command, ENV_MAX, ENV_VALUE_MAX)

        @field_validator("matrix", mode="before")
        @classmethod
        def _matrix(cls, value):
            if value is None:
                return None
            return per_execution.check_matrix(value, limits.max_times, ENV_VALUE_MAX)

        @model_validator(mode="after")
        def _how_many(self):
            spread = self.spread()
            if self.items is not None and self.matrix is not None:
                raise Invalid("cannot be given with items; send one of them", "matrix")
            if spread is None:
                if self.times is None:
                    raise Invalid(self.REQUIRED["times"], "times")
            elif self.times is not None and self.times != per_execution.count(spread):
                raise Invalid(f"must equal the number of executions {next(iter(spread))} makes "
                              f"({per_execution.count(spread)}), or be left out", "times")
            return self

    return RunRequest


RunRequest = run_request()


def run_params(body, limits=Limits()):
    """Validate a RUN body (its operation checked already, or implied); the parameters the result is
    run with."""
    return run_parts(body, limits)[0]


def run_parts(body, limits=Limits()):
    """Validate a RUN body: (the run-wide parameters, what each execution is given or None)."""
    if not isinstance(body, dict):
        raise Invalid("must be a JSON object", "body")
    run = parse(run_request(limits), {"operation": "RUN", **body})
    return run.params(), run.spread()
