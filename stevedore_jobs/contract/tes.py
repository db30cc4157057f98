"""GA4GH TES v1.1 requests, as Stevedore takes them under ``/ga4gh/tes/v1/`` (docs/tes.md).

The models follow TES 1.1's schema (its names, types and enums), with the bounds
Stevedore adds so that no task can hold a service: how many executors, inputs,
outputs and volumes, how long a path, a URL or a command is.  A path is absolute
and may not leave its directory (no ``..``); a task's tags are Stevedore labels
(stevedore_jobs/contract/labels.py).  A broken rule is one ``Invalid`` naming the
field the way TES spells it: ``executors[0].image: is required``.  The responses
are in stevedore_jobs/contract/tes_views.py.
"""
import posixpath
import re
from typing import Annotated, Literal, Optional

import pydantic
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from stevedore_jobs.contract.checks import REFERENCE_PATTERN, Invalid, parse_reference
from stevedore_jobs.contract.labels import LABELS_DESCRIPTION, TES_LABEL, LabelMap, check_labels  # noqa: F401

EXECUTORS_MAX = 20
FILES_MAX = 100          # inputs, and outputs, of one task
VOLUMES_MAX = 50
PATH_MAX = 1024
URL_MAX = 2048
CONTENT_MAX = 128 * 1024  # characters of an input's inline content
ARGS_MAX = 1000
ARG_MAX = 32 * 1024
ENV_MAX = 200
TEXT_MAX = 255            # a name
DESCRIPTION_MAX = 4096
BACKEND_PARAMETERS_MAX = 50
ZONES_MAX = 50
# the container's own filesystems (devices, the kernel's views): no volume may be mounted in them, it would
# hide them (a stdin of /dev/null is redirected from the device itself)
ENGINE_DIRS = ("/dev", "/proc", "/sys")
IMAGE_TASK_PREFIX = "tes: "  # the name of a task TES makes for an executor's image: reserved (``reserved_name``)


def reserved_name(name):
    """Whether a task name is of the form reserved for the tasks TES makes (``tes: <image>``, any case)."""
    return name.lower().startswith(IMAGE_TASK_PREFIX.strip())

FileType = Literal["FILE", "DIRECTORY"]
State = Literal["UNKNOWN", "QUEUED", "INITIALIZING", "RUNNING", "PAUSED", "COMPLETE", "EXECUTOR_ERROR",
                "SYSTEM_ERROR", "CANCELED", "PREEMPTED", "CANCELING"]
STATES = State.__args__
View = Literal["MINIMAL", "BASIC", "FULL"]
# resources.backend_parameters Stevedore acts on (docs/tes.md): none yet, so with
# backend_parameters_strict every one given is refused
BACKEND_PARAMETERS = frozenset()

_ENV_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,255}")
_WILDCARD = re.compile(r"[*?\[]")

Text = Annotated[str, Field(max_length=TEXT_MAX)]
Description = Annotated[str, Field(max_length=DESCRIPTION_MAX)]
Path = Annotated[str, Field(min_length=1, max_length=PATH_MAX, description="an absolute path in the container")]
Url = Annotated[str, Field(min_length=1, max_length=URL_MAX)]


def in_engine_dirs(path):
    """Whether ``path`` (normalised) is in one of ``ENGINE_DIRS``."""
    return any(path == root or path.startswith(root + "/") for root in ENGINE_DIRS)


def container_path(value, field, wildcards=False, mounted=False):
    """An absolute path, normalised, that never leaves its directory; raises ``Invalid`` naming ``field``.
    ``mounted``: a path a volume holds, so not in ``ENGINE_DIRS``."""
    if not value.startswith("/"):
        raise Invalid("must be an absolute path", field)
    if ".." in value.split("/"):
        raise Invalid("must not contain '..' (a path may not leave its directory)", field)
    path = posixpath.normpath(value)
    if path.startswith("//"):
        path = "/" + path.lstrip("/")
    if path == "/":
        raise Invalid("must name a file or directory below /", field)
    if not wildcards and _WILDCARD.search(path):
        raise Invalid("may not hold the wildcards * ? [ here", field)
    if mounted and in_engine_dirs(path):
        raise Invalid("may not be in /dev, /proc or /sys: the container's own, which a volume there would hide",
                      field)
    return path


