"""The RUN body: POST /task/{task_id}/ with ``"operation": "RUN"``, under the installation's ``Limits``
(its fields' bounds and checks: ``run_fields.py``)."""
import functools
from typing import Annotated, ClassVar, Literal, Optional, Union

from pydantic import ConfigDict, Field, SkipValidation, field_validator, model_validator

from stevedore_jobs.contract import fleet
from stevedore_jobs.contract import items as per_execution
from stevedore_jobs.contract.checks import (
    CALLBACK_URL_PATTERN, NO_CONTROL, Invalid, json_integer, memory_pattern, size_text)
from stevedore_jobs.contract.labels import LABELS_DESCRIPTION, LabelMap, check_labels
from stevedore_jobs.contract.requests import STRICT, Limits, Request, parse
from stevedore_jobs.contract.secrets import SECRET_DESCRIPTION, SecretEnvMap, check_secret_env
from stevedore_jobs.contract.run_fields import (  # noqa: F401 -- part of this module's names
    PRIORITY_DEFAULT, PRIORITY_MAX,     CALLBACK_URL_MAX, COMMAND_MAX, ENV_MAX, ENV_NAME_PATTERN, ENV_VALUE_MAX, TIMEOUT_MAX, PARALLELISM_MAX,
    RETRIES_MAX, DEADLINE_MAX, EXIT_CODES_MAX, EXIT_CODE_MAX, POLICY_FIELDS, FLEET_FIELDS, AFTER_MAX, WHEN,
    split_command, check_env, check_exit_codes, check_callback_url, After, check_after, memory_within, disk_within,
    CPUS_MIN, CPUS_NOTE, cpus_within, names_and_values, CommandValue, EnvMap, Item, matrix_schema, matrix_map)


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
        return json_integer(value)

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
        if params.get("disk") is None:  # as labels
            params.pop("disk", None)
        if not params.get("secret_env"):  # references to secrets only, never a value; as labels
            params.pop("secret_env", None)
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
        disk: Optional[str] = Field(
            None, pattern=memory_pattern(limits.max_disk), max_length=21,
            json_schema_extra={"x-setting": "CONTAINER_MAX_DISK"},
            description=f"the most an execution may write to the runner's disk (its container's writable layer "
                        f"and the volumes its image declares), a size such as `\"512m\"` or `\"10g\"` from 6m up "
                        f"to {size_text(limits.max_disk)} (default: the runner's `CONTAINER_DEFAULT_DISK`); past "
                        "it the container is killed and the execution ends ERROR, its reason naming `disk`. More "
                        f"than the ceiling is a 400 `disk: must be at most {size_text(limits.max_disk)}, this "
                        "installation's ceiling (CONTAINER_MAX_DISK)`")
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

        secret_env: Optional[SecretEnvMap] = Field(None, description=SECRET_DESCRIPTION)

        @field_validator("secret_env", mode="before")
        @classmethod
        def _secret_env(cls, value):
            return check_secret_env(value)

        @model_validator(mode="after")
        def _secret_env_apart(self):
            """A variable comes from env (items, matrix) or from a secret, never both."""
            if self.secret_env:
                taken = set(self.env or {}) | set(self.matrix or {})
                for item in self.items or ():
                    taken |= set(item.get("env") or {})
                check_secret_env(self.secret_env, taken)
            return self

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

        @field_validator("disk", mode="before")
        @classmethod
        def _disk(cls, value):
            return disk_within(value, limits.max_disk)

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
