"""Secrets by reference (issue 18): ``PUT /secret/{name}/`` and a RUN's ``secret_env``.

A secret is a value stored sealed, per team, under a name; it is never read back
(only its name and when it changed are listed).  A RUN names secrets in
``secret_env`` (``{"API_KEY": "db-password"}``): only the references are stored
with the run, and each execution's container gets the values in its
environment, unsealed when a runner claims it (docs/api.md "Secrets").
"""
import re
from typing import Annotated, ClassVar, Optional

from pydantic import ConfigDict, Field, field_validator

from stevedore_jobs.contract.checks import Invalid, shown
from stevedore_jobs.contract.requests import STRICT, Page, Request
from stevedore_jobs.contract.responses import Answer
from stevedore_jobs.contract.run_fields import ENV_NAME_PATTERN, names_and_values

# env-var-like (API_KEY) or DNS-like (db-password, prod.api.key): letters, digits, _ . -, not starting
# with . or -, at most 128 characters (a path segment: no slash; never "." or "..")
SECRET_NAME_MAX = 128
SECRET_NAME_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$"
# the value: at most this many bytes as UTF-8.  Any text but NUL: an environment variable is a C string
# (execve(2) ends it at the first NUL, and Docker refuses one); a lone surrogate is no UTF-8 at all
SECRET_VALUE_MAX_BYTES = 65536
SECRET_VALUE_PATTERN = "^[^\\x00]*$"
# a RUN names at most this many (each value up to 64 KiB: all of them within what execve(2) takes)
SECRET_ENV_MAX = 20
SECRET_DESCRIPTION = ("variables of the container's environment whose values are secrets of the run's team (its "
                      "task's), by name (`{\"API_KEY\": \"db-password\"}`): only the names are stored with the run (and "
                      "shown in `params.secret_env`); each value is unsealed when a runner claims the execution, "
                      f"so a rotation counts for executions not started yet. At most {SECRET_ENV_MAX}; each secret "
                      "must exist when the RUN is sent (else 400 naming `secret_env.VAR`), and a variable may not "
                      "also be in `env`, `items[i].env` or `matrix`. An execution whose secret was deleted before "
                      "it started ends ERROR, its `reason` naming the secret")


def check_name(value, field="name"):
    """A secret's name (``SECRET_NAME_PATTERN``), or ``Invalid`` naming ``field``."""
    if not isinstance(value, str) or not re.fullmatch(SECRET_NAME_PATTERN[1:-1], value):
        raise Invalid(f"{shown(value)} is not a secret's name: 1 to {SECRET_NAME_MAX} letters, digits, "
                      "'_', '.' or '-', not starting with '.' or '-'", field)
    return value


def check_value(value):
    """A secret's value: text of at most SECRET_VALUE_MAX_BYTES bytes as UTF-8, no NUL.  Never echoed."""
    if not isinstance(value, str):
        raise Invalid("must be a string", "value")
    if "\x00" in value:
        raise Invalid(f"must not contain NUL (U+0000 at character {value.index(chr(0))}): an environment "
                      "variable ends at the first NUL", "value")
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise Invalid(f"must be UTF-8 text (a lone surrogate at character {exc.start})", "value") from None
    if size > SECRET_VALUE_MAX_BYTES:
        raise Invalid(f"must be at most {SECRET_VALUE_MAX_BYTES} bytes as UTF-8 (it is {size})", "value")
    return value


