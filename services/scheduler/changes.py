"""The scheduler's side of changing a running run (PATCH /result/{id}/; rules in
services/scheduler/executions/change.py)."""
from services.scheduler import executions as ex
from shared import events, validation
from shared.messages import ResultChanged, wire
from shared.principals import Caller
from shared.rpc import rpc
from stevedore_jobs.contract.change import ResultChange


class ChangeMixin:
    """Mixed into ``SchedulerService`` (which provides ``db``, ``dispatch`` and ``_wake``)."""

    @rpc
    def change_result(self, result_id, body, caller=None):
        """A run's parallelism and/or priority, for its executions not yet started; idle runners are
        woken when more of them may run at once now."""
        changes = validation.parse(ResultChange, body).changes()
        ex.get_result(self.db.session, result_id, caller=Caller.from_dict(caller))  # 404 for another team's
        result, before, woken = ex.change_result(self.db.session, result_id, changes, caller)
        self.dispatch(events.RESULT_CHANGED, wire(ResultChanged(
            result_id=result.id, changed=sorted(changes), previous=before,
            parallelism=result.parallelism, priority=result.priority, **ex.owner(result))))
        if woken:
            params = result.params or {}
            self._wake(result.id, woken, sized=bool(params.get("memory") or params.get("cpus")
                                                    or params.get("constraints") or params.get("gpus")),
                       whose=ex.owner(result))
        return ex.result_as_dict(result)
