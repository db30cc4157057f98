"""The scheduler's side of a run's failure policy (rules in services/scheduler/executions/policy.py).

A run that reached ``max_failures`` is stopped right after the report that
reached it is folded (``_stop`` from ``SchedulerService._finish``); one past
its ``deadline`` by the deadline timer, every ``DEADLINE_INTERVAL``.  A stop
cut short (the scheduler stopped between the two steps) is finished by the
sweep (``finish_stops``).  Every step is idempotent, so several schedulers may
do it at once.
"""
import logging

from services.scheduler.executions import policy
from services.scheduler.executions.state import owner
from shared import events, statuses
from shared.extensions import config_timer
from shared.handlers import is_transient, swept
from shared.messages import ResultCancelled, wire

log = logging.getLogger(__name__)


class PolicyMixin:
    """Mixed into ``SchedulerService`` (which provides ``db``, ``dispatch``, ``metrics``,
    ``_notify_finished`` and ``_dependents``)."""

    @config_timer("deadline_interval")
    def stop_past_deadline(self):
        """Stop the runs whose deadline has passed: queued executions CANCELLED, running ones KILLED."""
        session = self.db.session
        for _ in range(10):  # a hundred at a time; what is left waits for the next tick
            due = policy.past_deadline(session)
            for result_id in due:
                try:
                    self._stop(result_id, policy.DEADLINE)
                except Exception as exc:  # noqa: BLE001 -- one run's fault keeps no other past its deadline
                    if is_transient(exc):
                        raise
                    self.db.session.rollback()
                    log.exception("stopping result %s at its deadline failed; tried again next tick", result_id)
            if len(due) < 100:
                break

    def finish_stops(self):
        """From the sweep: stops of the policy that a crash cut short."""
        for result_id in policy.unfinished_stops(self.db.session):
            log.warning("finishing the stop of result %s (its failure policy)", result_id)
            swept(self.db.session, "the stop of result", result_id, self._stop, result_id, policy.MAX_FAILURES)

    def _stop(self, result_id, why):
        """Stop a run for its failure policy (``why`` unless it was already stopped for another reason)."""
        result, cancelled, first = policy.stop_result(self.db.session, result_id, why)
        if result is None:
            return
        self.metrics.executions_cancelled(cancelled)
        if first:
            log.info("result %s stopped by its failure policy: %s", result_id, result.ended_by)
            self.metrics.run_stopped(result.ended_by)
            # runners stop what they hold of it at once (their heartbeats' answers, should this be lost)
            self.dispatch(events.RESULT_CANCELLED,
                          wire(ResultCancelled(result_id=result.id, reason=result.ended_by, **owner(result))))
        if result.status in statuses.TERMINAL:
            self._notify_finished(result)
        if cancelled or result.status in statuses.TERMINAL:
            # what waits for it: a run waiting for it to COMPLETE, a per_index pair of an execution cancelled now
            self._dependents(result.id)
