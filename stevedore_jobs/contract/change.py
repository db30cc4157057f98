"""PATCH /result/{result_id}/: change a running run's ``parallelism`` and/or ``priority``.

What changes is what executions not yet started are held to: a running execution goes on as it is.
"""
import re
from typing import ClassVar, Optional

from pydantic import ConfigDict, Field, field_validator, model_validator

from stevedore_jobs.contract.checks import Invalid, json_integer
from stevedore_jobs.contract.requests import STRICT, Request
from stevedore_jobs.contract.run import PARALLELISM_MAX, PRIORITY_MAX

CHANGE_FIELDS = ("parallelism", "priority")
PLAIN = re.compile(r"[A-Za-z0-9_.-]{1,80}")


class ResultChange(Request):
    """PATCH /result/{result_id}/: at least one of ``parallelism`` and ``priority``."""

    # at least one of the two, as an if/then rule (openapi-python-client reads past it)
    model_config = ConfigDict(**STRICT, extra="forbid", json_schema_extra={
        "allOf": [{"if": {"not": {"required": ["parallelism"]}}, "then": {"required": ["priority"]}}]})
    SAYS: ClassVar[dict] = {"parallelism": f"must be an integer from 1 to {PARALLELISM_MAX}, or null (no limit)"}

    parallelism: Optional[int] = Field(
        None, ge=1, le=PARALLELISM_MAX,
        description="at most this many executions of the run held by runners at once from now on; null: no "
                    "limit. Raising it lets more start at once (runners are woken); lowering it stops none "
                    "that runs, fewer start")
    priority: int = Field(
        None, ge=0, le=PRIORITY_MAX, json_schema_extra=lambda schema: schema.pop("default", None),
        description="the priority of the run's executions not yet started (queued ones are reordered at once)")

    @field_validator("parallelism", "priority", mode="before")
    @classmethod
    def _json_integer(cls, value):
        return json_integer(value)

    @field_validator("priority", mode="before")
    @classmethod
    def _priority_not_null(cls, value):
        if value is None:
            raise Invalid(f"must not be null; an integer from 0 to {PRIORITY_MAX}", "priority")
        return value

    @model_validator(mode="before")
    @classmethod
    def _something(cls, data):
        if isinstance(data, dict) and not any(name in data for name in CHANGE_FIELDS):
            # e.g. constraints, gpus: set by the RUN, not changed (a name that is no plain word: "body")
            unknown = sorted(name for name in data if isinstance(name, str) and PLAIN.fullmatch(name))
            if unknown:
                raise Invalid(f"unknown field; accepted are {', '.join(CHANGE_FIELDS)} (the others are set by "
                              "the RUN and not changed)", unknown[0])
            raise Invalid("give parallelism and/or priority", "body")
        return data

    def changes(self):
        """The fields given, as {name: value} (parallelism may be None: no limit)."""
        return {name: getattr(self, name) for name in CHANGE_FIELDS if name in self.model_fields_set}
