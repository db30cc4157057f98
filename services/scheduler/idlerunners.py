"""Which runners this scheduler last saw with free slots, so that a wake-up goes to as few as the work needs.

New executions are announced with ``executions_queued``, broadcast to every
runner.  Every idle runner used to claim at once, so a RUN of one execution
with 50 idle runners cost 50 claims, 49 of them for nothing, all serialised in
the scheduler (a thundering herd that grows with the number of runners).

The list counts **free slots**, not runners.  Each claim says how many slots
asked and how many executions they were given, and the runner's description
(``RunnerInfo``) how many of its slots are busy: a runner's free slots after a
claim are its slots neither busy nor just given work (the ones that asked and
got nothing, and the ones waiting for their poll tick), or, when it sent no
description, what it asked for and was not given.  Its heartbeats lower the
count of a listed runner (with several scheduler replicas each hears part of
the claims).  A runner stays listed for a little over two poll intervals after
its last claim (an idle runner claims again each ``RUNNER_POLL_INTERVAL``,
which keeps it listed; a gone one drops out).

When the scheduler queues ``count`` executions it names the runners, the most
recently seen first, whose free slots add up to ``count + SPARE`` (a RUN of 10
names one runner with 11 free slots, not 11 runners), and counts the ``count``
as taken until their claims say what they got; other runners ignore the
event.  Whenever it knows fewer free slots than that (a scheduler just
started, several replicas each seeing part of the claims, a fan-out bigger
than the idle fleet), the event names nobody and every runner wakes, as
before.  The spare slot covers one slot taken meanwhile (by the runner's own
poll tick, or another run's wake-up); should the named runners have fewer free
slots than they were counted for, or be gone, what they leave waits for the
next poll of an idle runner (at most 1.5 ``RUNNER_POLL_INTERVAL``), as a lost
wake-up does.  A margin of whole runners would cost an empty claim per RUN,
the cost this list is here to save.  Wake-ups are hints either way: the claim,
in the database, decides who runs what.
"""
import time
from collections import OrderedDict

from nameko.extensions import DependencyProvider

from shared.settings import settings_of

SPARE = 1           # free slots named beyond the executions queued
LISTED_MAX = 100000  # runners listed at most (the oldest forgotten): bounded whatever ids claims send


def free_after_claim(asked, given, slots=None, busy=None):
    """A runner's free slots after a claim of ``asked`` that was ``given`` executions; ``slots`` and ``busy``:
    its description sent with the claim (busy before it), None when it sent none."""
    free = max(asked - given, 0)
    if slots is not None and busy is not None:
        free = max(free, slots - busy - given)
    return free


class IdleRunners:
    def __init__(self, keep_seconds, spare=SPARE, clock=time.monotonic):
        self.keep_seconds = keep_seconds
        self.spare = spare
        self.clock = clock
        self.seen = OrderedDict()  # runner -> [when its last claim was, its free slots], oldest first

    def claimed(self, runner, free):
        """Note a claim's outcome: the runner has ``free`` slots with nothing to do (0: none, it is busy)."""
        self.seen.pop(runner, None)
        if free > 0:
            self.seen[runner] = [self.clock(), free]
            if len(self.seen) > LISTED_MAX:
                self.seen.popitem(last=False)

    def heard(self, runner, free):
        """A heartbeat's count of the runner's free slots: lowers a listed runner's (slots taken by claims to
        other replicas), never raises it (slots counted as taken by a wake-up whose claim is on its way), nor
        keeps it listed longer: its claims do."""
        listed = self.seen.get(runner)
        if listed is None:
            return
        if free > 0:
            listed[1] = min(listed[1], free)
        else:
            del self.seen[runner]

    def pick(self, count):
        """The runners to wake for ``count`` new executions, or None: wake every runner."""
        stamp = self.clock()
        while self.seen:
            runner, (at, _) = next(iter(self.seen.items()))
            if stamp - at <= self.keep_seconds:
                break
            del self.seen[runner]
        wanted = count + self.spare
        if sum(free for _, free in self.seen.values()) < wanted:
            return None
        chosen, found = [], 0
        for runner in reversed(self.seen):  # the most recently seen first
            chosen.append(runner)
            found += self.seen[runner][1]
            if found >= wanted:
                break
        taken = count
        for runner in chosen:  # until their claims tell, the slots the executions will take are not free
            listed = self.seen[runner]
            share = min(listed[1], taken)
            taken -= share
            listed[1] -= share
            if listed[1] <= 0:
                del self.seen[runner]
        return chosen


class IdleRunnersProvider(DependencyProvider):
    """The service's ``IdleRunners``, one per process, shared by its workers."""

    def setup(self):
        poll = settings_of(self.container).runner_poll_interval
        self.idle = IdleRunners(keep_seconds=2 * poll + 1)

    def get_dependency(self, worker_ctx):
        return self.idle
