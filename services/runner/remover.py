"""Finished containers removed off a slot's critical path: one bounded background remover per runner.

A slot reports an execution's end as soon as its outcome and output are known
(services/runner/service.py), then hands its container here and claims its
next execution while the engine removes the container.  The backlog is
bounded: at most ``backlog`` finished containers (``RUNNER_REMOVE_BACKLOG``)
wait here, the one being removed included; a slot that finds the backlog full
removes its container itself, as every slot did before (slower, never
unbounded), so the engine's disk never holds more than that many finished
containers beyond the slots' own.

On the runner's stop the remover drains within a deadline (the runner's stop
grace); what it could not remove, or what a killed runner left, is removed by
the reconcile of any runner on the engine as an orphan (services/runner/reconcile.py):
its execution was reported, so nothing needs it.
"""
import logging
import time

import eventlet
from eventlet.queue import LightQueue

log = logging.getLogger(__name__)

class Remover:
    """Removes containers in the background, at most ``backlog`` waiting (the one being removed included);
    ``remove(container_id)`` does one.

    ``remove`` logs its own failures; an exception from it is logged here and the
    remover goes on (reconcile removes what it could not).
    """

    def __init__(self, remove, backlog):
        self.remove = remove
        self.backlog = backlog
        self.queue = LightQueue()
        self.pending = set()  # container ids queued or being removed
        self.closed = False

    def offer(self, container_id):
        """Queue a container for removal; False (the caller removes it) when the backlog is full or closed."""
        if container_id in self.pending:
            return True
        if self.closed or len(self.pending) >= self.backlog:
            return False
        self.pending.add(container_id)
        self.queue.put(container_id)
        return True

    def has(self, container_id):
        """Whether the container waits for (or is in) its removal here: not an orphan, reconcile leaves it."""
        return container_id in self.pending

    def run(self):
        """The background thread: remove what is queued, one at a time, until closed."""
        while True:
            container_id = self.queue.get()
            if container_id is None:
                return
            try:
                self.remove(container_id)
            except Exception:  # never let one removal stop the others; reconcile is the backstop
                log.exception("could not remove container %s", container_id)
            finally:
                self.pending.discard(container_id)

    def drain(self, timeout, poll=0.05):
        """Take no more; wait up to ``timeout`` seconds for what is queued to be removed; returns how many are
        left (reconcile removes them later)."""
        self.closed = True
        deadline = time.monotonic() + timeout
        while self.pending and time.monotonic() < deadline:
            eventlet.sleep(poll)
        left = len(self.pending)
        if left:
            log.warning("stopping with %d finished container(s) not yet removed; the reconcile of a runner "
                        "on this engine removes them", left)
        return left

    def close(self):
        """End the background thread (after ``drain``, or at once on a kill)."""
        self.closed = True
        self.queue.put(None)
