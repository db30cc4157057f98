"""The scheduler's side of dependencies between runs (a RUN's ``after``): who is settled when, and what
is said about it.  The rules are in services/scheduler/executions/dependencies.py.

A run's dependents are settled right after anything that may end what they wait
for: an execution's end, a fan-out batch, and -- by its ``result_cancelled`` or
``execution_cancel_requested`` event, in a pool's worker, not in the CANCEL's RPC -- a cancel.  That is a transaction of
its own, after the one that ended it: should the scheduler stop in between, or
settling fail, the sweep here settles every run still waiting.
"""
import logging
import time

from nameko.events import SERVICE_POOL, event_handler

from services.scheduler.executions import dependencies as deps
from services.scheduler.executions.state import get_detail, get_result, owner
from shared import events
from shared import statuses as st
from shared.errors import NotFound
from shared import messages as m
from shared.extensions import config_timer
from shared.handlers import first_line
from shared.messages import wire

log = logging.getLogger(__name__)

# a per_index run whose pairs end one by one is settled by each end as it is folded; the sweep settles it
# anew (a pass over all its waiting executions: about a second for 200,000) at most this often, and at once
# when a run it waits for ended.  By result id: when this process last did (one scheduler's memory; a new
# process does it at its first sweep).
PAIRS_SWEEP_EVERY = 60.0
_pairs_swept = {}


class DependenciesMixin:

    @config_timer("sweep_interval")
    def sweep_dependencies(self):
        """Settle every run still waiting: what a scheduler stopped, or a failure, left undone."""
        clock = time.monotonic()
        waiting = deps.waiting_results(self.db.session)
        for result_id, ended in waiting:
            if not ended and clock - _pairs_swept.get(result_id, -PAIRS_SWEEP_EVERY) < PAIRS_SWEEP_EVERY:
                continue
            _pairs_swept[result_id] = clock
            self._settle(result_id)
        for result_id in set(_pairs_swept) - {result_id for result_id, _ in waiting}:
            del _pairs_swept[result_id]  # settled, or no longer in need

    @event_handler(events.SCHEDULER, events.RESULT_CANCELLED, handler_type=SERVICE_POOL)
    def on_result_cancelled(self, payload):
        """Settle the runs waiting for a run cancelled: a CANCEL answers without them (a thousand took
        it past the RPC's timeout).  Lost, or cut short: the sweep settles them."""
        payload = m.received(m.ResultCancelled, payload, "a result_cancelled event")
        if payload is not None:
            self._dependents(payload.result_id)

    @event_handler(events.SCHEDULER, events.EXECUTION_CANCEL_REQUESTED, handler_type=SERVICE_POOL)
    def on_execution_cancel_requested(self, payload):
        """An execution ended CANCELLED by its CANCEL (it was queued): settle the runs pairing with it
        (``per_index``), out of the RPC as for a run's.  One a runner held is settled when its end is folded."""
        payload = m.received(m.ExecutionCancelRequested, payload, "an execution_cancel_requested event")
        if payload is None:
            return
        try:
            detail = get_detail(self.db.session, payload.result_id, payload.detail_id)
        except NotFound:  # its run was deleted meanwhile: the sweep settles what waited for it
            return
        if detail.status == st.CANCELLED:
            self._dependents(payload.result_id, detail.index)

    def _dependents(self, result_id, index=None):
        """Settle the runs waiting for ``result_id`` (``index``: one of its executions ended)."""
        try:
            for dependent in deps.waiting_on(self.db.session, result_id):
                self._settle(dependent, index)
        except Exception as exc:  # noqa: BLE001 -- the sweep settles them; what ended stays ended
            self.db.session.rollback()
            log.warning("settling the runs waiting for result %s failed (the sweep will): %s",
                        result_id, first_line(exc))

    def _settle(self, result_id, index=None):
        """Settle one waiting run and say what came of it; a failure is logged, and left to the sweep
        (what called it -- a RUN already committed, an end already folded -- stands)."""
        try:
            settled = deps.settle(self.db.session, result_id, index)
        except Exception as exc:  # noqa: BLE001
            self.db.session.rollback()
            log.warning("settling result %s failed (the sweep will): %s", result_id, first_line(exc))
            return None
        if settled.stopped:
            self.metrics.executions_cancelled(settled.stopped)
        if settled.run_released:
            self.dispatch(events.RESULT_RELEASED, wire(m.ResultReleased(
                result_id=result_id, **owner(get_result(self.db.session, result_id)))))
        if settled.released:
            self._wake(result_id, settled.released, sized=settled.sized)
        if settled.cancelled:  # runners stop what they hold of it (a per_index run's released executions)
            result = get_result(self.db.session, result_id)
            # its reason: the condition that can no longer hold
            self.dispatch(events.RESULT_CANCELLED, wire(m.ResultCancelled(result_id=result_id, reason=result.reason,
                                                                          **owner(result))))
        if settled.ended:
            self._notify_finished(get_result(self.db.session, result_id))
            self._dependents(result_id)  # a run that waits for this one
        elif settled.stopped:
            self._dependents(result_id)  # per_index: a pair further down the chain
        return settled
