"""Event handlers that do not lose an event to a passing outage.

nameko acknowledges an event once its handler returns, whether or not it
raised: an event whose handler failed because PostgreSQL was restarting (or
RabbitMQ, while it published a follow-up event) would be gone.  A
``retrying_event_handler`` runs the handler again, with backoff, while it
fails with a *transient* error, and holds the message unacknowledged
meanwhile; after ``EVENT_RETRY_SECONDS`` (default 300) it hands the message
back to RabbitMQ (requeue), which delivers it again.  Any other error is a bug
or a bad message: it is logged and the message acknowledged, as before.

Handlers retried this way must be idempotent: a retry may follow a
transaction that committed but whose commit was never confirmed.
"""
import logging
import socket
import time
from functools import partial

import eventlet
from kombu.exceptions import OperationalError as BrokerError
from nameko.events import EventHandler
from nameko.exceptions import ContainerBeingKilled
from sqlalchemy import exc as sa_exc

from shared.errors import Unavailable
from shared.settings import settings_of

log = logging.getLogger(__name__)

FIRST_WAIT = 0.5
MAX_WAIT = 10.0


def is_transient(exc):
    """Whether ``exc`` says a backing system is away, not that the work is wrong."""
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.DisconnectionError,
                            BrokerError, ConnectionError, socket.error, Unavailable))


def first_line(exc):
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""


class RetryingEventHandler(EventHandler):
    def setup(self):
        super().setup()
        self.retry_for = settings_of(self.container).event_retry_seconds

    def handle_message(self, body, message):
        self._spawn(body, message, time.monotonic(), FIRST_WAIT)

    def _spawn(self, body, message, first, wait):
        try:
            self.container.spawn_worker(
                self, (body,), {}, context_data=self.unpack_message_headers(message),
                handle_result=partial(self._handled, body, message, first, wait))
        except ContainerBeingKilled:
            self.queue_consumer.requeue_message(message)

    def _handled(self, body, message, first, wait, worker_ctx, result=None, exc_info=None):
        if exc_info is None or not is_transient(exc_info[1]):
            return self.handle_result(message, worker_ctx, result, exc_info)
        name = f"{self.source_service}.{self.event_type}"
        if time.monotonic() - first < self.retry_for:
            log.warning("handling %s failed (%s: %s); trying again in %.1fs", name,
                        exc_info[0].__name__, first_line(exc_info[1]), wait)
            self.container.spawn_managed_thread(partial(self._later, body, message, first, wait),
                                                identifier=f"retry {name}")
        else:
            log.error("handling %s still fails after %.0fs; handing it back to the broker",
                      name, self.retry_for)
            self.queue_consumer.requeue_message(message)
        return result, exc_info

    def _later(self, body, message, first, wait):
        eventlet.sleep(wait)
        self._spawn(body, message, first, min(wait * 2, MAX_WAIT))


retrying_event_handler = RetryingEventHandler.decorator


def swept(session, what, item, step, *args):
    """Run one item of a sweep pass: a failure that is not transient (a bug, a row the code cannot fold) is
    rolled back and logged, and the pass goes on to the next item (the next pass tries this one again), so one
    bad row cannot hold back every lease, cancel and notice behind it. A transient failure (the database or
    the broker away) ends the pass: the next items would fail alike. Whether ``step`` ran is returned."""
    try:
        step(*args)
    except Exception as exc:  # noqa: BLE001 -- logged; the item stays for the next pass
        if is_transient(exc):
            raise
        session.rollback()
        log.error("sweep: %s %s failed, the pass goes on without it: %s: %s",
                  what, item, type(exc).__name__, first_line(exc))
        return False
    return True
