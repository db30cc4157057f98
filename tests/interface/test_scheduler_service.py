"""The scheduler alone on the real broker and database; the registry is replaced.

Runner reports are sent as the real events a runner dispatches.
"""
import uuid

import pytest
from nameko.standalone.events import event_dispatcher
from nameko.testing.services import entrypoint_hook, entrypoint_waiter, replace_dependencies

from services.scheduler.service import SchedulerService
from shared.errors import Conflict, NotFound


def ready_task():
    task_id = uuid.uuid4().hex
    return {"task_id": task_id, "name": f"t-{task_id[:6]}", "status": "READY",
            "digest": "reg:5000/x@sha256:" + "a" * 64}


@pytest.fixture
def scheduler(container_factory, service_config):
    container = container_factory(SchedulerService, service_config)
    registry = replace_dependencies(container, "registry")
    container.start()
    return container, registry


def call(container, method, *args):
    with entrypoint_hook(container, method) as hook:
        return hook(*args)


def test_run_fans_out_details_and_runner_reports_finish_it(scheduler, service_config):
    container, registry = scheduler
    registry.get_task.return_value = ready_task()
    with entrypoint_waiter(container, "on_result_submitted"):
        result = call(container, "run_task", "any", {"operation": "RUN", "times": 3})
    assert result["status"] == "QUEUED"
    details = call(container, "list_details", result["result_id"])
    assert [d["index"] for d in details] == [0, 1, 2]
    assert all(d["status"] == "QUEUED" for d in details)

    dispatch = event_dispatcher(service_config)
    for n in range(3):
        work = call(container, "claim_execution", "runner-a")
        assert work["result_id"] == result["result_id"] and work["attempt"] == 1
        with entrypoint_waiter(container, "on_execution_started"):
            dispatch("runner", "execution_started", {
                "detail_id": work["detail_id"], "attempt": 1, "runner": "runner-a",
                "start": 100.0 + n, "container_id": "c"})
        with entrypoint_waiter(container, "on_execution_finished"):
            dispatch("runner", "execution_finished", {
                "detail_id": work["detail_id"], "attempt": 1, "runner": "runner-a",
                "status": "COMPLETE", "exit_code": 0, "reason": None,
                "start": 100.0 + n, "end": 101.5 + n})
    assert call(container, "claim_execution", "runner-a") is None
    final = call(container, "get_result", result["result_id"])
    assert final["status"] == "COMPLETE"
    assert (final["start"], final["end"], final["duration"]) == (100.0, 103.5, 3.5)


def test_a_report_delivered_twice_is_counted_once(scheduler, service_config):
    container, registry = scheduler
    registry.get_task.return_value = ready_task()
    with entrypoint_waiter(container, "on_result_submitted"):
        result = call(container, "run_task", "any", {"operation": "RUN", "times": 2})
    work = call(container, "claim_execution", "runner-a")
    report = {"detail_id": work["detail_id"], "attempt": 1, "runner": "runner-a",
              "status": "ERROR", "exit_code": 2, "reason": "exited with code 2", "start": 5.0, "end": 6.0}
    dispatch = event_dispatcher(service_config)
    for _ in range(2):
        with entrypoint_waiter(container, "on_execution_finished"):
            dispatch("runner", "execution_finished", report)
    counts = call(container, "get_result", result["result_id"])["counts"]
    assert counts["ERROR"] == 1 and counts["QUEUED"] == 1


def test_parallelism_limits_what_runners_can_hold(scheduler):
    container, registry = scheduler
    registry.get_task.return_value = ready_task()
    with entrypoint_waiter(container, "on_result_submitted"):
        call(container, "run_task", "any", {"operation": "RUN", "times": 5, "parallelism": 2})
    assert call(container, "claim_execution", "a") is not None
    assert call(container, "claim_execution", "b") is not None
    assert call(container, "claim_execution", "c") is None


def test_higher_priority_runs_are_claimed_first(scheduler):
    container, registry = scheduler
    registry.get_task.return_value = ready_task()
    with entrypoint_waiter(container, "on_result_submitted"):
        low = call(container, "run_task", "any", {"operation": "RUN", "times": 1, "priority": 1})
    with entrypoint_waiter(container, "on_result_submitted"):
        high = call(container, "run_task", "any", {"operation": "RUN", "times": 1, "priority": 9})
    assert call(container, "claim_execution", "a")["result_id"] == high["result_id"]
    assert call(container, "claim_execution", "a")["result_id"] == low["result_id"]


def test_run_of_a_task_that_is_not_ready_is_a_conflict(scheduler):
    container, registry = scheduler
    registry.get_task.return_value = {**ready_task(), "status": "IMPORTING"}
    with pytest.raises(Conflict):
        call(container, "run_task", "any", {"operation": "RUN", "times": 1})


def test_cancel_before_the_fan_out_counts_every_execution_cancelled(scheduler):
    container, registry = scheduler
    registry.get_task.return_value = ready_task()
    # cancel lands before the fan-out handler has made any detail
    with entrypoint_waiter(container, "on_result_submitted"):
        result = call(container, "run_task", "any", {"operation": "RUN", "times": 7000})
        cancelled = call(container, "cancel_result", result["result_id"])
    assert cancelled["status"] == "CANCELLED"  # at once, not only after the fan-out caught up
    assert cancelled["counts"]["CANCELLED"] == 7000
    final = call(container, "get_result", result["result_id"])
    assert final["status"] == "CANCELLED"
    assert final["counts"] == {"QUEUED": 0, "RUNNING": 0, "COMPLETE": 0, "ERROR": 0,
                               "CANCELLED": 7000, "KILLED": 0}
    details = call(container, "list_details", result["result_id"], None, 1000)
    assert len(details) == 1000 and all(d["status"] == "CANCELLED" for d in details)
    assert call(container, "claim_execution", "runner-a") is None
    with pytest.raises(Conflict):
        call(container, "cancel_result", result["result_id"])


def test_a_ready_task_is_asked_of_the_registry_once_until_the_registry_says_it_changed(
        scheduler, service_config):
    container, registry = scheduler
    task = ready_task()
    registry.get_task.return_value = task
    run = {"operation": "RUN", "times": 1}
    call(container, "run_task", task["task_id"], run)
    assert call(container, "run_task", task["task_id"], run)["image"] == task["digest"]
    assert registry.get_task.call_count == 1

    dispatch = event_dispatcher(service_config)
    registry.get_task.return_value = {**task, "status": "IMPORTING"}
    with entrypoint_waiter(container, "on_task_submitted"):
        dispatch("registry", "task_submitted", {"task_id": task["task_id"]})  # a re-import began
    with pytest.raises(Conflict):
        call(container, "run_task", task["task_id"], run)

    moved = {**task, "digest": "reg:5000/x@sha256:" + "b" * 64}
    registry.get_task.return_value = moved
    with entrypoint_waiter(container, "on_task_imported"):
        dispatch("registry", "task_imported", {"task_id": task["task_id"], "digest": moved["digest"]})
    assert call(container, "run_task", task["task_id"], run)["image"] == moved["digest"]
    assert call(container, "run_task", task["task_id"], run)["image"] == moved["digest"]
    assert registry.get_task.call_count == 3

    registry.get_task.side_effect = NotFound(f"no task {task['task_id']!r}", "task_id")
    with entrypoint_waiter(container, "on_task_deleted"):
        dispatch("registry", "task_deleted", {"task_id": task["task_id"], "name": task["name"]})
    with pytest.raises(NotFound):
        call(container, "run_task", task["task_id"], run)
