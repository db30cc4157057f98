"""Who is calling: the principal behind a request, the role it holds and the team it acts for.

The gateway works out a request's ``Caller`` once, when it admits the request
(services/gateway/http.py), and hands it on to the services as a plain dict
(``Caller.as_dict``) with every command and read that a role or a team limits.
Roles, from the most to the least (issue 18):

- ``admin``: everything, and manages principals, teams and tokens;
- ``operator``: every team's runs (read, cancel, delete) and the runners;
- ``member``: their team's tasks, runs, schedules and secrets (register, run, cancel, delete);
- ``viewer``: reads their team's.

A token of STEVEDORE_TOKENS is an ``admin`` principal named ``admin`` acting for
the ``default`` team, so the quick start is unchanged.

A service never guesses who calls: an RPC that a role or a team limits refuses a call that names no
caller, or one that is not a caller (``Caller.from_dict``: Forbidden, field ``caller``).  What the
system does by itself (a schedule's tick, a sweep, a failure policy's stop) is ``SYSTEM``'s: a role of
its own that no role check lets through and that covers only its own team, so that a call naming it
reaches no more than one naming nobody did before (docs/guarantees.md "Trust boundaries").
"""
from dataclasses import asdict, dataclass

from shared.errors import Forbidden

ROLES = ("admin", "operator", "member", "viewer")
ALL_TEAMS_ROLES = frozenset({"admin", "operator"})
DEFAULT_TEAM = "default"
CONFIGURED_ADMIN = "admin"  # the principal of a STEVEDORE_TOKENS token
SYSTEM_ROLE = "system"  # the role of ``SYSTEM`` only; no principal holds it
CALLER_ROLES = (*ROLES, SYSTEM_ROLE)
NAME_MAX = 200


@dataclass(frozen=True)
class Caller:
    principal: str           # the principal's name
    role: str                # one of ROLES
    team: str                # the team it acts for (an admin's or operator's pick; else its own)
    address: str | None = None  # the client's address as the gateway saw it (a trusted proxy's word)

    @property
    def all_teams(self):
        """Whether the role covers every team's objects (admin, operator)."""
        return self.role in ALL_TEAMS_ROLES

    def covers(self, team):
        """Whether an object of ``team`` is visible to this caller (else: answered as not found)."""
        return self.all_teams or team == self.team

    def as_dict(self):
        return asdict(self)

    @classmethod
    def from_dict(cls, value):
        """A caller handed on over RPC (``as_dict``); a ``Caller`` is taken as it is.

        None (the call named no caller) or anything that is not a caller is refused: Forbidden, field
        ``caller``.  It never stands for an admin."""
        if isinstance(value, Caller):
            return value
        if value is None:
            raise Forbidden("this call names no caller: who calls must be said (the gateway's request, "
                            "or SYSTEM for what the system does by itself)", "caller")
        if not isinstance(value, dict):
            raise Forbidden("is not a caller (an object with principal, role and team)", "caller")
        principal, role, team, address = (value.get(key) for key in ("principal", "role", "team", "address"))
        if not isinstance(principal, str) or not 0 < len(principal) <= NAME_MAX:
            raise Forbidden("names no principal", "caller.principal")
        if role not in CALLER_ROLES:
            raise Forbidden(f"must be one of {', '.join(ROLES)}", "caller.role")
        if not isinstance(team, str) or not 0 < len(team) <= 63:
            raise Forbidden("names no team", "caller.team")
        if address is not None and not isinstance(address, str):
            raise Forbidden("must be text", "caller.address")
        return cls(principal, role, team, address)


def require_role(caller, roles, what):
    """``caller`` (as ``Caller.from_dict`` takes it) if its role is one of ``roles``, else Forbidden
    naming ``what`` it may not do: a service's own check, whatever the gateway let through."""
    caller = Caller.from_dict(caller)
    if caller.role not in roles:
        raise Forbidden(f"{what} is for {' and '.join(sorted(roles))} only; {caller.principal} is {caller.role}",
                        "role")
    return caller


CONFIGURED = Caller(CONFIGURED_ADMIN, "admin", DEFAULT_TEAM)
SYSTEM = Caller("system", SYSTEM_ROLE, DEFAULT_TEAM)
"""Who a change made by the system itself is (its audit row's ``summary`` says what led to it)."""
