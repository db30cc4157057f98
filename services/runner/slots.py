"""How a runner takes work: a fixed number of slots, each running one execution at a time.

Each slot that wants work joins the runner's next claim (``ClaimRounds``): one
quick RPC (``claim_executions``) asks for as many executions as slots joined it,
so a runner's idle slots poll together, once a poll interval (their waits end on
the same ticks), not once a slot.  Each runs what it was given as a nameko worker,
and when there is nothing to do waits for a wake-up (``executions_queued``) or the
next tick of the poll interval, whichever comes first.  Nothing
is held unacknowledged in RabbitMQ while a container runs, so an execution may
take hours without tripping the broker's ``consumer_timeout``.

A slot also runs the executions that a runner restarted under the same id
finds still running on its engine (``services.runner.reconcile`` adopts them),
before any new work, so a restart never runs more containers than slots.

Stopping (SIGTERM): the slots take no new work and what they hold goes on for
``RUNNER_STOP_GRACE`` seconds; then its container is stopped and the
execution handed back as an ERROR saying so (retried when its run allows).
Heartbeats go on until the last held execution has been reported.
"""
import logging
import socket
import time
import zlib
from collections import OrderedDict, deque
from contextlib import contextmanager, nullcontext
from functools import partial

import eventlet
from eventlet.event import Event
from eventlet.semaphore import Semaphore
from nameko.exceptions import ContainerBeingKilled
from nameko.extensions import DependencyProvider, Entrypoint, SharedExtension

from services.runner.ahead import Durations
from shared import statuses as st
from shared.extensions import ConfigTimer
from shared.settings import settings_of

log = logging.getLogger(__name__)

RECEIVED_KEPT = 100000   # (detail_id, attempt) pairs remembered as handed to this process
FIRST_RECONCILE_WAIT = 5.0
GATHER_SECONDS = 0.02  # the most a claim waits for the slots woken with it to join (ClaimRounds)
# workers a runner needs besides one per slot: its heartbeat and reconcile timers, wake-ups and cancels
WORKER_HEADROOM = 8


def slot_count(container):
    return settings_of(container).runner_slots


class ClaimRounds:
    """A runner's slots claim together: one call for all the slots that want work at once.

    A slot calls ``take(claim, slot)``; the first one in leads a round: it lets
    the slots woken with it join (``coming``: slots whose worker started and
    has not yet asked, nor said it will not: ``skip``), then calls
    ``claim(k)`` once for the ``k`` slots in the round (at most ``most``) and
    hands each one of the executions (or None: fewer than asked).  Slots that
    come while a round's call is under way make the next round, one call at a
    time.  A failed call raises in the leading slot (its worker fails, and
    backs off); the others in its round are given None (they wait for the next
    tick).  ``claim`` must answer at most ``k``.
    """

    def __init__(self, most=None):
        self.most = most  # slots a round serves at most (None: all that joined)
        self.pending = []  # an Event for each slot waiting for a round
        self.turn = Semaphore(1)
        self.rounds = 0  # calls made so far
        self.coming = set()  # slots on their way to ``take``

    def expect(self, slot):
        """The slot's worker starts: it may ask (a round waits for it a moment)."""
        self.coming.add(slot)

    def skip(self, slot):
        """The slot does not ask this time (it runs an adoption, or takes no work now)."""
        self.coming.discard(slot)

    def take(self, claim, slot=None):
        mine = Event()
        self.coming.discard(slot)
        self.pending.append(mine)
        with self.turn:
            if not mine.ready():
                if self.most != 1:
                    self._gather()
                others = [event for event in self.pending if event is not mine]
                room = len(others) if self.most is None else max(self.most - 1, 0)
                batch, self.pending = [mine] + others[:room], others[room:]
                self.rounds += 1
                works = []
                try:
                    works = list(claim(len(batch)))[:len(batch)]
                finally:
                    for index, event in enumerate(batch[1:], start=1):
                        event.send(works[index] if index < len(works) else None)
                return works[0] if works else None
        return mine.wait()

    def _gather(self, clock=time.monotonic):
        """Let the slots woken with the leader join its round: until none is on its way, for at most
        ``GATHER_SECONDS`` (a woken slot starts its worker, then asks: a few turns of the event loop)."""
        deadline = clock() + GATHER_SECONDS
        turns = 0
        while self.coming and clock() < deadline:
            eventlet.sleep(0 if turns < 10 else 0.001)
            turns += 1


