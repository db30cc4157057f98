"""Teams (``/team/``): the scheduler owns the ``teams`` table (migration 0018): each team's fair-share
weight and quotas, and the count of its executions runners hold (``active``, kept by the claim:
executions/fairshare.py).

Only an admin creates, changes or deletes a team; any caller reads the teams its role covers
(shared/principals.py: an admin or operator all, a member or viewer its own).  A team is deleted only
while it owns nothing: no run, no schedule (checked here, under the team's row lock, which every new
run holds ``FOR KEY SHARE`` until it is committed: executions/quotas.py), no task and no principal with
a live token (the registry's counts, asked by the gateway just before).  ``default`` is never deleted.  Each change has its row in the
audit log (``team.create``, ``team.change``, ``team.delete``: shared/audit.py), in its transaction.
"""
from sqlalchemy import exists, select, text
from sqlalchemy.exc import IntegrityError

from services.scheduler.executions import quotas
from services.scheduler.models import Result, Schedule, Secret, Team
from shared import audit, pages, validation
from shared.errors import Conflict, Forbidden, NotFound
from shared.principals import DEFAULT_TEAM, Caller
from shared.messages import wire
from shared.rpc import rpc
from shared.timeutil import now
from stevedore_jobs.contract import teams as contract

# every team's queued executions at once (through ix_results_team_active), for a page of teams
QUEUED_BY_TEAM = text(f"""
    SELECT team, {quotas.QUEUED_SUM} AS queued
    FROM results WHERE team = ANY(:teams) AND {quotas.ACTIVE_RUNS} GROUP BY team
""")


def as_dict(team, queued=0):
    return wire(contract.Team(
        name=team.name, weight=team.weight, max_running=team.max_running, max_queued=team.max_queued,
        created_at=team.created_at, running=team.active or 0, queued=queued))


def _admin(caller, what):
    if caller.role != "admin":
        raise Forbidden(f"only an admin may {what}; you are {caller.role} {caller.principal}", "role")


def _get(session, caller, name, lock=False):
    """The team named ``name`` that ``caller`` may see (else 404, as for any object it may not see)."""
    if not contract.is_team_name(name) or not caller.covers(name):
        raise NotFound(f"no team {name!r}", "name")
    team = session.get(Team, name, with_for_update=lock or None)
    if team is None:
        raise NotFound(f"no team {name!r}", "name")
    return team


def _queued(session, names):
    if not names:
        return {}
    return dict(session.execute(QUEUED_BY_TEAM, {"teams": list(names)}).all())


def create(session, caller, body):
    _admin(caller, "create a team")
    new = validation.parse(contract.NewTeam, body)
    team = Team(name=new.name, weight=new.weight, max_running=new.max_running, max_queued=new.max_queued,
                created_at=now(), active=0)
    session.add(team)
    try:
        session.flush()  # a team of that name already: IntegrityError here
        audit.record(session, caller, "team.create", "team", new.name, new.name,
                     {"weight": new.weight, "max_running": new.max_running, "max_queued": new.max_queued})
        session.commit()
    except IntegrityError:
        session.rollback()
        raise Conflict(f"team {new.name} exists already", "name") from None
    return as_dict(team)


def update(session, caller, name, body):
    _admin(caller, "change a team")
    values = validation.parse(contract.TeamChange, body).values()
    team = _get(session, caller, name, lock=True)
    for field, value in values.items():
        setattr(team, field, value)
    audit.record(session, caller, "team.change", "team", name, name, values)
    session.commit()
    return as_dict(team, _queued(session, [team.name]).get(team.name, 0))


def delete(session, caller, name, tasks=0, principals=0):
    """Delete a team that owns nothing (``tasks``: how many tasks the registry says it has; ``principals``:
    how many of its principals have live tokens, the registry says)."""
    _admin(caller, "delete a team")
    if name == DEFAULT_TEAM:
        raise Conflict("the default team cannot be deleted", "name")
    team = _get(session, caller, name, lock=True)  # new runs of it wait (FOR KEY SHARE), then find it gone
    # its secrets too: a team made again later under the same name must not find the old one's values
    owned = [what for what, model in (("runs", Result), ("schedules", Schedule), ("secrets", Secret))
             if session.scalar(select(exists().where(model.team == name)))]
    if tasks:
        owned.insert(0, "tasks")
    if principals:
        owned.append("principals with live tokens (DELETE /token/{token_id}/ each)")
    if owned:
        session.rollback()
        raise Conflict(f"team {name} still has {', '.join(owned)}; delete them first", "name")
    session.delete(team)
    audit.record(session, caller, "team.delete", "team", name, name)
    session.commit()


def listed(session, caller, limit=100, after=None):
    stmt = select(Team).order_by(Team.name).limit(limit)
    if after is not None:
        stmt = stmt.where(Team.name > after)
    if not caller.all_teams:
        stmt = stmt.where(Team.name == caller.team)
    teams = session.scalars(stmt).all()
    queued = _queued(session, [team.name for team in teams])
    session.commit()
    return [as_dict(team, queued.get(team.name, 0)) for team in teams]


class TeamsMixin:
    """Mixed into ``SchedulerService`` (which provides ``db``)."""

    @rpc
    def create_team(self, body, caller=None):
        return create(self.db.session, Caller.from_dict(caller), body)

    @rpc
    def update_team(self, name, body, caller=None):
        # to or from 0: its runs say why they wait, or no longer, by the next sweep (fleet.hold_teams)
        return update(self.db.session, Caller.from_dict(caller), name, body)

    @rpc
    def delete_team(self, name, tasks=0, principals=0, caller=None):
        delete(self.db.session, Caller.from_dict(caller), name, tasks, principals)

    @rpc
    def get_team(self, name, caller=None):
        session = self.db.session
        team = _get(session, Caller.from_dict(caller), name)
        return as_dict(team, _queued(session, [team.name]).get(team.name, 0))

    @rpc
    def list_teams(self, limit=100, after=None, caller=None, paged=False):
        rows = listed(self.db.session, Caller.from_dict(caller), pages.fetch_limit(limit, paged), after)
        return pages.reply(rows, limit, self.settings.list_page_bytes, paged)
