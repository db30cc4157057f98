"""Principals, their API tokens and roles (issue 18): ``POST/GET /token/``, ``DELETE /token/{id}/``,
``GET /whoami/``, and the ``X-Stevedore-Team`` header an admin or operator picks a team with.

A token belongs to a named principal (a person or a service) with a role and a team.  Roles, from the
most to the least (shared/principals.py holds the same names for the services):

- ``admin``: everything; manages tokens (and teams);
- ``operator``: every team's runs (read, cancel, delete, change) and the runners; registers no task, runs nothing;
- ``member``: its team's tasks, runs and schedules (register, run, cancel, delete);
- ``viewer``: reads its team's.
"""
from typing import ClassVar, Literal, Optional

from pydantic import ConfigDict, Field

from stevedore_jobs.contract.checks import (
    ID_PATTERN, PRINCIPAL_MAX, PRINCIPAL_PATTERN, TEAM_MAX, TEAM_PATTERN)
from stevedore_jobs.contract.requests import STRICT, NewestFirst, Request
from stevedore_jobs.contract.responses import Answer, Epoch

Role = Literal["admin", "operator", "member", "viewer"]
ROLES = ("admin", "operator", "member", "viewer")
Kind = Literal["person", "service"]
TEAM_HEADER = "X-Stevedore-Team"
EXPIRES_MIN = 60
EXPIRES_MAX = 10 * 366 * 86400  # ten years
TEAM_SAYS = ("must be a team's name: 1 to 63 lower-case letters, digits and '-', starting and ending "
             "with a letter or digit")
TEAM_DESCRIPTION = "a team's name (a DNS label: lower-case letters, digits and '-')"


class NewToken(Request):
    """POST /token/ (admin): a new token for principal ``name``, made with ``team`` and ``role`` if it is new."""

    model_config = ConfigDict(**STRICT, extra="forbid")

    name: str = Field(min_length=1, max_length=PRINCIPAL_MAX, pattern=PRINCIPAL_PATTERN,
                      description="the principal's name (a person or a service), e.g. ci-bot")
    team: str = Field(min_length=1, max_length=TEAM_MAX, pattern=TEAM_PATTERN,
                      description="its team (it must exist: POST /team/)")
    role: Role = Field(description="admin, operator, member or viewer")
    kind: Kind = Field("service", description="person or service")
    expires: Optional[int] = Field(None, ge=EXPIRES_MIN, le=EXPIRES_MAX,
                                   description="seconds until the token expires; null or absent: never")

    REQUIRED: ClassVar[dict] = {"name": "is required (the principal's name)", "team": "is required",
                                "role": "is required: admin, operator, member or viewer"}
    SAYS: ClassVar[dict] = {
        "name": f"must be 1 to {PRINCIPAL_MAX} printable characters, not all spaces",
        "team": TEAM_SAYS, "role": "must be one of admin, operator, member, viewer",
        "kind": "must be person or service"}


class Token(Answer):
    """An API token as listed (never the token, nor its hash)."""

    token_id: str
    id: str = Field(description="the same as token_id")
    principal: str = Field(description="the principal it belongs to")
    kind: Kind
    team: str
    role: Role
    status: Literal["ACTIVE", "EXPIRED", "REVOKED"]
    created_at: float
    created_by: Optional[str] = Field(description="the principal that made it")
    expires_at: Epoch = Field(description="null: never")
    revoked_at: Epoch
    last_used_at: Epoch = Field(description="about when it was last used (kept to the minute)")


class NewTokenAnswer(Token):
    """POST /token/'s answer: the token itself, this once."""

    token: str = Field(description="send it as `Authorization: Bearer <token>`; shown this once, never again")


class TokenListQuery(NewestFirst):
    """?limit=, ?after= (a token's id) and filters of ``GET /token/``, newest first."""

    after: Optional[str] = Field(None, pattern=ID_PATTERN,
                                 description="the token id after which the page starts (the Link header's)")
    team: Optional[str] = Field(None, max_length=TEAM_MAX, pattern=TEAM_PATTERN,
                                description="only tokens of this team's principals")
    SAYS: ClassVar[dict] = {**NewestFirst.SAYS, "after": "must be a token's id (32 hex digits)", "team": TEAM_SAYS}


class Whoami(Answer):
    """``GET /whoami/``: who the caller is and the teams it may act for."""

    principal: str
    role: Role
    team: str = Field(description="the team it acts for now (an admin's or operator's pick, else its own)")
    all_teams: bool = Field(description="whether its role covers every team (admin, operator)")
    teams: list[str] = Field(description="the teams it may pick with X-Stevedore-Team (its own alone for "
                                         "a member or viewer)")
