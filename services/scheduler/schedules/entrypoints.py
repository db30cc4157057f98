"""The scheduler service's entrypoints for schedules: a mixin of ``SchedulerService``, kept thin."""
import logging

from shared import events, pages, statuses
from shared import messages as m
from shared.extensions import config_timer
from shared.messages import wire
from shared.principals import Caller
from shared.rpc import rpc

from services.scheduler import executions as ex
from services.scheduler import fleet
from services.scheduler.schedules import fire, store

log = logging.getLogger(__name__)


def _owner(done):
    """A fire's schedule's team and its run's maker, for the events (``fire.Fire``)."""
    return {"team": getattr(done, "team", None), "submitted_by": getattr(done, "submitted_by", None)}


class SchedulesMixin:
    """Needs the service's ``db``, ``settings``, ``dispatch``, ``metrics``, ``webhook_sender``,
    ``_wake``, ``_place``, ``_notify_finished``, ``_dependents`` and ``_require_secrets``."""

    @rpc
    def create_schedule(self, body, task=None, idempotency_key=None, caller=None):
        """A new schedule; ``task``: the registry's ``task_facts`` of its task, which the gateway sends."""
        session = self.db.session
        schedule, _ = store.create(session, body, self.settings, self.webhook_sender, task, idempotency_key,
                                   Caller.from_dict(caller), require=self._require_secrets)
        return store.as_dict(schedule, session)

    @rpc
    def get_schedule(self, schedule_id, caller=None):
        session = self.db.session
        return store.as_dict(store.get(session, schedule_id, caller=Caller.from_dict(caller)), session)

    @rpc
    def list_schedules(self, task_id=None, limit=100, after=None, team=None, caller=None, paged=False,
                       after_key=None):
        rows = store.listed(self.db.session, task_id, pages.fetch_limit(limit, paged),
                            pages.cursor(after, after_key), team, Caller.from_dict(caller))
        return pages.reply(map(store.as_dict, rows), limit, self.settings.list_page_bytes, paged)

    @rpc
    def update_schedule(self, schedule_id, body, caller=None):
        session = self.db.session
        schedule = store.update(session, schedule_id, body, self.settings, self.webhook_sender,
                                Caller.from_dict(caller), require=self._require_secrets)
        return store.as_dict(schedule, session)

    @rpc
    def delete_schedule(self, schedule_id, caller=None):
        store.remove(self.db.session, schedule_id, Caller.from_dict(caller))

    @rpc
    def run_schedule(self, schedule_id, caller=None):
        """Run now: the new result (409 when the task is not READY or Forbid holds it back)."""
        done = fire.run_now(self.db.session, schedule_id, self.settings, self.webhook_sender,
                            Caller.from_dict(caller))
        self._after_fire(done)
        return ex.result_as_dict(done.result)

    @config_timer("schedule_interval")
    def fire_schedules(self):
        """Fire the ticks that are due (services/scheduler/schedules/fire.py)."""
        for done in fire.fire_due(self.db.session, self.settings, self.webhook_sender):
            try:
                self._after_fire(done)
            except Exception:  # noqa: BLE001 -- the run exists: the sweep and the runners' polls make good
                self.db.session.rollback()  # what was not sent; the other fires' are still sent
                log.exception("after the fire of schedule %s (result %s)", done.schedule_id,
                              done.result.id if done.result is not None else None)

    def _after_fire(self, done):
        """After a fire's commit: metrics, wake-ups and events (each lost one is made good as a RUN's is)."""
        self.metrics.schedule_fire(done.outcome, done.missed)
        if done.outcome == "FAILED":
            log.warning("schedule %s could not fire: %s", done.schedule_id, done.reason)
            self.dispatch(events.SCHEDULE_FAILED, wire(m.ScheduleFailed(
                schedule_id=done.schedule_id, task_id=done.task_id, scheduled_for=done.scheduled_for,
                reason=done.reason, **_owner(done))))
        if done.outcome != "FIRED":
            return
        if done.replaced:  # Replace: the previous run was marked cancelled with the fire; end it
            session = self.db.session
            self.metrics.executions_cancelled(done.replaced_unmade + ex.finish_cancel(session, done.replaced))
            replaced = ex.get_result(session, done.replaced)
            self.dispatch(events.RESULT_CANCELLED, wire(m.ResultCancelled(result_id=done.replaced,
                                                                          **ex.owner(replaced))))
            if replaced.status in statuses.TERMINAL:
                self._notify_finished(replaced)
            self._dependents(done.replaced)  # what waits for it is settled now, as after a CANCEL
        result = done.result
        params = done.params or {}
        if done.inline:  # a run only some runners may take (sizes, constraints, GPUs) wakes all idle ones
            self._wake(result.id, result.times, sized=bool(params.get("memory") or params.get("cpus"))
                       or fleet.placed(params), whose=ex.owner(result))
        self.dispatch(events.RESULT_SUBMITTED, ex.submitted(result, done.inline))
        if fleet.placed(params):  # says at once when no live runner can take it, as a RUN does
            self._place([result.id])
            self.db.session.expire(result)
        self.dispatch(events.SCHEDULE_FIRED, wire(m.ScheduleFired(
            schedule_id=done.schedule_id, task_id=done.task_id, result_id=result.id,
            scheduled_for=done.scheduled_for, manual=done.manual, missed=done.missed, **_owner(done))))