def check_secret_env(value, taken=()):
    """A RUN's ``secret_env`` (None if not given): variable names as ``env``'s, values secret names, none of
    the variables ``taken`` by the run's ``env``, items or matrix.  Each fault names ``secret_env.VAR``."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise Invalid("must be an object {\"VARIABLE\": \"secret-name\"}", "secret_env")
    if not value:
        raise Invalid("must name at least one variable (leave it out for none)", "secret_env")
    if len(value) > SECRET_ENV_MAX:
        raise Invalid(f"must have at most {SECRET_ENV_MAX} variables", "secret_env")
    for key, name in value.items():
        if not re.fullmatch(ENV_NAME_PATTERN[1:-1], key):
            reserved = key.startswith("STEVEDORE_")
            raise Invalid(f"{shown(key)}: " + ("the STEVEDORE_ prefix is reserved" if reserved
                                               else "is not a valid variable name"), "secret_env")
        check_name(name, f"secret_env.{key}")
        if key in taken:
            raise Invalid("is also given in env (or items, matrix): a variable comes from one or the other",
                          f"secret_env.{key}")
    return value


SecretEnvMap = Annotated[
    dict[Annotated[str, Field(pattern=ENV_NAME_PATTERN)],
         Annotated[str, Field(pattern=SECRET_NAME_PATTERN, max_length=SECRET_NAME_MAX)]],
    Field(min_length=1, max_length=SECRET_ENV_MAX, json_schema_extra=names_and_values)]


class SecretValue(Request):
    """PUT /secret/{name}/: create the secret, or rotate it (a new value for executions not started yet)."""

    model_config = ConfigDict(**STRICT, extra="forbid")
    REQUIRED: ClassVar[dict] = {"value": "is required (the secret's value, a string)"}
    SAYS: ClassVar[dict] = {"value": "must be a string"}

    value: str = Field(
        pattern=SECRET_VALUE_PATTERN, max_length=SECRET_VALUE_MAX_BYTES,
        description=f"the value: UTF-8 text of at most {SECRET_VALUE_MAX_BYTES} bytes, any characters but NUL "
                    "(an environment variable ends at the first NUL). Sealed at once, never shown again")

    @field_validator("value", mode="before")
    @classmethod
    def _value(cls, value):
        return check_value(value)


class Secret(Answer):
    """A secret as listed: never its value."""

    name: str
    team: str = Field(description="the team it belongs to")
    created_at: float
    updated_at: float = Field(description="when its value was last set (a rotation)")
    created_by: Optional[str] = Field(None, description="the principal that created it")
    updated_by: Optional[str] = Field(None, description="the principal that last set its value")


class SecretListQuery(Page):
    """GET /secret/: by name; ``after`` is a name."""

    after: Optional[str] = Field(None, pattern=SECRET_NAME_PATTERN, max_length=SECRET_NAME_MAX,
                                 description="the name after which the page starts (the Link header's)")
    after_key: Optional[str] = Field(None, pattern=SECRET_NAME_PATTERN, max_length=SECRET_NAME_MAX,
                                     description="the same name, as the Link header gives it: the page goes on "
                                                 "after it even when that secret was deleted since; without `after`: the names "
                                                 "after it")
    SAYS: ClassVar[dict] = {**Page.SAYS, "after": "must be a secret's name",
                            "after_key": "must be a secret's name (the Link header's)"}


def paths():
    """/secret/ and /secret/{name}/ for the served spec (``openapi._spec``)."""
    from stevedore_jobs.contract import openapi as oa  # at call time: openapi imports this module

    name = [{"name": "name", "in": "path", "required": True,
             "schema": {"type": "string", "pattern": SECRET_NAME_PATTERN, "maxLength": SECRET_NAME_MAX}}]
    refused = "the caller's role may not change secrets (admin and member may), or a cross-site request with " \
              "the sign-in cookie"
    put = oa.operation(
        "create the secret (201), or rotate it (200): executions not started yet get the new value",
        {**oa.ok("rotated", oa.ref("Secret")), **oa.ok("created", oa.ref("Secret"), "201")},
        request=oa.ref("SecretValue"), changes=True)
    delete = oa.operation("delete the secret: an execution naming it that has not started ends ERROR",
                          {"204": {"description": "deleted"}, **oa.not_found("secret")}, changes=True)
    for op in (put, delete):
        op["responses"]["403"] = oa.error(refused)
    put["responses"]["503"] = oa.error("no usable STEVEDORE_CREDENTIALS_KEY to seal it with, or a service "
                                       "does not answer")
    return {
        "/secret/": {"get": oa.operation(
            "the caller's team's secrets by name: names and times, never values",
            {**oa.ok("a page of secrets", oa.array("Secret"), **oa.LINK), **oa.UNKNOWN_AFTER},
            oa.query_parameters(SecretListQuery))},
        "/secret/{name}/": {
            "parameters": name,
            "get": oa.operation("the secret's name and times (never its value)",
                                {**oa.ok("the secret", oa.ref("Secret")), **oa.not_found("secret")}),
            "put": put,
            "delete": delete},
    }
