"""The scheduler's own copy of the registry's tasks, and the row a RUN and a task's DELETE meet on.

The registry owns tasks and calls no one; the scheduler never calls it.  A RUN
needs its task's status, name and digest: the scheduler keeps them in
``known_tasks`` (a table only it writes), learned from the registry's events
(``task_submitted``, ``task_imported``, ``task_import_failed``,
``task_deleted``, each handled by one scheduler, reliably, retried while the
database is away).  Events come at least once and in any order: each carries
the task's ``version``, raised by the registry with every change, and a fact
replaces only an older one (the same version is the same fact, kept fresh).
``deleted`` is final: nothing learned later undoes it.

A RUN takes the copy when it is READY and was confirmed within
``TASK_CACHE_SECONDS`` (default 10; 0: never).  Otherwise (no copy yet: the
event is on its way, or was sent before this scheduler's queue existed; not
READY; or not confirmed lately, should an event have been lost) it answers
``TaskUnconfirmed``, and the gateway asks the registry for the task's
``task_facts`` and sends the RUN again with them; the copy takes them as it
takes an event's, then the RUN decides on the copy.  So a RUN never uses
facts older than the registry's of ``TASK_CACHE_SECONDS`` ago, as with the
cache this replaces; the result's ``image`` says which digest ran.

No run slips past a task's DELETE.  A RUN (and a RERUN_FAILED) holds the
task's row ``FOR SHARE`` from its check until the commit that makes its
result; ``close`` takes it ``FOR UPDATE``, counts the task's active results,
and answers 409 or marks the row deleted, in one transaction.  Whichever
commits first, the other sees it: a RUN after the close finds the task
deleted (404, as for any deleted task), a close after the RUN counts its
result.  The gateway's DELETE closes the task here first and only then has
the registry delete it; should that second call fail, the task stays closed
to RUNs (404) while the registry still lists it, until a DELETE is sent again.
Lock order: one ``known_tasks`` row, then the results the caller writes.
"""
from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert

from services.scheduler import executions as ex
from services.scheduler.models import KnownTask, Schedule
from shared import statuses
from shared.errors import Conflict, NotFound, TaskUnconfirmed, ValidationError

_DB_NOW = func.extract("epoch", func.now())
TEAM_MAX = 63  # a team's name, at most (``known_tasks.team``)


def _check_id(task_id):
    if not isinstance(task_id, str) or not 0 < len(task_id) <= 32:
        raise NotFound(f"no task {task_id!r}", "task_id")


def _team(value):
    """A task's team as the registry's word carries it (None: not told, as by a registry of before teams)."""
    return value if isinstance(value, str) and 0 < len(value) <= TEAM_MAX else None


def learn(session, task_id, version, status, name=None, digest=None, team=None):
    """Take the registry's word on a task, unless the copy holds a newer one or the task was deleted.
    ``team`` (a task never changes team) is kept once learned: a word without it does not forget it."""
    _check_id(task_id)
    team = _team(team)
    stmt = insert(KnownTask).values(task_id=task_id, version=version, status=status, name=name,
                                    digest=digest, deleted=False, learned_at=_DB_NOW, team=team)
    stmt = stmt.on_conflict_do_update(
        index_elements=[KnownTask.task_id],
        set_={"version": version, "status": status, "name": name, "digest": digest,
              "learned_at": _DB_NOW, "team": func.coalesce(stmt.excluded.team, KnownTask.team)},
        where=(~KnownTask.deleted) & (KnownTask.version <= version))
    session.execute(stmt)
    session.commit()


def heard(session, payload, status):
    """A registry event saying the task is now ``status`` (its payload: task_id, version, name, digest, team)."""
    task_id = payload["task_id"]
    if isinstance(payload.get("version"), int):
        learn(session, task_id, payload["version"], status, payload.get("name"),
              payload.get("digest") if status == statuses.READY else None, payload.get("team"))
    else:  # an older registry's event: no longer confirmed, the next RUN asks the registry
        session.execute(update(KnownTask).where(KnownTask.task_id == task_id).values(learned_at=0))
        session.commit()


def deleted(session, task_id):
    """The registry deleted the task: final."""
    _check_id(task_id)
    stmt = insert(KnownTask).values(task_id=task_id, version=0, deleted=True)
    session.execute(stmt.on_conflict_do_update(index_elements=[KnownTask.task_id],
                                               set_={"deleted": True}))
    session.commit()


def _locked(session, task_id, for_update=False, fresh_for=0.0):
    """The task's row and whether it is fresh, locked until the caller's commit; (None, False) if none."""
    fresh = KnownTask.learned_at > _DB_NOW - fresh_for
    row = session.execute(select(KnownTask, fresh).where(KnownTask.task_id == task_id)
                          .with_for_update(read=not for_update, of=KnownTask)
                          .execution_options(populate_existing=True)).first()
    return (row[0], bool(row[1])) if row is not None else (None, False)


