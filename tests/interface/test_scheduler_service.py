"""The scheduler alone on the real broker and database; no registry.

A RUN is handed its task's facts as the gateway hands on the registry's
(``run_ready``), or the scheduler learns them from the registry's events,
sent here as the registry sends them.  Runner reports are sent as the real
events a runner dispatches.
"""
import uuid

import pytest
from nameko.standalone.events import event_dispatcher
from nameko.testing.services import entrypoint_hook, entrypoint_waiter

from services.scheduler.service import SchedulerService
from shared.errors import Conflict, NotFound, TaskUnconfirmed
from tests.support import ADMIN, call


def ready_task(version=3):
    """A READY task as the registry's ``task_facts`` tells it."""
    task_id = uuid.uuid4().hex
    return {"task_id": task_id, "name": f"t-{task_id[:6]}", "status": "READY",
            "digest": "reg:5000/x@sha256:" + "a" * 64, "version": version, "team": "default"}


def run_ready(container, body, task=None):
    """A RUN of a READY task, its facts handed on as the gateway does when the scheduler has none."""
    task = task or ready_task()
    with entrypoint_hook(container, "run_task") as hook:
        return hook(task["task_id"], body, None, task, caller=ADMIN)


@pytest.fixture
def scheduler(container_factory, service_config):
    container = container_factory(SchedulerService, service_config)
    container.start()
    return container


def test_run_fans_out_details_and_runner_reports_finish_it(scheduler, service_config):
    container = scheduler
    with entrypoint_waiter(container, "on_result_submitted"):
        result = run_ready(container, {"operation": "RUN", "times": 3})
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
    container = scheduler
    with entrypoint_waiter(container, "on_result_submitted"):
        result = run_ready(container, {"operation": "RUN", "times": 2})
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
    container = scheduler
    with entrypoint_waiter(container, "on_result_submitted"):
        run_ready(container, {"operation": "RUN", "times": 5, "parallelism": 2})
    assert call(container, "claim_execution", "a") is not None
    assert call(container, "claim_execution", "b") is not None
    assert call(container, "claim_execution", "c") is None


def test_a_runners_claim_for_its_free_slots_takes_several_in_one_call_within_parallelism(scheduler):
    container = scheduler
    with entrypoint_waiter(container, "on_result_submitted"):
        wide = run_ready(container, {"operation": "RUN", "times": 3})
    with entrypoint_waiter(container, "on_result_submitted"):
        narrow = run_ready(container, {"operation": "RUN", "times": 5, "parallelism": 2})
    works = call(container, "claim_executions", "runner-a", 8)
    assert sorted(work["result_id"] for work in works) == sorted([wide["result_id"]] * 3 + [narrow["result_id"]] * 2)
    assert len({work["detail_id"] for work in works}) == 5
    assert all(work["attempt"] == 1 and work["installation"] for work in works)
    assert call(container, "claim_executions", "runner-b", 8) == []
    assert call(container, "claim_execution", "runner-b") is None  # the one-execution call of older runners


def test_a_claim_ahead_that_finds_nothing_does_not_list_its_busy_runner_as_idle_for_wake_ups(scheduler):
    from nameko.testing.utils import get_extension

    from services.scheduler.idlerunners import IdleRunnersProvider

    idle = get_extension(scheduler, IdleRunnersProvider).idle
    assert call(scheduler, "claim_executions", "runner-idle", 1, info={"slots": 1, "busy": 0}) == []
    # a busy slot's claim of its next execution (services/runner/ahead.py): no slot of it to wake
    assert call(scheduler, "claim_executions", "runner-busy", 1, info={"slots": 1, "busy": 1, "ahead": True}) == []
    assert "runner-idle" in idle.seen and "runner-busy" not in idle.seen


def test_claims_and_heartbeats_count_each_runners_free_slots_for_wake_ups(scheduler):
    from nameko.testing.utils import get_extension

    from services.scheduler.idlerunners import IdleRunnersProvider

    idle = get_extension(scheduler, IdleRunnersProvider).idle
    # two slots asked and found nothing; two more wait for their poll tick
    assert call(scheduler, "claim_executions", "runner-four", 2, info={"slots": 4, "busy": 0}) == []
    assert idle.seen["runner-four"][1] == 4
    assert call(scheduler, "heartbeat", "runner-four", [], info={"slots": 4, "busy": 3}) == []
    assert idle.seen["runner-four"][1] == 1
    assert idle.pick(3) is None  # one free slot known, four wanted: every runner is woken


def test_higher_priority_runs_are_claimed_first(scheduler):
    container = scheduler
    with entrypoint_waiter(container, "on_result_submitted"):
        low = run_ready(container, {"operation": "RUN", "times": 1, "priority": 1})
    with entrypoint_waiter(container, "on_result_submitted"):
        high = run_ready(container, {"operation": "RUN", "times": 1, "priority": 9})
    assert call(container, "claim_execution", "a")["result_id"] == high["result_id"]
    assert call(container, "claim_execution", "a")["result_id"] == low["result_id"]


def test_run_of_a_task_that_is_not_ready_is_a_conflict(scheduler):
    with pytest.raises(Conflict, match="is IMPORTING; only a READY task can be run"):
        run_ready(scheduler, {"operation": "RUN", "times": 1}, {**ready_task(), "status": "IMPORTING"})


def test_cancel_before_the_fan_out_counts_every_execution_cancelled(scheduler):
    container = scheduler
    # cancel lands before the fan-out handler has made any detail
    with entrypoint_waiter(container, "on_result_submitted"):
        result = run_ready(container, {"operation": "RUN", "times": 7000})
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


