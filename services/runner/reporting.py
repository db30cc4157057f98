"""Reports that must arrive: an event dispatch retried until the broker takes it; several in one message.

nameko publishes events persistently with publisher confirms; if RabbitMQ is
down or restarting the publish raises, so a runner's report of an execution's
start or end is retried with backoff until the broker confirms it (for up to
``REPORT_RETRY_SECONDS``, an hour by default) instead of being dropped.

A runner's slots report together (``ReportBatches``): the reports made within
``RUNNER_REPORT_WINDOW`` of each other go as one ``execution_reports`` message
(one persistent delivery, folded by the scheduler in one transaction), and a
slot goes on only once the broker confirmed the message that holds its report.
"""
import logging
import time

import eventlet
from eventlet.event import Event
from eventlet.semaphore import Semaphore
from nameko.events import EventDispatcher
from nameko.extensions import DependencyProvider

from shared.settings import settings_of

log = logging.getLogger(__name__)

# what a message holds at most of the reports' output (base64 text), whatever RUNNER_REPORT_BATCH says;
# a report holding more goes alone
BATCH_BYTES = 4 * 1024 * 1024


class ReliableDispatcher(EventDispatcher):
    def setup(self):
        super().setup()
        self.retry_for = settings_of(self.container).report_retry_seconds

    def get_dependency(self, worker_ctx):
        dispatch = super().get_dependency(worker_ctx)
        retry_for = self.retry_for

        def reliable(event_type, payload):
            deadline = time.monotonic() + retry_for
            wait = 0.5
            while True:
                try:
                    return dispatch(event_type, payload)
                except Exception as exc:  # the broker's errors vary by what failed
                    if time.monotonic() > deadline:
                        raise
                    log.warning("could not report %s (%s); retrying in %.1fs", event_type, exc, wait)
                    time.sleep(wait)
                    wait = min(wait * 2, 10)

        return reliable


def output_bytes(report):
    """About how many bytes of output a report carries (its ``logs``' and ``tes_log``'s text)."""
    size = 0
    for key in ("logs", "tes_log"):
        part = report.get(key) if isinstance(report, dict) else None
        if isinstance(part, dict):
            size += sum(len(value) for value in part.values() if isinstance(value, (str, bytes)))
        elif part is not None:
            size += len(repr(part))
    return size


class ReportBatches:
    """A runner's reports, coalesced: ``send(event, report, publish)`` returns once the message holding
    the report was published (``publish(reports)`` returned), or raises what publishing it raised.

    The first report in waits ``window`` seconds (or until ``most`` are waiting) for others, then
    publishes them all in one call, in the order they came; reports that come meanwhile make the next
    message, one publish at a time.  A message holds at most ``most`` reports and ``max_bytes`` of their
    output (one larger report goes alone).  ``clock``, ``sleep``: injectable for tests.
    """

    def __init__(self, window, most, max_bytes=BATCH_BYTES, clock=time.monotonic, sleep=eventlet.sleep):
        self.window, self.most, self.max_bytes = window, most, max_bytes
        self.clock, self.sleep = clock, sleep
        self.pending = []  # (item, its size, an Event) of each report waiting for a message
        self.turn = Semaphore(1)
        self.messages = 0  # published so far

    def send(self, event_type, report, publish):
        mine = Event()
        self.pending.append(({"event": event_type, "report": report}, output_bytes(report), mine))
        with self.turn:
            while not mine.ready():
                self._gather()
                batch = self._take()
                self.messages += 1
                try:
                    publish([item for item, _, _ in batch])
                except Exception as exc:  # noqa: BLE001 -- each report's sender is told, as if alone
                    for _, _, event in batch:
                        event.send_exception(exc)
                else:
                    for _, _, event in batch:
                        event.send(None)
        return mine.wait()

    def _gather(self):
        """Let other slots' reports join, for at most ``window`` seconds or until ``most`` are waiting."""
        deadline = self.clock() + self.window
        while len(self.pending) < self.most and self.clock() < deadline:
            self.sleep(min(0.005, max(deadline - self.clock(), 0)))

    def _take(self):
        """The next message's reports: the oldest, up to ``most`` and ``max_bytes`` (at least one)."""
        size, count = 0, 0
        for _, bytes_, _ in self.pending[:self.most]:
            if count and size + bytes_ > self.max_bytes:
                break
            size, count = size + bytes_, count + 1
        batch, self.pending = self.pending[:count], self.pending[count:]
        return batch


class ReportBatchesProvider(DependencyProvider):
    """The runner's ``ReportBatches`` (one for all its slots), or None with ``RUNNER_REPORT_WINDOW`` 0."""

    def setup(self):
        settings = settings_of(self.container)
        self.batches = ReportBatches(settings.runner_report_window, settings.runner_report_batch) \
            if settings.runner_report_window > 0 else None

    def get_dependency(self, worker_ctx):
        return self.batches
