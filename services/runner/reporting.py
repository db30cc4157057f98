"""Reports that must arrive: an event dispatch retried until the broker takes it; several in one message.

nameko publishes events persistently with publisher confirms; if RabbitMQ is
down or restarting the publish raises, so a runner's report of an execution's
start or end is retried with backoff until the broker confirms it (for up to
``REPORT_RETRY_SECONDS``, an hour by default) instead of being dropped.

A runner's slots report together (``ReportBatches``): the reports made within
``RUNNER_REPORT_WINDOW`` of each other go as one ``execution_reports`` message
(one persistent delivery, folded by the scheduler in one transaction), and a
slot goes on only once the broker confirmed the message that holds its report.

A rolling upgrade may run runners of this release before every scheduler is: a scheduler from before has no
queue bound for ``execution_reports``, and RabbitMQ would drop the message.  So a batch is published
``mandatory``: one that no queue takes comes back (basic.return, seen before the publisher confirm; nameko
raises ``UndeliverableMessage``), and its reports go again as the single ``execution_started`` /
``execution_finished`` events every scheduler consumes, as do the runner's reports for ``UNROUTED_PAUSE``
seconds after; then a batch is tried again.
"""
import logging
import time

import eventlet
from eventlet.event import Event
from eventlet.semaphore import Semaphore
from nameko.amqp.publish import UndeliverableMessage
from nameko.events import EventDispatcher
from nameko.extensions import DependencyProvider

from shared.settings import settings_of

log = logging.getLogger(__name__)

# what a message holds at most of the reports' output (base64 text), whatever RUNNER_REPORT_BATCH says;
# a report holding more goes alone
BATCH_BYTES = 4 * 1024 * 1024
# seconds a runner whose batch no queue took sends its reports as single events, before it tries a batch again
UNROUTED_PAUSE = 300.0
UNROUTED = object()  # what a sender is told when its report's batch came back unrouted


class ReliableDispatcher(EventDispatcher):
    def setup(self):
        super().setup()
        self.retry_for = settings_of(self.container).report_retry_seconds

    def get_dependency(self, worker_ctx):
        """``dispatch(event_type, payload, mandatory=False)``: with ``mandatory``, a message no queue takes
        raises ``UndeliverableMessage`` at once (not retried: it is the answer, not an outage)."""
        headers = self.get_message_headers(worker_ctx)
        retry_for = self.retry_for

        def reliable(event_type, payload, mandatory=False):
            deadline = time.monotonic() + retry_for
            wait = 0.5
            while True:
                try:
                    return self.publisher.publish(payload, exchange=self.exchange, routing_key=event_type,
                                                  extra_headers=headers, mandatory=mandatory)
                except UndeliverableMessage:
                    raise
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

    A message no queue took (``publish`` raised ``UndeliverableMessage``: a scheduler from before) has each
    of its reports sent by ``single(event, report)``, as are the reports sent for ``unrouted_pause`` seconds
    after (the first batch after that is mandatory again).  Without ``single``, its senders raise it.
    """

    def __init__(self, window, most, max_bytes=BATCH_BYTES, clock=time.monotonic, sleep=eventlet.sleep,
                 unrouted_pause=UNROUTED_PAUSE):
        self.window, self.most, self.max_bytes = window, most, max_bytes
        self.clock, self.sleep = clock, sleep
        self.pending = []  # (item, its size, an Event) of each report waiting for a message
        self.turn = Semaphore(1)
        self.messages = 0  # published so far
        self.unrouted_pause = unrouted_pause
        self.singles_until = None  # the clock's time until which reports go as single events
        self.unrouted = 0  # messages that came back unrouted

    def singles(self):
        """Whether reports go as single events now (a batch came back unrouted less than the pause ago)."""
        return self.singles_until is not None and self.clock() < self.singles_until

    def send(self, event_type, report, publish, single=None):
        if single is not None and self.singles():
            return single(event_type, report)
        mine = Event()
        self.pending.append(({"event": event_type, "report": report}, output_bytes(report), mine))
        with self.turn:
            while not mine.ready():
                if self.singles():  # those waiting meanwhile go as single events, each by its sender
                    batch, self.pending = self.pending, []
                    for _, _, event in batch:
                        event.send(UNROUTED)
                    break
                self._gather()
                batch = self._take()
                self.messages += 1
                try:
                    publish([item for item, _, _ in batch])
                except UndeliverableMessage:
                    self._returned(len(batch))
                    for _, _, event in batch:
                        event.send(UNROUTED)
                except Exception as exc:  # noqa: BLE001 -- each report's sender is told, as if alone
                    for _, _, event in batch:
                        event.send_exception(exc)
                else:
                    for _, _, event in batch:
                        event.send(None)
        if mine.wait() is not UNROUTED:
            return None
        if single is None:
            raise UndeliverableMessage()
        return single(event_type, report)

    def _returned(self, count):
        self.unrouted += 1
        self.singles_until = self.clock() + self.unrouted_pause
        log.warning("a message of %d reports came back unrouted (no queue for execution_reports: a scheduler "
                    "from before?); they and the reports of the next %.0f s go as single events",
                    count, self.unrouted_pause)

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
