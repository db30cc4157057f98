"""The scheduler's entrypoints for webhooks (the rules of a delivery are in services/scheduler/webhooks.py):
a run's first attempt when its end is announced, then the timers that send what is due or was forgotten."""
import logging

from nameko.events import SERVICE_POOL, event_handler
from nameko.timer import timer

from services.scheduler import webhooks
from shared import events
from shared.timeutil import now

log = logging.getLogger(__name__)


class DeliveriesMixin:
    """Mixed into ``SchedulerService`` (which provides ``db`` and ``webhook_sender``)."""

    @event_handler(events.SCHEDULER, events.RESULT_FINISHED, handler_type=SERVICE_POOL)
    def on_result_finished(self, result):
        """First attempt of the RUN's webhook; later ones are sent by deliver_due_webhooks."""
        if (result.get("params") or {}).get("callback_url"):
            if not webhooks.attempt(self.db.session, self.webhook_sender, result["result_id"]):
                webhooks.defer(self.db.session, result["result_id"])

    @timer(interval=1)
    def deliver_due_webhooks(self):
        session = self.db.session
        for result_id in webhooks.due(session):
            webhooks.attempt(session, self.webhook_sender, result_id)

    @timer(interval=30)
    def deliver_forgotten_webhooks(self):
        session = self.db.session
        for result_id in webhooks.forgotten(session, older_than=now() - 60):
            log.warning("webhook of result %s was never tried; trying it now", result_id)
            webhooks.attempt(session, self.webhook_sender, result_id)
