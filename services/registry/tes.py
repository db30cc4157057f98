"""The tasks the registry keeps for GA4GH TES executors' images (docs/tes.md).

Each image a TES task's executors name is a task of its own in the caller's team,
named ``tes: <image>`` and labelled ``ga4gh.org/tes=image`` (so the task list shows
what was made for TES), imported on demand like any task: pulled (through
``IMAGE_MAP``) and pinned to its digest.  One already READY is used as it is
(``IMPORT`` it to follow a moved tag); one that ended ERROR is imported again by the
next TES task naming it.  Names of that form and that label are refused to anyone
else (shared/validation.py), so no member of another team (nor of this one) can put
a task of theirs, with their registry login, in the place of one; the audit log
records the caller whose TES task made or re-imported it.
"""
import hashlib

from sqlalchemy import select

from services.registry import tasks
from services.registry.models import Task
from shared import statuses
from shared.errors import Conflict
from shared.principals import CONFIGURED
from stevedore_jobs.contract.requests import NAME_MAX
from stevedore_jobs.contract.tes import IMAGE_TASK_PREFIX as PREFIX
from stevedore_jobs.contract.tes import TES_LABEL


def task_name(reference):
    """The name of the task that imports ``reference`` for TES."""
    name = PREFIX + reference
    if len(name) <= NAME_MAX:
        return name
    return f"{PREFIX}{hashlib.sha256(reference.encode()).hexdigest()[:32]} {reference[:NAME_MAX - 70]}"


def image_task(session, reference, caller=CONFIGURED):
    """(task, whether it must be imported now): the TES task of ``reference`` in ``caller``'s team, made or
    re-imported (by ``caller``)."""
    name = task_name(reference)
    for _ in range(3):
        task = session.scalars(select(Task).where(Task.name == name, Task.team == caller.team)).first()
        if task is None:
            try:
                task, created = tasks.create(session, name, reference, labels={TES_LABEL: "image"}, caller=caller)
            except Conflict:  # made by another request meanwhile: take that one
                continue
            return task, created
        if task.repository != reference or (task.labels or {}).get(TES_LABEL) != "image":
            session.rollback()
            raise Conflict(f"a task named {name!r} exists in team {caller.team!r} that was not made for TES "
                           "(registered before such names were reserved); delete it", "executors")
        if task.status == statuses.ERROR:
            try:
                return tasks.reimport(session, task.id, caller), True
            except Conflict:  # re-imported by another request meanwhile
                continue
        session.commit()
        return task, False
    raise Conflict(f"the task of image {reference} changed under three tries; try again", "executors")
