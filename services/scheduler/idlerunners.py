"""Which runners this scheduler last saw idle, so that a wake-up goes to as many as there is work for.

New executions are announced with ``executions_queued``, broadcast to every
runner.  Every idle runner used to claim at once, so a RUN of one execution
with 50 idle runners cost 50 claims, 49 of them for nothing, all serialised in
the scheduler (a thundering herd that grows with the number of runners).

A runner whose claim finds nothing is idle; one whose claim gets work is not.
The scheduler keeps the runners whose last claim (to this process) found
nothing, for a little over two poll intervals (an idle runner claims again each
``RUNNER_POLL_INTERVAL``, which keeps it listed; a busy or gone one drops out).
When it queues ``count`` executions it names ``count + SPARE`` of them, the
most recently seen first, in the event; other runners ignore it.  Whenever it
knows fewer idle runners than that (a scheduler just started, several
scheduler replicas each seeing part of the claims, runners with several
slots), the event names nobody and every runner wakes, as before.  A runner
named but busy meanwhile costs a spare; should every named one be, the
execution waits for the next poll of an idle runner (at most
``RUNNER_POLL_INTERVAL``).  Wake-ups are hints either way: the claim, in the
database, decides who runs what.
"""
import time
from collections import OrderedDict

from nameko.extensions import DependencyProvider

from shared.settings import settings_of

SPARE = 1


class IdleRunners:
    def __init__(self, keep_seconds, spare=SPARE, clock=time.monotonic):
        self.keep_seconds = keep_seconds
        self.spare = spare
        self.clock = clock
        self.seen = OrderedDict()  # runner -> when a claim of it last found nothing, oldest first

    def claimed(self, runner, work):
        """Note a claim's outcome: ``work`` None means the runner found nothing to do."""
        self.seen.pop(runner, None)
        if work is None:
            self.seen[runner] = self.clock()

    def pick(self, count):
        """The runners to wake for ``count`` new executions, or None: wake every runner."""
        stamp = self.clock()
        while self.seen:
            runner, at = next(iter(self.seen.items()))
            if stamp - at <= self.keep_seconds:
                break
            del self.seen[runner]
        wanted = count + self.spare
        if len(self.seen) < wanted:
            return None
        chosen = list(self.seen)[-wanted:]  # the most recently seen idle
        for runner in chosen:  # each claims now; one that finds nothing is noted again
            del self.seen[runner]
        return chosen


class IdleRunnersProvider(DependencyProvider):
    """The service's ``IdleRunners``, one per process, shared by its workers."""

    def setup(self):
        poll = settings_of(self.container).runner_poll_interval
        self.idle = IdleRunners(keep_seconds=2 * poll + 1)

    def get_dependency(self, worker_ctx):
        return self.idle
