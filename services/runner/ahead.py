"""A slot's next execution prepared while its current one runs: claimed ahead, its container created, started
the moment the slot frees (``RUNNER_PREPARE_AHEAD_SECONDS``; 0, the default: off).

Once a slot's container is created and its start begins (the engine's attach and start are most of a
slot's turnaround: a short execution has often ended by the time its start returns), ``Ahead`` waits until
that execution is expected to end within ``LEAD`` seconds (``Durations``: how long the last one of the same
run took on this runner; a run none of whose executions ended here yet prepares nothing: a one-off, or a
long one, never holds a second), then claims one execution (only when none of the runner's slots is idle:
an idle one would take it at once) and creates its container, not started.  When the current execution
ends, the slot takes the prepared one and starts it: no claim and no create between one container's exit
and the next one's start.

A prepared execution is held, not run: it is QUEUED in the API with its runner named, as any claimed one
that has not started (its start time is its container's real start, reported as for any other); it counts
in its run's ``parallelism`` and its team's ``max_running`` as held (so no team ever runs more containers
than its quota); its lease is renewed with the runner's others.  It is never held hostage by a busy slot:
not started within the bound (counted from its claim), or cancelled, or the runner stopping, it is handed
back (``release_claim``: queued again for any runner, or CANCELLED if it was cancelled meanwhile) and its
container removed.  If the scheduler cannot be asked, the slot keeps it and runs it when it frees (asking
again every ``RETRY`` seconds meanwhile): a claim is never dropped.
"""
import logging
import time
from collections import OrderedDict

import eventlet
from eventlet.event import Event

log = logging.getLogger(__name__)

LEAD = 1.0         # seconds before the current execution's expected end that the next one is claimed
POLL = 0.2         # seconds between a held prepared execution's looks for a cancel, the bound or a stop
RETRY = 5.0        # seconds between hand-backs that could not reach the scheduler
DURATIONS_KEPT = 1000  # runs whose last duration a runner remembers

WAITING, PREPARING, READY, RELEASING, TAKEN, GONE = "waiting", "preparing", "ready", "releasing", "taken", "gone"


class Durations:
    """How long the last execution of each run took on this runner (the most recent ``kept`` runs)."""

    def __init__(self, kept=DURATIONS_KEPT):
        self.kept = kept
        self.last = OrderedDict()  # result_id -> seconds

    def note(self, result_id, seconds):
        self.last.pop(result_id, None)
        self.last[result_id] = max(0.0, seconds)
        while len(self.last) > self.kept:
            self.last.popitem(last=False)

    def delay(self, result_id, lead=LEAD):
        """Seconds after its start to claim the next one: its run's last duration less ``lead``; None when no
        execution of the run ended here yet (nothing is prepared)."""
        seconds = self.last.get(result_id)
        return None if seconds is None else max(0.0, seconds - lead)


class Ahead:
    """One slot's next execution, prepared while its current one runs (see the module's text).

    ``claim()`` answers a held work (dict) or None (nothing, or not now); ``prepare(work)`` its created
    container, or None (the slot creates it when it starts it); ``hand_back(work)`` True when the
    scheduler took it back (queued again, or CANCELLED), False when it was no longer ours, None when the
    scheduler could not be asked; ``discard(work, container)`` removes its container (if any) and forgets
    it; ``verdict(detail_id)`` a reason to give it up now (a cancel, the runner stopping), else None;
    ``count(outcome)`` is told what became of it once known (the runner's metrics).
    """

    def __init__(self, bound, claim, prepare, hand_back, discard, verdict, count=lambda outcome: None,
                 clock=time.monotonic, poll=POLL, retry=RETRY):
        self.bound = bound
        self.claim, self.prepare, self.hand_back = claim, prepare, hand_back
        self.discard, self.verdict, self.count = discard, verdict, count
        self.clock, self.poll, self.retry = clock, poll, retry
        self.state = None
        self.work = None
        self.container = None
        self.deadline = None
        self.outcome = None  # how it ended: "started", "handed_back", "not_ours", or None
        self.settled = Event()  # sent once it is no longer being claimed, created or handed back
        self.thread = None

    def begin(self, delay=0.0):
        """The current execution's container starts: prepare the next one after ``delay`` seconds (None:
        not at all)."""
        if self.state is None and delay is not None:
            self.state = WAITING
            self.thread = eventlet.spawn(self._run, delay)

    def _run(self, delay):
        try:
            if delay > 0:
                eventlet.sleep(delay)
            if self.state != WAITING:
                return
            self.state = PREPARING
            try:
                self.work = self.claim()
                if self.work is not None:
                    self.deadline = self.clock() + self.bound
                    self.container = self.prepare(self.work)
            except Exception:  # a claim that failed: the slot claims as usual when it frees
                log.exception("could not prepare the next execution ahead")
            self.state = READY if self.work is not None else GONE
            self._settle()
            while self.state == READY:
                if self.verdict(self.work["detail_id"]) or self.clock() >= self.deadline:
                    self._give_up()
                else:
                    eventlet.sleep(max(0.0, min(self.poll, self.deadline - self.clock())))
        finally:
            if self.state in (WAITING, PREPARING):
                self.state = GONE
            self._settle()

    def _settle(self):
        if self.state not in (PREPARING, RELEASING) and not self.settled.ready():
            self.settled.send(True)

    def _give_up(self):
        """Hand it back (past its bound, cancelled, or the runner stopping) and remove its container."""
        self.state = RELEASING
        self.settled = Event()
        try:
            taken_back = self.hand_back(self.work)
        except Exception:  # as one that could not be asked
            log.exception("could not hand back execution %s", self.work["detail_id"])
            taken_back = None
        if taken_back is None:  # the scheduler away: still ours; kept for the slot, asked again later
            self.state = READY
            self.deadline = self.clock() + self.retry
        else:
            self.discard(self.work, self.container)
            self.state = GONE
            self._ended("handed_back" if taken_back else "not_ours")
        self._settle()

    def _ended(self, outcome):
        self.outcome = outcome
        if outcome:
            self.count(outcome)

    def take(self):
        """The slot is free: (work, container or None) of the prepared execution, or None (there is none)."""
        if self.state is None or self.state == WAITING:
            self.state = GONE
            if self.thread is not None:
                self.thread.kill()
            return None
        while self.state in (PREPARING, RELEASING):
            self.settled.wait()
        if self.state != READY:
            return None
        self.state = TAKEN
        self._ended("started")
        return self.work, self.container

    def close(self):
        """The slot gives up (its worker failed): a prepared execution is handed back, or forgotten (its lease
        then runs out and the scheduler retries it; reconcile removes its container)."""
        count, self.count = self.count, lambda outcome: None  # not started: not counted so
        taken = self.take()
        self.count = count
        if taken is None:
            return
        work, container = taken
        try:
            taken_back = self.hand_back(work)
        except Exception:  # noqa: BLE001 -- the slot is failing anyway: its lease runs out
            taken_back = None
        self._ended("handed_back" if taken_back else None)
        self.discard(work, container)
