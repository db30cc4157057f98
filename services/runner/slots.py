"""How a runner takes work: a fixed number of slots, each running one execution at a time.

Each slot asks the scheduler for the next execution (a quick RPC), runs it as
a nameko worker, and when there is nothing to do waits for a wake-up
(``executions_queued``) or the poll interval, whichever comes first.  Nothing
is held unacknowledged in RabbitMQ while a container runs, so an execution may
take hours without tripping the broker's ``consumer_timeout``.
"""
import logging
import socket
from functools import partial

import eventlet
from eventlet.event import Event
from nameko.exceptions import ContainerBeingKilled
from nameko.extensions import DependencyProvider, Entrypoint, SharedExtension

log = logging.getLogger(__name__)


class Holdings(SharedExtension):
    """Shared by a runner's slots: who it is, what it holds, and the wake-up signal."""

    def setup(self):
        config = self.container.config
        self.runner_id = str(config.get("RUNNER_ID") or socket.gethostname())
        self.held = {}            # detail_id -> the work being run
        self.stop_requested = set()
        self._wake = Event()

    def hold(self, work):
        self.held[work["detail_id"]] = work

    def release(self, detail_id):
        self.held.pop(detail_id, None)
        self.stop_requested.discard(detail_id)

    def request_stop(self, detail_id):
        if detail_id in self.held:
            self.stop_requested.add(detail_id)

    def request_stop_result(self, result_id):
        for detail_id, work in list(self.held.items()):
            if work["result_id"] == result_id:
                self.stop_requested.add(detail_id)

    def wake(self):
        wake, self._wake = self._wake, Event()
        wake.send(True)

    def wait(self, timeout):
        with eventlet.Timeout(timeout, False):
            self._wake.wait()


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
        config = self.container.config
        self.slots = int(config.get("RUNNER_SLOTS") or 1)
        self.poll_interval = float(config.get("RUNNER_POLL_INTERVAL") or 2)
        self.stopping = False

    def start(self):
        for slot in range(self.slots):
            self.container.spawn_managed_thread(partial(self._loop, slot), identifier=f"slot-{slot}")

    def stop(self):
        # no new work; what runs now finishes (the container waits for its workers)
        self.stopping = True
        self.holdings.wake()
        super().stop()

    def _loop(self, slot):
        failures = 0
        while not self.stopping:
            done = Event()
            try:
                self.container.spawn_worker(self, (slot,), {},
                                            handle_result=partial(self._handle_result, done))
            except ContainerBeingKilled:
                return
            ran, failed = done.wait()
            if self.stopping:
                return
            failures = failures + 1 if failed else 0
            if failed:
                eventlet.sleep(min(30, 0.5 * 2 ** min(failures, 6)))
            elif not ran:
                self.holdings.wait(self.poll_interval)

    def _handle_result(self, done, worker_ctx, result, exc_info):
        done.send((bool(result), exc_info is not None))
        return result, exc_info


execution_slot = ExecutionSlots.decorator