class Model(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore", regex_engine="python-re")


class Input(Model):
    name: Optional[Text] = None
    description: Optional[Description] = None
    url: Optional[Url] = Field(None, description="http(s)://, or file:// under an operator-allowed directory; "
                                                  "other schemes are accepted and end the task SYSTEM_ERROR")
    path: Path
    type: FileType = "FILE"
    content: Optional[Annotated[str, Field(max_length=CONTENT_MAX)]] = Field(
        None, description=f"the file's content inline (at most {CONTENT_MAX} characters), instead of url")
    streamable: Optional[bool] = None

    @model_validator(mode="after")
    def _source(self):
        if (self.url is None) == (self.content is None):
            raise Invalid("needs exactly one of url and content", "url")
        if self.content is not None and self.type != "FILE":
            raise Invalid("content can only make a FILE", "type")
        return self


class Output(Model):
    name: Optional[Text] = None
    description: Optional[Description] = None
    url: Url
    path: Path = Field(description="may hold wildcards (* ? [...]) as TES 1.1 allows; see path_prefix")
    path_prefix: Optional[Path] = Field(None, description="with a wildcard path: what is cut from each "
                                                          "matched path before it is appended to url")
    type: FileType = "FILE"


class Executor(Model):
    image: Annotated[str, Field(min_length=1, max_length=255, pattern=REFERENCE_PATTERN)]
    command: Annotated[list[Annotated[str, Field(max_length=ARG_MAX)]], Field(min_length=1, max_length=ARGS_MAX)]
    workdir: Optional[Path] = None
    stdin: Optional[Path] = None
    stdout: Optional[Path] = None
    stderr: Optional[Path] = None
    env: Optional[Annotated[dict[str, Annotated[str, Field(max_length=ARG_MAX)]],
                            Field(max_length=ENV_MAX)]] = None
    ignore_error: Optional[bool] = None

    @field_validator("image")
    @classmethod
    def _image(cls, value):
        parse_reference(value)
        return value

    @field_validator("env")
    @classmethod
    def _env(cls, value):
        for key in value or {}:
            if not _ENV_KEY.fullmatch(key):
                raise Invalid("must be a variable name (letters, digits, _ . -; not a digit first; at most 256)",
                              f"env.{key[:60]}")
        return value


class Resources(Model):
    cpu_cores: Optional[Annotated[int, Field(ge=1, le=1024)]] = None
    preemptible: Optional[bool] = Field(None, description="accepted; not applicable (no runner is preempted)")
    ram_gb: Optional[Annotated[float, Field(gt=0, le=1024, strict=False)]] = None
    disk_gb: Optional[Annotated[float, Field(gt=0, le=1024 * 1024, strict=False)]] = Field(
        None, description="accepted; not enforced (Docker volumes have no size limit on most engines)")
    zones: Optional[Annotated[list[Text], Field(max_length=ZONES_MAX)]] = Field(
        None, description="accepted; not applicable")
    backend_parameters: Optional[Annotated[dict[Text, Annotated[str, Field(max_length=DESCRIPTION_MAX)]],
                                           Field(max_length=BACKEND_PARAMETERS_MAX)]] = None
    backend_parameters_strict: Optional[bool] = None

    @model_validator(mode="after")
    def _strict(self):
        if self.backend_parameters_strict:
            for key in self.backend_parameters or {}:
                if key not in BACKEND_PARAMETERS:
                    raise Invalid("is not a backend parameter Stevedore supports (backend_parameters_strict "
                                  "is true)", f"resources.backend_parameters.{key[:60]}")
        return self


class NewTask(Model):
    """The body of ``POST /ga4gh/tes/v1/tasks``."""

    name: Optional[Text] = None
    description: Optional[Description] = None
    inputs: Optional[Annotated[list[Input], Field(max_length=FILES_MAX)]] = None
    outputs: Optional[Annotated[list[Output], Field(max_length=FILES_MAX)]] = None
    resources: Optional[Resources] = None
    executors: Annotated[list[Executor], Field(min_length=1, max_length=EXECUTORS_MAX)]
    volumes: Optional[Annotated[list[Path], Field(max_length=VOLUMES_MAX)]] = None
    tags: Optional[LabelMap] = Field(None, description="TES tags are Stevedore labels: " + LABELS_DESCRIPTION)

    @field_validator("tags")
    @classmethod
    def _tags(cls, value):
        return check_labels(value, "tags")  # TES_LABEL refused as a tag too: it is Stevedore's mark

    @model_validator(mode="after")
    def _paths(self):
        for i, item in enumerate(self.inputs or []):
            item.path = container_path(item.path, f"inputs[{i}].path", mounted=True)
            _apart(item, self.inputs[:i], i)
        for i, item in enumerate(self.outputs or []):
            item.path = container_path(item.path, f"outputs[{i}].path", wildcards=True, mounted=True)
            if item.path_prefix is not None:
                item.path_prefix = container_path(item.path_prefix, f"outputs[{i}].path_prefix")
        for i, executor in enumerate(self.executors):
            for field in ("workdir", "stdin", "stdout", "stderr"):
                if getattr(executor, field) is not None:
                    setattr(executor, field, container_path(getattr(executor, field),
                                                            f"executors[{i}].{field}"))
        self.volumes = [container_path(path, f"volumes[{i}]", mounted=True)
                        for i, path in enumerate(self.volumes or [])]
        return self


def _apart(item, earlier, i):
    """Refuse input ``i`` if it would be staged over an earlier one: at its path, or inside (or around)
    one that is a FILE. The later would replace the earlier unseen, and the task run without it."""
    for j, other in enumerate(earlier):
        if item.path == other.path:
            raise Invalid(f"is inputs[{j}].path already; two inputs cannot be one file", f"inputs[{i}].path")
        for inner, outer in ((item, other), (other, item)):
            if outer.type == "FILE" and inner.path.startswith(outer.path + "/"):
                raise Invalid(f"{inner.path} would lie inside {outer.path}, which inputs"
                              f"[{j if outer is other else i}] makes a FILE", f"inputs[{i}].path")


def _field(loc):
    """A pydantic location as TES spells the field: ``executors[0].command[2]``."""
    text = ""
    for part in loc:
        if part == "[key]":
            continue
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += ("." if text else "") + str(part)
    return text[:200] or "body"


_SAYS = {"missing": "is required", "string_too_long": "is too long", "too_long": "has too many items",
         "too_short": "must not be empty", "string_pattern_mismatch": "is not valid",
         "literal_error": "is not one of the values TES allows"}


def parse_task(body):
    """The body as a ``NewTask``, or the ``Invalid`` naming the first field that is wrong."""
    if not isinstance(body, dict):
        raise Invalid("must be a JSON object", "body")
    try:
        return NewTask.model_validate(body)
    except pydantic.ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        cause = (error.get("ctx") or {}).get("error")
        loc = list(error["loc"])
        if isinstance(cause, Invalid):
            if loc and isinstance(loc[-1], str) and cause.field.split(".")[0] == loc[-1]:
                loc = loc[:-1]  # a field's own validator names the field already
            raise Invalid(cause.message, f"{_field(loc)}.{cause.field}" if loc else cause.field) from None
        says = _SAYS.get(error["type"]) or error["msg"].lower()
        if error["type"] == "literal_error":
            says += f" ({(error.get('ctx') or {}).get('expected', '')})"
        raise Invalid(says[:300], _field(loc)) from None
