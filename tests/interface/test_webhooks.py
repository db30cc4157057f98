"""Webhook delivery by the scheduler alone, on the real broker and database, to a real HTTP receiver."""
import time
import uuid

import pytest
from nameko.standalone.events import event_dispatcher
from nameko.testing.services import entrypoint_hook, entrypoint_waiter, replace_dependencies

from services.scheduler.service import SchedulerService
from tests.support import WebhookReceiver, free_port, wait_until


@pytest.fixture
def scheduler(container_factory, service_config):
    config = {**service_config, "WEBHOOK_SECRET": "interface-secret", "WEBHOOK_ATTEMPTS": 3,
              "WEBHOOK_BACKOFF": 0.2, "WEBHOOK_TIMEOUT": 2}
    container = container_factory(SchedulerService, config)
    registry = replace_dependencies(container, "registry")
    task_id = uuid.uuid4().hex
    registry.get_task.return_value = {"task_id": task_id, "name": f"t-{task_id[:6]}", "status": "READY",
                                      "digest": "reg:5000/x@sha256:" + "a" * 64}
    container.start()
    return container


def call(container, method, *args):
    with entrypoint_hook(container, method) as hook:
        return hook(*args)


def finished_run(container, callback_url):
    """A run that ends at once (cancelled while queued), announcing result_finished."""
    with entrypoint_waiter(container, "on_result_submitted"):
        result = call(container, "run_task", "any",
                      {"operation": "RUN", "times": 1, "callback_url": callback_url})
    with entrypoint_waiter(container, "on_result_finished", timeout=30):
        call(container, "cancel_result", result["result_id"])
    return result["result_id"]


def webhook_settled(container, result_id):
    def settled():
        webhook = call(container, "get_result", result_id)["webhook"]
        return webhook if webhook["status"] in ("DELIVERED", "FAILED") else None

    return wait_until(settled, timeout=30, what="the webhook to settle")


def test_a_webhook_that_keeps_failing_stops_after_the_configured_attempts(scheduler):
    with WebhookReceiver(answers=[503] * 10) as receiver:
        result_id = finished_run(scheduler, receiver.url)
        webhook = webhook_settled(scheduler, result_id)
        time.sleep(1)
        assert len(receiver.received) == 3
    assert webhook["status"] == "FAILED" and webhook["delivered"] is False
    assert [d["status_code"] for d in webhook["deliveries"]] == [503, 503, 503]
    gaps = [b["at"] - a["at"] for a, b in zip(webhook["deliveries"], webhook["deliveries"][1:])]
    assert gaps[0] >= 0.2 and gaps[1] >= 0.4  # 0.2s, then doubled


def test_a_connection_error_is_recorded_and_retried(scheduler):
    result_id = finished_run(scheduler, f"http://127.0.0.1:{free_port()}/nobody-listens")
    webhook = webhook_settled(scheduler, result_id)
    assert webhook["status"] == "FAILED"
    assert len(webhook["deliveries"]) == 3
    assert all("ConnectionError" in d["error"] and "status_code" not in d for d in webhook["deliveries"])


def test_a_delivered_webhook_is_not_sent_again_when_the_finish_is_announced_twice(
        scheduler, service_config):
    with WebhookReceiver() as receiver:
        result_id = finished_run(scheduler, receiver.url)
        assert webhook_settled(scheduler, result_id)["delivered"] is True
        result = call(scheduler, "get_result", result_id)
        dispatch = event_dispatcher(service_config)
        with entrypoint_waiter(scheduler, "on_result_finished"):
            dispatch("scheduler", "result_finished", result)
        time.sleep(1.5)  # and the due-webhook timer finds nothing either
        assert len(receiver.received) == 1
    assert [d["status_code"] for d in call(scheduler, "get_result", result_id)["webhook"]["deliveries"]] == [200]