def _made_and_locked(session, task_id, for_update=False):
    """The task's row, made (knowing nothing yet) if there is none, locked until the caller's commit."""
    _check_id(task_id)
    session.execute(insert(KnownTask).values(task_id=task_id, version=-1, deleted=False, learned_at=0)
                    .on_conflict_do_nothing(index_elements=[KnownTask.task_id]))
    return _locked(session, task_id, for_update)[0]


def for_run(session, task_id, fresh_for, facts=None):
    """The READY task a RUN may make its result of, locked until the caller's commit.

    ``facts``: the registry's ``task_facts`` of it, which the gateway sends when
    this answered ``TaskUnconfirmed`` before.
    """
    if facts is not None:
        _learn_facts(session, task_id, facts)
    else:
        _check_id(task_id)
    task, fresh = _locked(session, task_id, fresh_for=fresh_for)
    if task is not None and task.deleted:
        session.rollback()
        raise NotFound(f"no task {task_id!r}", "task_id")
    if facts is None and (task is None or task.status != statuses.READY or not fresh):
        session.rollback()
        raise TaskUnconfirmed(f"the scheduler has no fresh word of task {task_id}; ask the registry",
                              "task_id")
    if task.status != statuses.READY:
        session.rollback()
        raise Conflict(f"task {task_id} is {task.status}; only a READY task can be run", "task_id")
    return task


def team_of(facts, task_id, caller):
    """The team a new run or schedule of a task belongs to: the task's, as the registry's ``task_facts`` say
    (a member or viewer reaches its own team's tasks only; an admin or operator, whichever team it acts for,
    runs another team's task for that team); ``caller``'s without them (a registry of before teams).
    NotFound, as for an unknown task, should the facts name a team ``caller`` does not cover."""
    team = _team(facts.get("team")) if isinstance(facts, dict) else None
    if team is None:
        return caller.team
    if not caller.covers(team):
        raise NotFound(f"no task {task_id!r}", "task_id")
    return team


def team_for_run(session, task_id, facts, caller):
    """The team a RUN of ``task_id`` is of (``team_of``): from the registry's ``facts`` when the gateway sent
    them, else from the copy (a task never changes team, so it is read before ``for_run`` locks the row);
    ``TaskUnconfirmed`` when the copy does not know it (learned before migration 0024, or not at all):
    the gateway then sends the registry's facts."""
    if facts is not None:
        return team_of(facts, task_id, caller)
    _check_id(task_id)
    row = session.execute(select(KnownTask.team, KnownTask.deleted).where(KnownTask.task_id == task_id)).first()
    if row is not None and row.deleted:
        return caller.team  # ``for_run`` answers it: no such task
    team = row.team if row is not None else None
    if team is None:
        session.rollback()
        raise TaskUnconfirmed(f"the scheduler does not know the team of task {task_id}; ask the registry",
                              "task_id")
    return team_of({"team": team}, task_id, caller)


def _learn_facts(session, task_id, facts):
    if not isinstance(facts, dict) or facts.get("task_id") != task_id \
            or not isinstance(facts.get("version"), int) or not isinstance(facts.get("status"), str):
        raise ValidationError("must be the registry's task_facts of the task run", "task")
    learn(session, task_id, facts["version"], facts["status"], facts.get("name"), facts.get("digest"),
          facts.get("team"))


learn_facts = _learn_facts  # a schedule's creation takes the registry's word as a RUN does


def for_rerun(session, task_id):
    """Hold the task of a run to be rerun until the caller's commit; refused once the task was deleted."""
    task = _made_and_locked(session, task_id)
    if task.deleted:
        session.rollback()
        raise Conflict(f"task {task_id} was deleted; its runs cannot be rerun", "task_id")


def close(session, task_id):
    """Close the task to RUNs for good, unless it has active runs (409); the gateway's DELETE, first step."""
    task = _made_and_locked(session, task_id, for_update=True)
    if not task.deleted:
        active = ex.active_results(session, task_id)
        if active:
            session.rollback()
            raise Conflict(f"task {task_id} has {active} active run(s); cancel them first", "task_id")
        # a schedule is made under this row FOR SHARE: none slips past the count
        schedules = session.scalar(select(func.count()).select_from(Schedule).where(Schedule.task_id == task_id))
        if schedules:
            session.rollback()
            raise Conflict(f"task {task_id} has {schedules} schedule(s); delete them first", "task_id")
        task.deleted = True
    session.commit()
