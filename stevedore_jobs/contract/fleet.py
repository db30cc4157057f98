"""Runner labels, a RUN's ``constraints`` and ``gpus``, and ``GET /runner/`` (the runners the scheduler knows).

A runner declares labels (``RUNNER_LABELS=gpu=a100,zone=eu``); a RUN's ``constraints`` is an object of
label values its runner must have, all of them (``{"zone": "eu"}``).  Both follow one rule: at most
``LABELS_MAX`` labels, keys and values short words (``LABEL_KEY_PATTERN``, ``LABEL_VALUE_PATTERN``).
"""
import re
from typing import Annotated, ClassVar, Literal, Optional

from pydantic import Field

from stevedore_jobs.contract.checks import Invalid, shown
from stevedore_jobs.contract.requests import Page
from stevedore_jobs.contract.responses import Answer

LABELS_MAX = 16
LABEL_KEY_PATTERN = r"^[A-Za-z0-9]([A-Za-z0-9._/-]{0,61}[A-Za-z0-9])?$"
LABEL_VALUE_PATTERN = r"^[A-Za-z0-9._-]{0,63}$"
GPUS_MAX = 16
GPU_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
RUNNER_ID_PATTERN = r"^[^\x00-\x1f\x7f-\x9f/]{1,200}$"

LabelKey = Annotated[str, Field(pattern=LABEL_KEY_PATTERN)]
LabelValue = Annotated[str, Field(pattern=LABEL_VALUE_PATTERN, max_length=63)]


def constraints_schema(schema):
    """The map as propertyNames and additionalProperties (the shape generated clients read)."""
    (pattern, value), = schema.pop("patternProperties").items()
    schema.update(propertyNames={"pattern": pattern}, additionalProperties=value, maxProperties=LABELS_MAX)


Constraints = Annotated[dict[LabelKey, LabelValue], Field(json_schema_extra=constraints_schema)]


def check_labels(value, field, what="label"):
    """A map of labels (a RUN's ``constraints``, a runner's labels): each failure names ``field.key``."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise Invalid(f"must be an object of {what} values, e.g. {{\"zone\": \"eu\"}}", field)
    if len(value) > LABELS_MAX:
        raise Invalid(f"must have at most {LABELS_MAX} {what}s", field)
    for key, item in value.items():
        if not isinstance(key, str) or not re.fullmatch(LABEL_KEY_PATTERN[1:-1], key):
            raise Invalid(f"{shown(key)} is not a {what} name: 1 to 63 letters, digits and . _ / - "
                          "(starting and ending with a letter or digit)", field)
        if not isinstance(item, str) or not re.fullmatch(LABEL_VALUE_PATTERN[1:-1], item):
            raise Invalid("must be a string of at most 63 letters, digits and . _ -", f"{field}.{key}")
    return dict(value)


def parse_labels(text, field="RUNNER_LABELS"):
    """``gpu=a100,zone=eu`` as a dict (a runner's setting); raises ``Invalid`` naming what is wrong."""
    labels = {}
    for part in str(text or "").split(","):
        if not part.strip():
            continue
        key, sep, value = part.strip().partition("=")
        if not sep:
            raise Invalid(f"{shown(part.strip())} is not key=value", field)
        if key.strip() in labels:
            raise Invalid(f"{shown(key.strip())} is given twice", field)
        labels[key.strip()] = value.strip()
    return check_labels(labels, field)


def parse_gpus(text, field="RUNNER_GPUS"):
    """``0,1`` (or GPU UUIDs) as a tuple of device ids, each once."""
    ids = []
    for part in str(text or "").split(","):
        part = part.strip()
        if not part:
            continue
        if not re.fullmatch(GPU_ID_PATTERN[1:-1], part):
            raise Invalid(f"{shown(part)} is not a device id (an index such as 0, or a GPU UUID)", field)
        if part in ids:
            raise Invalid(f"{shown(part)} is given twice", field)
        ids.append(part)
    if len(ids) > 64:
        raise Invalid("must name at most 64 devices", field)
    return tuple(ids)


def describe(labels):
    """``zone=eu, gpu=a100`` (``{}``: "no labels")."""
    return ", ".join(f"{key}={value}" for key, value in (labels or {}).items()) or "no labels"


class Runner(Answer):
    """A runner the scheduler heard from (``GET /runner/``)."""

    runner_id: str = Field(description="its RUNNER_ID (by default its host name)")
    id: str = Field(description="the same as runner_id")
    status: Literal["LIVE", "LOST"] = Field(
        description="LIVE: heard from within LEASE_SECONDS; LOST: silent longer (listed for a while, then gone)")
    labels: dict[str, str] = Field(description="its RUNNER_LABELS")
    slots: Optional[int] = Field(description="executions it runs at once (RUNNER_SLOTS)")
    busy: Optional[int] = Field(description="slots running an execution now")
    free: Optional[int] = Field(description="slots free now")
    gpus: list[str] = Field(description="its GPU device ids (RUNNER_GPUS)")
    gpus_free: Optional[int] = Field(description="of those, how many no execution holds now")
    engine: Optional[str] = Field(description="its Docker engine's version and operating system, when known")
    first_seen: float = Field(description="when a scheduler first heard from it (epoch seconds)")
    last_heartbeat: float = Field(description="when a scheduler last heard from it (heartbeat or claim)")


class RunnerListQuery(Page):
    """?limit= and ?after= (a runner's id) of ``GET /runner/``, by id."""

    after: Optional[str] = Field(None, pattern=RUNNER_ID_PATTERN, max_length=200,
                                 description="the runner id after which the page starts (the Link header's)")
    status: Optional[Literal["LIVE", "LOST"]] = Field(None, description="only runners in this status")
    SAYS: ClassVar[dict] = {"after": "must be a runner's id", "status": "must be one of LIVE, LOST"}
