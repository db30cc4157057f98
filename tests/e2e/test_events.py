"""Other services can subscribe to Stevedore's events on the same broker."""
import pytest
from nameko.events import event_handler
from nameko.testing.services import entrypoint_waiter

pytestmark = pytest.mark.e2e


class Subscriber:
    name = "e2e_subscriber"
    seen = []

    @event_handler("scheduler", "result_finished")
    def on_result_finished(self, payload):
        self.seen.append(payload)

    @event_handler("registry", "task_imported")
    def on_task_imported(self, payload):
        self.seen.append(payload)


def test_result_finished_and_task_imported_reach_a_subscriber(container_factory, system, api,
                                                             session_amqp_uri, test_images):
    container = container_factory(Subscriber, {"AMQP_URI": session_amqp_uri})
    container.start()

    with entrypoint_waiter(container, "on_task_imported", timeout=60,
                           callback=lambda wc, result, exc_info: True):
        task = api.register(test_images["ok"], name="event-watched")
    imported = [p for p in Subscriber.seen if p.get("task_id") == task["task_id"]]
    assert imported and imported[0]["digest"] == task["digest"]
    assert (imported[0]["team"], imported[0]["submitted_by"]) == ("default", "admin")

    result_id = None
    with entrypoint_waiter(container, "on_result_finished", timeout=60,
                           callback=lambda wc, r, e: wc.args[0]["result_id"] == result_id):
        result_id = api.run(task["task_id"], times=2)
    payload = [p for p in Subscriber.seen if p.get("result_id") == result_id][-1]
    assert payload["status"] == "COMPLETE"
    assert payload["task_id"] == task["task_id"]
    assert payload["counts"]["COMPLETE"] == 2
    assert payload["end"] >= payload["start"] >= payload["submitted_at"]
    assert (payload["team"], payload["submitted_by"]) == ("default", "admin")
