"""The READY tasks the registry told the scheduler of, kept briefly: a RUN skips one RPC.

A RUN needs its task's status and digest, which the registry owns.  Asking is
an RPC on the path of every RUN, one of the few hops left between a RUN and
its container's start (docs/performance.md).  The scheduler keeps the
registry's answer for a READY task for ``TASK_CACHE_SECONDS`` (default 10;
0 turns the cache off) and forgets it as soon as the registry says the task
changed: ``task_submitted`` (a re-import begins), ``task_imported``,
``task_import_failed``, ``task_deleted``.  Those come by broadcast, so every
scheduler replica hears them.  Only while a scheduler is cut off from the
broker can it miss one; then a RUN may take the task as it was up to
``TASK_CACHE_SECONDS`` earlier (the result's ``image`` says which digest ran).
A task that is not READY is never kept: the registry is asked each time.
"""
import time

from nameko.extensions import DependencyProvider

from shared import statuses
from shared.settings import settings_of


class TaskCache:
    def __init__(self, seconds, clock=time.monotonic):
        self.seconds = seconds
        self.clock = clock
        self.entries = {}   # task_id -> (task, kept at)
        self.forgotten = 0  # how many times a task was forgotten: an answer in flight meanwhile may be stale

    def get(self, task_id, fetch):
        """The task as ``fetch(task_id)`` (the registry) answers it, or as it answered lately."""
        if self.seconds > 0:
            entry = self.entries.get(task_id)
            if entry is not None and self.clock() - entry[1] < self.seconds:
                return entry[0]
        forgotten = self.forgotten
        task = fetch(task_id)
        # kept only if no task was forgotten while the registry answered
        if self.seconds > 0 and task["status"] == statuses.READY and self.forgotten == forgotten:
            stamp = self.clock()
            if len(self.entries) >= 1000:  # drop the expired ones
                self.entries = {k: v for k, v in self.entries.items() if stamp - v[1] < self.seconds}
            self.entries[task_id] = (task, stamp)
        return task

    def forget(self, task_id):
        self.forgotten += 1
        self.entries.pop(task_id, None)


class Tasks(DependencyProvider):
    """The service's ``TaskCache``, one per process, shared by its workers."""

    def setup(self):
        self.cache = TaskCache(settings_of(self.container).task_cache_seconds)

    def get_dependency(self, worker_ctx):
        return self.cache
