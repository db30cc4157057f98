"""Reports that must arrive: an event dispatch retried until the broker takes it.

nameko publishes events persistently with publisher confirms; if RabbitMQ is
down or restarting the publish raises, so a runner's report of an execution's
start or end is retried with backoff until the broker confirms it (for up to
``REPORT_RETRY_SECONDS``, an hour by default) instead of being dropped.
"""
import logging
import time

from nameko.events import EventDispatcher

from shared.settings import settings_of

log = logging.getLogger(__name__)


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
