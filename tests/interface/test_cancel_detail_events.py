"""An execution's CANCEL tells runners to stop it (``execution_cancel_requested``) only while it had not
ended: one already COMPLETE is a 409 and nothing is sent."""
import pytest
from nameko.standalone.events import event_dispatcher
from nameko.testing.services import entrypoint_waiter, replace_dependencies

from services.scheduler.service import SchedulerService
from shared import events
from shared.errors import Conflict
from tests.interface.test_scheduler_service import run_ready
from tests.support import call


@pytest.fixture
def spied(container_factory, service_config):
    """The scheduler, its event dispatcher a spy (what it sends is recorded, not sent)."""
    container = container_factory(SchedulerService, service_config)
    dispatched = replace_dependencies(container, "dispatch")
    container.start()
    return container, dispatched


def cancel_requests(dispatched):
    return [args[1]["detail_id"] for args, _ in dispatched.call_args_list
            if args[0] == events.EXECUTION_CANCEL_REQUESTED]


def test_a_cancel_of_an_execution_that_ended_is_409_and_sends_no_stop(spied, service_config):
    container, dispatched = spied
    run_ready(container, {"operation": "RUN", "times": 2})
    done, running = (call(container, "claim_execution", "runner-a") for _ in range(2))
    dispatch = event_dispatcher(service_config)
    with entrypoint_waiter(container, "on_execution_finished"):
        dispatch("runner", "execution_finished", {
            "detail_id": done["detail_id"], "attempt": 1, "runner": "runner-a", "status": "COMPLETE",
            "exit_code": 0, "reason": None, "start": 1.0, "end": 2.0})
    with pytest.raises(Conflict, match="already ended COMPLETE"):
        call(container, "cancel_detail", done["result_id"], done["detail_id"])
    assert cancel_requests(dispatched) == []
    call(container, "cancel_detail", running["result_id"], running["detail_id"])  # still running: its runner stops it
    assert cancel_requests(dispatched) == [running["detail_id"]]
