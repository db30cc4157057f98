"""Task bookkeeping: the rules the registry service applies to the tasks table."""
import uuid

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from services.registry.models import Task
from shared import statuses
from shared.errors import Conflict, NotFound, ValidationError
from shared.timeutil import now

LIST_LIMIT_MAX = 1000


def as_dict(task):
    return {
        "id": task.id,
        "task_id": task.id,
        "name": task.name,
        "repository": task.repository,
        "status": task.status,
        "error": task.error,
        "digest": task.digest,
        "image_id": task.image_id,
        "created_at": task.created_at,
        "updated_at": task.updated_at,
        "imported_at": task.imported_at,
        # never the credentials themselves
        "private": task.credentials is not None,
    }


def create(session, name, repository, credentials=None):
    """A new SUBMITTED task; ``credentials`` is the sealed token, if the registry is private."""
    stamp = now()
    task = Task(id=uuid.uuid4().hex, name=name, repository=repository,
                status=statuses.SUBMITTED, created_at=stamp, updated_at=stamp,
                credentials=credentials)
    session.add(task)
    try:
        session.commit()
    except IntegrityError as exc:
        session.rollback()
        raise Conflict(f"a task named {name!r} already exists", "name") from exc
    return task


def get(session, task_id, lock=False):
    if not isinstance(task_id, str) or len(task_id) > 32:
        raise NotFound(f"no task {task_id!r}", "task_id")
    stmt = select(Task).where(Task.id == task_id)
    if lock:
        stmt = stmt.with_for_update()
    task = session.scalars(stmt).first()
    if task is None:
        raise NotFound(f"no task {task_id!r}", "task_id")
    return task


def listing(session, status=None, limit=100, after=None):
    if status is not None and status not in statuses.TASK_STATUSES:
        raise ValidationError(f"must be one of {', '.join(statuses.TASK_STATUSES)}", "status")
    stmt = select(Task).order_by(Task.created_at.desc(), Task.id.desc()).limit(limit)
    if status:
        stmt = stmt.where(Task.status == status)
    if after:
        anchor = session.get(Task, after)
        if anchor is None:
            raise ValidationError("is not the id of a listed task", "after")
        stmt = stmt.where((Task.created_at < anchor.created_at) |
                          ((Task.created_at == anchor.created_at) & (Task.id < anchor.id)))
    return list(session.scalars(stmt))


def set_status(session, task, status, **fields):
    task.status = status
    task.updated_at = now()
    for key, value in fields.items():
        setattr(task, key, value)
    session.commit()
