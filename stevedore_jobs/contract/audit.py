"""The audit log (``GET /audit/``, admins and operators): its filters and its entries.

Every change is recorded (shared/audit.py) with who (principal, role), the team, what (action,
target type and id, a small summary), when (epoch seconds), from which address and, where it
applies, its outcome.  Actions are ``<target type>.<verb>``: docs/api.md "Audit log" lists them.
"""
from typing import ClassVar, Optional

from pydantic import Field, field_validator

from stevedore_jobs.contract.requests import TIME_MAX, NewestFirst, seconds_text
from stevedore_jobs.contract.responses import Answer

ACTION_PATTERN = r"^[a-z][a-z_]{0,29}\.[a-z][a-z_]{0,29}$"
TARGET_TYPE_PATTERN = r"^[a-z][a-z_]{0,29}$"
TEAM_PATTERN = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"   # a Kubernetes DNS label, as team names are
PRINCIPAL_PATTERN = r"^[^\x00-\x1f\x7f-\x9f]{1,200}$"    # 1-200 printable characters
TARGET_ID_PATTERN = r"^[^\x00-\x1f\x7f-\x9f]{1,200}$"


class AuditListQuery(NewestFirst):
    """The filters of ``GET /audit/`` (all must hold), newest first, paged by ``limit`` and ``after``."""

    principal: Optional[str] = Field(None, pattern=PRINCIPAL_PATTERN, max_length=200,
                                     description="only what this principal did (`system`: the system itself)")
    team: Optional[str] = Field(None, pattern=TEAM_PATTERN, max_length=63,
                                description="only changes of this team's objects")
    action: Optional[str] = Field(None, pattern=ACTION_PATTERN, max_length=61,
                                  description="only this action, e.g. `result.cancel`")
    target_type: Optional[str] = Field(None, pattern=TARGET_TYPE_PATTERN, max_length=30,
                                       description="only changes of this kind of object: task, result, detail, "
                                                   "schedule, session, token, principal, team, secret")
    target_id: Optional[str] = Field(None, pattern=TARGET_ID_PATTERN, max_length=200,
                                     description="only changes of the object with this id (or name)")
    since: Optional[float] = Field(None, ge=0, le=TIME_MAX, allow_inf_nan=False,
                                   description="only changes at or after this time (epoch seconds)")
    until: Optional[float] = Field(None, ge=0, le=TIME_MAX, allow_inf_nan=False,
                                   description="only changes before this time (epoch seconds)")
    SAYS: ClassVar[dict] = {
        **NewestFirst.SAYS, "principal": "must be 1 to 200 printable characters",
        "team": "must be a team's name: 1 to 63 lower-case letters, digits and '-', starting and ending "
                "with a letter or digit",
        "action": "must be <type>.<verb> in lower-case letters and '_', e.g. result.cancel",
        "target_type": "must be a kind of object in lower-case letters and '_', e.g. result",
        "target_id": "must be 1 to 200 printable characters",
        "since": "must be a time in epoch seconds, e.g. 1767225600",
        "until": "must be a time in epoch seconds, e.g. 1767225600"}

    @field_validator("since", "until", mode="before")
    @classmethod
    def _seconds(cls, value):
        return seconds_text(value)


class AuditEntry(Answer):
    """One change, as recorded in the same transaction as the change itself."""

    audit_id: str = Field(description="the entry's id (`after` pages by it)")
    id: str = Field(description="the same as audit_id")
    at: float = Field(description="when (epoch seconds, the database's clock)")
    principal: str = Field(description="who: the principal, or `system` for what the system did by itself "
                                       "(a schedule's tick, a failure policy's stop, a deadline, retention)")
    role: str = Field(description="the principal's role then (admin, operator, member, viewer; system)")
    team: Optional[str] = Field(description="the team of the object changed")
    address: Optional[str] = Field(description="the client's address as the gateway saw it (null: the system)")
    action: str = Field(description="what: `<target type>.<verb>`, e.g. `task.register`, `result.cancel`")
    target_type: str = Field(description="the kind of object changed")
    target_id: Optional[str] = Field(description="its id (or name)")
    summary: dict = Field(description="a few plain values saying what changed; never a secret, a token or a "
                                      "RUN's env")
    outcome: Optional[str] = Field(description="where it applies, the state the change left (e.g. a cancel's "
                                               "status)")
