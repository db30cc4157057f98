"""Task bookkeeping: the rules the registry service applies to the tasks table."""
import uuid

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.attributes import set_committed_value

from services.registry.models import Task
from shared import audit, statuses, validation
from shared.db import labelled, newest_first, team_scoped
from shared.errors import Conflict, NotFound
from shared.messages import TaskFacts, wire
from shared.principals import CONFIGURED
from shared.timeutil import now
from stevedore_jobs import contract

ERROR_MAX = 2000  # characters of a task's error kept (the reason, with a remote's words cut shorter)


def as_dict(task):
    """The task as the API shows it (the contract's ``Task``), as sent."""
    return wire(contract.Task(
        id=task.id, task_id=task.id, name=task.name, repository=task.repository, status=task.status,
        error=task.error, digest=task.digest, image_id=task.image_id, created_at=task.created_at,
        updated_at=task.updated_at, imported_at=task.imported_at,
        private=task.credentials is not None,  # never the credentials themselves
        labels=getattr(task, "labels", None) or {}, **owner(task)))


def owner(task):
    """The team and the maker of a task, for the events about it."""
    return {"team": getattr(task, "team", None), "submitted_by": getattr(task, "submitted_by", None)}


def facts(task):
    """What the scheduler keeps of a task (services/scheduler/knowntasks.py), with the version it is at."""
    return wire(TaskFacts(task_id=task.id, name=task.name, status=task.status, digest=task.digest,
                          version=task.version, team=task.team))


def create(session, name, repository, idempotency_key=None, credentials=None, labels=None, caller=CONFIGURED):
    """A new task of ``caller``'s team, or (same Idempotency-Key in that team, same request) the one
    made the first time.  Names and keys are unique per team.

    ``credentials`` is the sealed token, if the registry is private.  Returns (task, created).
    The audit log's row (``task.register``, by ``caller``) is written with it.
    """
    team = caller.team
    if idempotency_key:
        earlier = _by_key(session, idempotency_key, name, repository, labels, team)
        if earlier is not None:
            return earlier, False
    stamp = now()
    task = Task(id=uuid.uuid4().hex, name=name, repository=repository, idempotency_key=idempotency_key,
                status=statuses.SUBMITTED, created_at=stamp, updated_at=stamp, credentials=credentials,
                version=1, labels=labels or {}, team=team, submitted_by=caller.principal)
    session.add(task)
    try:  # the row's insert flushes the task: a name taken meets the unique index there or at the commit
        audit.record(session, caller, "task.register", "task", task.id, task.team,
                     {"name": name, "repository": repository, "private": credentials is not None})
        session.commit()
    except IntegrityError as exc:
        session.rollback()
        if idempotency_key:
            earlier = _by_key(session, idempotency_key, name, repository, labels, team)
            if earlier is not None:  # the same request, sent twice at once
                return earlier, False
        raise Conflict(f"a task named {name!r} already exists in team {team!r}", "name") from exc
    return task, True


def _by_key(session, key, name, repository, labels=None, team=CONFIGURED.team):
    task = session.scalars(select(Task).where(Task.team == team, Task.idempotency_key == key)).first()
    if task is not None and (task.name, task.repository, task.labels or {}) != (name, repository, labels or {}):
        raise Conflict("this Idempotency-Key was used for a different task", "Idempotency-Key")
    return task


def reimport(session, task_id, caller=CONFIGURED):
    """Queue a fresh pull of the task's image; its current digest stays until the pull succeeds."""
    task = get(session, task_id, lock=True, caller=caller)
    if task.status in (statuses.SUBMITTED, statuses.IMPORTING):
        session.rollback()
        raise Conflict(f"task {task_id} is already {task.status}", "task_id")
    audit.record(session, caller, "task.import", "task", task.id, task.team,
                 {"name": task.name, "repository": task.repository, "digest": task.digest})
    set_status(session, task, statuses.SUBMITTED, error=None)
    return task


def delete(session, task_id, caller=CONFIGURED):
    """Delete the task; its name, team and maker (for the event)."""
    task = get(session, task_id, lock=True, caller=caller)
    gone = {"name": task.name, **owner(task)}
    audit.record(session, caller, "task.delete", "task", task.id, task.team,
                 {"name": task.name, "repository": task.repository})
    session.delete(task)
    session.commit()
    return gone


def get(session, task_id, lock=False, caller=CONFIGURED):
    """The task; NotFound for no such task, or one of a team ``caller`` does not cover."""
    if not isinstance(task_id, str) or len(task_id) > 32:
        raise NotFound(f"no task {task_id!r}", "task_id")
    stmt = team_scoped(select(Task).where(Task.id == task_id), Task.team, caller)
    if lock:
        stmt = stmt.with_for_update()
    task = session.scalars(stmt).first()
    if task is None:
        raise NotFound(f"no task {task_id!r}", "task_id")
    return task


def listing(session, status=None, limit=100, after=None, label=None, team=None, caller=CONFIGURED):
    stmt = team_scoped(labelled(select(Task), Task.labels, label), Task.team, caller, team)
    if validation.status_filter(status, statuses.TASK_STATUSES):
        stmt = stmt.where(Task.status == status)
    return newest_first(session, stmt, Task, Task.created_at, after, limit, caller, stream=True)


def end_stuck_imports(session, older_than, error):
    """End ERROR every task IMPORTING since before ``older_than``; their (id, name, repository, version, labels,
    team, submitted_by).

    One statement: two registries sweeping at once end each task once.
    """
    stamp = now()
    ended = session.execute(
        update(Task).where(Task.status == statuses.IMPORTING, Task.updated_at < older_than)
        .values(status=statuses.ERROR, error=error, updated_at=stamp, version=Task.version + 1)
        .returning(Task.id, Task.name, Task.repository, Task.version, Task.labels, Task.team,
                   Task.submitted_by)).all()
    session.commit()
    return ended


def set_status(session, task, status, **fields):
    """Change the task's status (and ``fields``) and raise its version by one, in one statement.

    ``task.version`` is then the version of exactly this change, for its event,
    whatever another writer did to the row meanwhile.  False if the task is gone (deleted).
    """
    fields = {**fields, "status": status, "updated_at": now()}
    version = session.scalar(update(Task).where(Task.id == task.id)
                             .values(**fields, version=Task.version + 1).returning(Task.version)
                             .execution_options(synchronize_session=False))
    session.commit()
    for key, value in {**fields, "version": version}.items():
        set_committed_value(task, key, value)
    return version is not None
