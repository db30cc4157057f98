"""The RUN body's fields (``run.py`` builds the model of them): their bounds and the checks each one
takes at the door."""
import re
import shlex
from typing import Annotated, Literal, Optional, Union
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field

from stevedore_jobs.contract.checks import (
    COMMAND_PATTERN, ID_PATTERN, NO_CONTROL_IN_TEXT, Invalid, memory_bytes, shown, size_text)
from stevedore_jobs.contract import items as per_execution
from stevedore_jobs.contract.requests import STRICT, number


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


def disk_within(value, max_disk):
    """``value`` (a size) if it is within ``max_disk`` bytes (None: no ceiling)."""
    size = memory_bytes(value, "disk")
    if max_disk and size and size > max_disk:
        raise Invalid(f"must be at most {size_text(max_disk)}, this installation's ceiling "
                      "(CONTAINER_MAX_DISK)", "disk")
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