class Holdings(SharedExtension):
    """Shared by a runner's slots: who it is, what it holds, and the wake-up signal."""

    def setup(self):
        settings = settings_of(self.container)
        self.runner_id = settings.runner_id or socket.gethostname()
        self.stop_grace = settings.runner_stop_grace
        self.held = {}            # detail_id -> the work being run (or prepared: ``prepared``)
        # held executions claimed ahead by a busy slot, their container created but not started (ahead.py)
        self.prepared = set()
        self.prepare_ahead = 0.0 if settings.runner_gpus else settings.runner_prepare_ahead_seconds
        self.durations = Durations()  # how long each run's last execution took here: when to prepare its next
        self.stop_requested = {}  # detail_id -> (status, reason)
        self._wake = Event()
        self.wakes = 0  # wake-ups so far
        # what this process was given (claimed or adopted), to tell a lost claim from a known one
        self.received = OrderedDict()
        self.claims_in_flight = 0
        self.claim_seq = 0
        self.adoptions = deque()  # (work, container_id) waiting for a slot
        self.installation = None  # this installation's id, once the scheduler told it
        self.reconciled = Event()
        self.stopping = False
        self.stop_deadline = None
        # where it may run (services/scheduler/fleet.py): its labels, its GPUs and which an execution holds
        self.labels = dict(settings.runner_labels)
        self.gpus = tuple(settings.runner_gpus)
        self.gpus_held = {}  # detail_id -> the device ids its container was given
        self.gpu_claims = Semaphore(1)  # with GPUs, one claim at a time: each sends the ids free now
        self.slots = settings.runner_slots
        # a runner with GPUs claims one execution at a time: each claim sends the device ids free now
        self.claims = ClaimRounds(most=1 if self.gpus else None)
        # where in the poll interval this runner's idle slots ask (spread: runners started together do not
        # all ask in the same instant)
        self.poll_phase = (zlib.crc32(self.runner_id.encode()) % 1000) / 1000.0

    # ------------------------------------------------------------ holding

    def hold(self, work):
        self.held[work["detail_id"]] = work
        if work.get("gpu_ids"):
            self.gpus_held[work["detail_id"]] = list(work["gpu_ids"])

    def free_gpus(self):
        """This runner's GPU device ids no held execution has, in their order.  None before the first
        reconcile: a restarted runner's containers still running hold theirs until it re-adopted them."""
        if not self.reconciled.ready():
            return []
        taken = {gpu for ids in self.gpus_held.values() for gpu in ids}
        return [gpu for gpu in self.gpus if gpu not in taken]

    def info(self, engine=None):
        """What the runner tells of itself with each heartbeat and claim (``RunnerInfo``)."""
        busy = len(self.held) - len(self.prepared)
        return {"labels": self.labels, "slots": self.slots, "busy": busy, "gpus": list(self.gpus),
                "gpus_free": len(self.free_gpus()), "engine": engine}

    def holds(self, detail_id, attempt):
        work = self.held.get(detail_id)
        return work is not None and work["attempt"] == attempt

    def may_prepare(self):
        """Whether a busy slot may claim its next execution ahead now: on (``RUNNER_PREPARE_AHEAD_SECONDS``, no
        GPUs), not stopping, and none of this runner's slots idle (an idle one takes new work at once)."""
        running = len(self.held) - len(self.prepared) - len(self.adoptions)
        return (self.prepare_ahead > 0 and not self.stopping and not self.adoptions
                and self.reconciled.ready() and running >= self.slots)

    def release(self, detail_id):
        self.held.pop(detail_id, None)
        self.prepared.discard(detail_id)
        self.gpus_held.pop(detail_id, None)
        self.stop_requested.pop(detail_id, None)

    def request_stop(self, detail_id, status=st.KILLED, reason="cancelled"):
        if detail_id in self.held:
            self.stop_requested.setdefault(detail_id, (status, reason))

    def request_stop_result(self, result_id):
        for detail_id, work in list(self.held.items()):
            if work["result_id"] == result_id:
                self.request_stop(detail_id)

    def stop_verdict(self, detail_id):
        """(status, reason) when the execution must be stopped now, else None."""
        verdict = self.stop_requested.get(detail_id)
        if verdict:
            return verdict
        if self.stop_deadline is not None and time.monotonic() >= self.stop_deadline:
            return (st.ERROR, f"runner {self.runner_id} was shut down and the execution did not end "
                              f"within its stop grace period of {self.stop_grace:g}s; it was stopped")
        return None

    # ------------------------------------------------------------ claims

    @contextmanager
    def claiming(self):
        """Around a claim RPC: while one is in flight no claim can be judged lost.  A runner with GPUs
        claims one at a time, so that two claims never send (and are given) the same free device ids."""
        self.claims_in_flight += 1
        self.claim_seq += 1
        lock = self.gpu_claims if self.gpus else nullcontext()
        try:
            with lock:
                yield
        finally:
            self.claims_in_flight -= 1

    def claim_snapshot(self):
        return self.claims_in_flight, self.claim_seq

    def note_received(self, work):
        self.received[(work["detail_id"], work["attempt"])] = True
        while len(self.received) > RECEIVED_KEPT:
            self.received.popitem(last=False)

    def forget(self, work):
        """A claim handed back: no longer held, nor known (the attempt may come back)."""
        self.release(work["detail_id"])
        self.received.pop((work["detail_id"], work["attempt"]), None)

    def was_received(self, detail_id, attempt):
        return (detail_id, attempt) in self.received

    # ------------------------------------------------------------ adoptions

    def adopt(self, work, container_id):
        """Take on an execution found running on the engine; a slot runs it next."""
        self.note_received(work)
        self.hold(work)
        self.adoptions.append((work, container_id))
        self.wake()

    def next_adoption(self):
        return self.adoptions.popleft() if self.adoptions else None

    def wait_reconciled(self, timeout=FIRST_RECONCILE_WAIT):
        if not self.reconciled.ready():
            with eventlet.Timeout(timeout, False):
                self.reconciled.wait()

    def mark_reconciled(self):
        if not self.reconciled.ready():
            self.reconciled.send(True)

    # ------------------------------------------------------------ waking and stopping

    def wake(self):
        self.wakes += 1
        wake, self._wake = self._wake, Event()
        wake.send(True)

    def wait(self, timeout, since=None):
        """Until a wake-up or ``timeout``; at once if one came after ``wakes`` was ``since``.

        A slot notes ``wakes`` before it claims: a wake-up that arrives while its
        claim finds nothing, before it waits, is not lost to a whole poll interval.
        """
        if since is not None and self.wakes != since:
            return
        with eventlet.Timeout(timeout, False):
            self._wake.wait()

    def wait_tick(self, interval, since=None, clock=time.monotonic):
        """``wait`` until a tick of ``interval`` (this runner's phase of it) at least half an interval away:
        the idle slots of a runner wait for the same ticks, so that they ask for work together, in one
        claim; each waits 0.5 to 1.5 intervals after its last claim, one interval on average."""
        self.wait(poll_wait(clock(), interval, self.poll_phase), since)

    def begin_shutdown(self):
        if not self.stopping:
            self.stopping = True
            self.stop_deadline = time.monotonic() + self.stop_grace
            if self.held:
                log.info("stopping: %d execution(s) held get %gs to end", len(self.held), self.stop_grace)
            self.wake()


