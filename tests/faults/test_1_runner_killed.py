"""A runner SIGKILLed while its containers run."""
import time

import pytest

from tests.faults.checks import (assert_truthful, container_starts, containers_of, wait_finished,
                                 wait_running, why_not)
from tests.support import wait_until

pytestmark = pytest.mark.faults

SLEEP_ON_FIRST_ATTEMPT = ('if [ "$STEVEDORE_ATTEMPT" = 1 ]; then sleep 60; fi; '
                          'echo "attempt $STEVEDORE_ATTEMPT"')


def runner_id(system, label):
    return system.plan[label][1]["RUNNER_ID"]


def test_lost_runner_ends_its_execution_in_error_or_retries_it_and_its_orphans_are_removed(
        build_system, ok_task, docker_client):
    system = build_system(runners=2, start=False, env={"RUNNER_SLOTS": "2"})
    system.start("gateway", "registry", "scheduler", "runner-1").wait_healthy()
    api, task = system.api, ok_task(system)
    since = time.time()
    once = api.run(task["task_id"], times=1, command=["sleep", "60"])
    retried = api.run(task["task_id"], times=1, retries=1, command=["sh", "-c", SLEEP_ON_FIRST_ATTEMPT])
    wait_running(api, once), wait_running(api, retried)
    # a second runner on the same engine survives the first
    system.start("runner-2")
    time.sleep(1)

    system.kill("runner-1")
    lost = runner_id(system, "runner-1")
    orphans = containers_of(docker_client, once) + containers_of(docker_client, retried)
    assert len(orphans) == 2 and all(c.status == "running" for c in orphans)
    assert {c.attrs["Labels"]["stevedore.runner"] for c in orphans} == {lost}  # sparse: list fields

    # no retries: the execution ends in ERROR, saying its runner was lost
    assert wait_finished(api, once, timeout=45)["status"] == "ERROR"
    [detail] = assert_truthful(api, docker_client, once, times=1, since=since)
    assert detail["status"] == "ERROR" and detail["runner"] == lost
    assert f"runner {lost} was lost" in detail["reason"]
    assert detail["exit_code"] is None and len(detail["attempts"]) == 1

    # with retries: attempt 2 runs on the surviving runner
    assert wait_finished(api, retried, timeout=45)["status"] == "COMPLETE"
    [detail] = assert_truthful(api, docker_client, retried, times=1, retries=1, since=since)
    assert detail["attempt"] == 2 and detail["runner"] == runner_id(system, "runner-2")
    first, second = detail["attempts"]
    assert first["status"] == "ERROR" and f"runner {lost} was lost" in first["reason"]
    assert first["runner"] == lost
    assert second["status"] == "COMPLETE" and second["exit_code"] == 0
    starts = container_starts(docker_client, retried, since)
    assert sorted((attempt, runner) for _, attempt, runner in starts) == [
        (1, lost), (2, runner_id(system, "runner-2"))]
    assert "removing orphaned container" in system.log("runner-2")


def test_runner_restarted_under_the_same_id_reattaches_and_reports_the_real_exit_code(
        build_system, ok_task, docker_client):
    system = build_system(runners=1, env={"LEASE_SECONDS": "20"})
    api, task = system.api, ok_task(system)
    since = time.time()
    result_id = api.run(task["task_id"], times=1, command=["sh", "-c", "echo started; sleep 6; echo finished; exit 7"])
    wait_running(api, result_id)

    system.kill("runner-1")
    [container] = containers_of(docker_client, result_id)
    assert container.status == "running"
    system.start("runner-1")

    assert wait_finished(api, result_id, timeout=45)["status"] == "ERROR"
    [detail] = assert_truthful(api, docker_client, result_id, times=1, since=since)
    assert detail["exit_code"] == 7 and detail["reason"] == "exited with code 7"
    assert detail["attempt"] == 1 and detail["runner"] == runner_id(system, "runner-1")
    logs = api.get(f"/result/{result_id}/detail/{detail['detail_id']}/logs/").json()
    # what it wrote while no runner read it comes from the engine's log, the rest from the new attach
    assert logs["stdout"] == "started\nfinished\n"
    assert "re-attaching to container" in system.log("runner-1")


def test_claim_that_never_reached_its_runner_is_handed_back_not_declared_lost(
        build_system, ok_task, docker_client):
    """The scheduler gave an execution to a runner that never heard of it (a lost RPC reply)."""
    from nameko.standalone.rpc import ClusterRpcProxy

    system = build_system(runners=1, start=False, env={"LEASE_SECONDS": "20"})
    system.start("gateway", "registry", "scheduler").wait_healthy()
    api, task = system.api, ok_task(system)
    since = time.time()
    result_id = api.run(task["task_id"], times=1)
    wait_until(lambda: api.details(result_id), timeout=20, what="the detail")
    me = runner_id(system, "runner-1")
    with ClusterRpcProxy({"AMQP_URI": system.amqp_uri}) as cluster:
        work = cluster.scheduler.claim_execution(me)   # the reply this runner never got
    assert work["result_id"] == result_id and work["attempt"] == 1

    system.start("runner-1")
    assert wait_finished(api, result_id, timeout=40)["status"] == "COMPLETE"
    [detail] = assert_truthful(api, docker_client, result_id, times=1, since=since)
    assert detail["attempt"] == 1 and len(detail["attempts"]) == 1
    assert "never reached it; handed back" in system.log("runner-1")


def test_runner_killed_holding_a_prepared_execution_starts_it_once_when_restarted(build_system, ok_task,
                                                                                  docker_client):
    # its slot runs index 1 and holds index 2, claimed ahead with its container created (services/runner/ahead.py)
    system = build_system(runners=1, env={"LEASE_SECONDS": "20", "RUNNER_PREPARE_AHEAD_SECONDS": "30"})
    api, task = system.api, ok_task(system)
    since = time.time()
    response = api.post(f"/task/{task['task_id']}/", {
        "operation": "RUN", "times": 3, "command": ["sh", "-c", 'sleep "$SLEEP"; echo "slept $SLEEP"'],
        "items": [{"env": {"SLEEP": s}} for s in ("0", "6", "0")]})
    assert response.status_code == 202, response.text
    result_id = response.json()["result_id"]

    def held_ahead():
        details = {d["index"]: d for d in api.details(result_id)}
        ahead = details.get(2)
        return ahead if details[1]["status"] == "RUNNING" and ahead["status"] == "QUEUED" and ahead["runner"] \
            and any(c.attrs["Labels"]["stevedore.detail_id"] == ahead["detail_id"]
                    for c in containers_of(docker_client, result_id)) else None

    ahead = wait_until(held_ahead, timeout=30, interval=0.1, what="index 2 prepared ahead")
    system.kill("runner-1")
    [created] = [c for c in containers_of(docker_client, result_id)
                 if c.attrs["Labels"]["stevedore.detail_id"] == ahead["detail_id"]]
    assert docker_client.containers.get(created.id).status == "created"
    system.start("runner-1")

    assert wait_finished(api, result_id, timeout=60)["status"] == "COMPLETE", why_not(api, result_id)
    details = assert_truthful(api, docker_client, result_id, times=3, since=since)
    assert all(d["attempt"] == 1 and d["runner"] == runner_id(system, "runner-1") for d in details)
    assert "re-attaching to container" in system.log("runner-1")
