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
"""
from dataclasses import asdict, dataclass

ROLES = ("admin", "operator", "member", "viewer")
ALL_TEAMS_ROLES = frozenset({"admin", "operator"})
DEFAULT_TEAM = "default"
CONFIGURED_ADMIN = "admin"  # the principal of a STEVEDORE_TOKENS token


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
        """A caller handed on over RPC; None gives the configured admin of the default team (a ``Caller``
        is taken as it is)."""
        if value is None:
            return CONFIGURED
        if isinstance(value, Caller):
            return value
        return cls(**{key: value.get(key) for key in ("principal", "role", "team", "address")})


CONFIGURED = Caller(CONFIGURED_ADMIN, "admin", DEFAULT_TEAM)