def until_tick(stamp, interval, phase=0.0):
    """Seconds from ``stamp`` to the next tick of ``interval`` (ticks at ``(n + phase) * interval``), above 0."""
    if interval <= 0:
        return 0.0
    return interval - ((stamp - phase * interval) % interval)


def poll_wait(stamp, interval, phase=0.0):
    """Seconds from ``stamp`` to the first tick of ``interval`` at least half an interval away."""
    return interval / 2 + until_tick(stamp + interval / 2, interval, phase)


class HoldingsProvider(DependencyProvider):
    holdings = Holdings()

    def get_dependency(self, worker_ctx):
        return self.holdings


class ExecutionSlots(Entrypoint):
    """Calls the decorated method once per free slot, again and again.

    The method returns True when it ran something (so the slot asks again at
    once) and False when there was nothing to do (the slot waits).
    """

    holdings = Holdings()

    def setup(self):
        self.slots = slot_count(self.container)
        self.poll_interval = settings_of(self.container).runner_poll_interval
        self.stopping = False
        self.threads = []

    def workers_needed(self):
        """A worker per slot (held while its execution runs) and ``WORKER_HEADROOM`` for the rest: the runner's
        worker pool grows to it whatever MAX_WORKERS says (shared.queues.Container), else its heartbeats and
        cancels would wait for a slot's execution to end."""
        return slot_count(self.container) + WORKER_HEADROOM

    def start(self):
        for slot in range(self.slots):
            self.threads.append(self.container.spawn_managed_thread(
                partial(self._loop, slot), identifier=f"slot-{slot}"))

    def stop(self):
        # no new work; what runs now finishes within the grace period (the
        # container waits for its workers), then what is adopted but not run yet
        self.stopping = True
        self.holdings.begin_shutdown()
        for thread in self.threads:
            try:
                thread.wait()
            except Exception:  # a slot that died has nothing left to finish
                pass
        super().stop()

    def _done(self):
        return self.stopping and not self.holdings.adoptions

    def _loop(self, slot):
        failures = 0
        while not self._done():
            done = Event()
            wakes = self.holdings.wakes
            self.holdings.claims.expect(slot)
            try:
                self.container.spawn_worker(self, (slot,), {},
                                            handle_result=partial(self._handle_result, done))
            except ContainerBeingKilled:
                return
            ran, failed = done.wait()
            self.holdings.claims.skip(slot)  # a worker that failed before it asked
            if self._done():
                return
            failures = failures + 1 if failed else 0
            if failed:
                eventlet.sleep(min(5.0, 0.25 * 2 ** min(failures, 5)))
            elif not ran:
                self.holdings.wait_tick(self.poll_interval, since=wakes)

    def _handle_result(self, done, worker_ctx, result, exc_info):
        done.send((bool(result), exc_info is not None))
        return result, exc_info


execution_slot = ExecutionSlots.decorator


class HoldingTimer(ConfigTimer):
    """A timer that keeps ticking while the runner stops, until it holds nothing.

    For heartbeats: an execution finishing within the stop grace period must
    keep its lease meanwhile.
    """

    holdings = Holdings()

    def stop(self):
        while self.holdings.held:
            eventlet.sleep(0.2)
        super().stop()


holding_timer = HoldingTimer.decorator
