"""Teams (``/team/``): each team's fair-share weight and quotas (issue 18).

``POST /team/`` takes a ``NewTeam``, ``PATCH /team/{name}/`` a ``TeamChange`` (fields not sent stay;
a quota sent null is lifted); answers are ``Team``, with the executions the team has running and
queued now.  Team names follow Kubernetes' DNS label rules (lowercase letters, digits and ``-``, 1 to
63, starting and ending with a letter or digit).
"""
import re
from typing import ClassVar, Optional

from pydantic import ConfigDict, Field, field_validator, model_validator

from stevedore_jobs.contract.checks import Invalid, json_integer, some_of
from stevedore_jobs.contract.requests import STRICT, Page, Request
from stevedore_jobs.contract.responses import Answer

TEAM_MAX = 63
TEAM_PATTERN = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"
WEIGHT_MIN, WEIGHT_MAX = 0.01, 1000.0
QUOTA_MAX = 10_000_000
TEAM_FIELDS = ("weight", "max_running", "max_queued")
NAME_SAYS = (f"must be 1 to {TEAM_MAX} lowercase letters, digits and '-', starting and ending with a letter "
             "or digit (a DNS label)")
QUOTA_SAYS = f"must be an integer from 0 to {QUOTA_MAX}, or null (no quota)"


def is_team_name(value):
    return isinstance(value, str) and re.fullmatch(TEAM_PATTERN[1:-1], value) is not None


def _not_null(schema):  # a field that may be left out but not sent null: no default shown
    schema.pop("default", None)


class TeamFields(Request):
    model_config = ConfigDict(**STRICT, extra="forbid")
    SAYS: ClassVar[dict] = {"name": NAME_SAYS, "max_running": QUOTA_SAYS, "max_queued": QUOTA_SAYS,
                            "weight": f"must be a number from {WEIGHT_MIN:g} to {WEIGHT_MAX:g}"}

    @field_validator("max_running", "max_queued", mode="before", check_fields=False)
    @classmethod
    def _json_integer(cls, value):
        return json_integer(value)

    def values(self):
        """The fields given, as {name: value} (a quota may be None: none)."""
        return {name: getattr(self, name) for name in TEAM_FIELDS if name in self.model_fields_set}


MAX_RUNNING = ("at most this many of the team's executions held by runners at once (claimed or running); "
               "null: no quota. Lowering it stops none that runs")
MAX_QUEUED = ("at most this many of the team's executions queued (not started yet, counting a new run's "
              "`times`): a RUN over it is refused with 429 and Retry-After; null: no quota")
WEIGHT = ("its fair share: claims go to the team with the fewest executions running per unit of weight "
          "(a team of weight 3 gets three times the runners of a team of weight 1 while both have work)")


class NewTeam(TeamFields):
    """POST /team/ (admin): a team."""

    REQUIRED: ClassVar[dict] = {"name": f"is required; {NAME_SAYS}"}

    name: str = Field(min_length=1, max_length=TEAM_MAX, pattern=TEAM_PATTERN, description="the team's name")

    @field_validator("name", mode="before")
    @classmethod
    def _whole_name(cls, value):  # the pattern's $ would let a final newline by
        if isinstance(value, str) and not is_team_name(value):
            raise Invalid(NAME_SAYS, "name")
        return value
    weight: float = Field(1.0, ge=WEIGHT_MIN, le=WEIGHT_MAX, description=WEIGHT)
    max_running: Optional[int] = Field(None, ge=0, le=QUOTA_MAX, description=MAX_RUNNING)
    max_queued: Optional[int] = Field(None, ge=0, le=QUOTA_MAX, description=MAX_QUEUED)


class TeamChange(TeamFields):
    """PATCH /team/{name}/ (admin): at least one of weight, max_running, max_queued (fields not sent stay)."""

    model_config = ConfigDict(**STRICT, extra="forbid", json_schema_extra={"minProperties": 1})

    weight: float = Field(None, ge=WEIGHT_MIN, le=WEIGHT_MAX, description=WEIGHT, json_schema_extra=_not_null)
    max_running: Optional[int] = Field(None, ge=0, le=QUOTA_MAX, description=MAX_RUNNING + "; send null to lift it")
    max_queued: Optional[int] = Field(None, ge=0, le=QUOTA_MAX, description=MAX_QUEUED + "; send null to lift it")

    @field_validator("weight", mode="before")
    @classmethod
    def _weight_not_null(cls, value):
        if value is None:
            raise Invalid(f"must not be null; a number from {WEIGHT_MIN:g} to {WEIGHT_MAX:g}", "weight")
        return value

    @model_validator(mode="before")
    @classmethod
    def _something(cls, data):
        return some_of(data, TEAM_FIELDS)


class TeamListQuery(Page):
    """?limit= and ?after= (a team's name) of ``GET /team/``, by name."""

    after: Optional[str] = Field(None, max_length=TEAM_MAX, pattern=TEAM_PATTERN,
                                 description="the team name after which the page starts (the Link header's)")
    SAYS: ClassVar[dict] = {"after": "must be a team's name"}


class Team(Answer):
    """A team, with the executions it has running and queued now."""

    name: str
    weight: float = Field(description=WEIGHT)
    max_running: Optional[int] = Field(description="null: no quota")
    max_queued: Optional[int] = Field(description="null: no quota")
    created_at: float
    running: int = Field(description="its executions held by runners now (claimed or running): what "
                                     "max_running and the fair share count")
    queued: int = Field(description="its executions not started yet (QUEUED, waiting, not made yet): what "
                                    "max_queued counts")