def registry_says(container, service_config, event, payload):
    with entrypoint_waiter(container, f"on_{event}"):
        event_dispatcher(service_config)("registry", event, payload)


def test_a_task_is_learned_from_the_registrys_events_and_asked_for_only_when_unknown_or_not_ready(
        scheduler, service_config):
    task = ready_task(version=3)
    task_id, run = task["task_id"], {"operation": "RUN", "times": 1}
    with pytest.raises(TaskUnconfirmed):  # never heard of: the gateway asks the registry
        call(scheduler, "run_task", task_id, run)
    registry_says(scheduler, service_config, "task_imported",
                  {"task_id": task_id, "name": task["name"], "repository": "reg:5000/x",
                   "digest": task["digest"], "version": 3, "team": "default"})
    assert call(scheduler, "run_task", task_id, run)["image"] == task["digest"]

    registry_says(scheduler, service_config, "task_submitted", {"task_id": task_id, "version": 4})
    with pytest.raises(TaskUnconfirmed):  # a re-import began: the registry is asked
        call(scheduler, "run_task", task_id, run)
    with pytest.raises(Conflict, match="is IMPORTING"):
        call(scheduler, "run_task", task_id, run, None, {**task, "status": "IMPORTING", "version": 5})

    moved = {**task, "digest": "reg:5000/x@sha256:" + "b" * 64, "version": 6}
    registry_says(scheduler, service_config, "task_imported", {**moved, "repository": "reg:5000/x"})
    assert call(scheduler, "run_task", task_id, run)["image"] == moved["digest"]


def test_a_copy_that_does_not_know_its_tasks_team_is_not_confirmed_until_the_registrys_facts_say_it(
        scheduler, service_config):
    task = ready_task(version=3)
    task_id, run = task["task_id"], {"operation": "RUN", "times": 1}
    # a registry of before teams (or a copy learned before migration 0024): READY, but whose is not known
    registry_says(scheduler, service_config, "task_imported",
                  {"task_id": task_id, "name": task["name"], "repository": "reg:5000/x",
                   "digest": task["digest"], "version": 3})
    with pytest.raises(TaskUnconfirmed, match="team"):  # the gateway then asks the registry, once
        call(scheduler, "run_task", task_id, run)
    made = call(scheduler, "run_task", task_id, run, None, task)
    assert (made["team"], made["submitted_by"]) == ("default", "admin")
    # learned: the next RUN is answered from the copy, and a later word without a team does not forget it
    registry_says(scheduler, service_config, "task_submitted", {"task_id": task_id, "version": 4})
    registry_says(scheduler, service_config, "task_imported",
                  {"task_id": task_id, "name": task["name"], "repository": "reg:5000/x",
                   "digest": task["digest"], "version": 5})
    assert call(scheduler, "run_task", task_id, run)["team"] == "default"


def test_facts_of_a_team_the_caller_does_not_cover_are_no_such_task(scheduler):
    task = {**ready_task(), "team": "beta"}
    member = {"principal": "m", "role": "member", "team": "alpha"}
    with pytest.raises(NotFound, match="no task"):
        call(scheduler, "run_task", task["task_id"], {"operation": "RUN", "times": 1}, None, task, member)


def test_facts_older_than_the_copy_change_nothing_whichever_way_they_come(scheduler, service_config):
    task = ready_task(version=6)
    task_id, run = task["task_id"], {"operation": "RUN", "times": 1}
    registry_says(scheduler, service_config, "task_imported", {**task, "repository": "reg:5000/x"})
    # a redelivered task_submitted of the re-import before, and a gateway's answer read before it
    registry_says(scheduler, service_config, "task_submitted", {"task_id": task_id, "version": 4})
    old = {**task, "digest": "reg:5000/x@sha256:" + "c" * 64, "version": 2}
    assert call(scheduler, "run_task", task_id, run, None, old)["image"] == task["digest"]
    assert call(scheduler, "run_task", task_id, run)["image"] == task["digest"]


def test_a_deleted_task_stays_deleted_whatever_comes_after(scheduler, service_config):
    task = ready_task(version=3)
    task_id, run = task["task_id"], {"operation": "RUN", "times": 1}
    registry_says(scheduler, service_config, "task_deleted", {"task_id": task_id, "name": task["name"]})
    registry_says(scheduler, service_config, "task_imported",
                  {**task, "repository": "reg:5000/x", "version": 9})  # late, or redelivered
    with pytest.raises(NotFound, match="no task"):
        call(scheduler, "run_task", task_id, run)
    with pytest.raises(NotFound, match="no task"):  # a stale answer of the registry's neither
        call(scheduler, "run_task", task_id, run, None, {**task, "version": 10})


def test_close_refuses_a_task_with_active_runs_then_no_run_or_rerun_gets_in(scheduler):
    task = ready_task()
    result = run_ready(scheduler, {"operation": "RUN", "times": 1}, task)
    with pytest.raises(Conflict, match="1 active run"):
        call(scheduler, "close_task", task["task_id"])
    ended = call(scheduler, "cancel_result", result["result_id"])
    assert ended["status"] == "CANCELLED"
    call(scheduler, "close_task", task["task_id"])
    call(scheduler, "close_task", task["task_id"])  # again: already closed
    with pytest.raises(NotFound, match="no task"):
        run_ready(scheduler, {"operation": "RUN", "times": 1}, task)
    with pytest.raises(Conflict, match="was deleted"):
        call(scheduler, "rerun_failed", result["result_id"])
    assert [r["result_id"] for r in call(scheduler, "list_results", None, task["task_id"])] == \
        [result["result_id"]]  # its history stays
