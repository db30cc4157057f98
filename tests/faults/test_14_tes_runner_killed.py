"""A runner SIGKILLed in the middle of a GA4GH TES task (docs/tes.md, "States"; guarantees.md).

A TES task is not retried: its runner lost mid-task ends it SYSTEM_ERROR, saying so, and
what it had on the engine (the executors' containers, the task's own volumes) is removed by
the runner's next reconcile, or, should it never come back, by another runner's on that engine.
"""
import time
import uuid

import pytest

from tests.faults.checks import wait_finished
from tests.support import wait_until

pytestmark = pytest.mark.faults

TASK = {
    "name": "killed-mid-task",
    "inputs": [{"path": "/data/in.txt", "content": "staged\n"}],
    "volumes": ["/work"],
    "executors": [
        {"image": "alpine", "command": ["sh", "-c", "cp /data/in.txt /work/one.txt; echo first"]},
        {"image": "alpine", "command": ["sh", "-c", "cat /work/one.txt; echo second; sleep 60"]},
    ],
}


@pytest.fixture
def tes_leftovers(docker_client):
    """tes_leftovers(result_id) -> the TES containers and volumes of a result on the engine; all removed after."""
    seen = set()

    def leftovers(result_id):
        seen.add(result_id)
        labels = {"label": ["stevedore.tes=true", f"stevedore.result_id={result_id}"]}
        return (docker_client.containers.list(all=True, sparse=True, filters=labels)
                + docker_client.volumes.list(filters=labels))

    yield leftovers
    for result_id in list(seen):
        for thing in leftovers(result_id):
            thing.remove(force=True)


def tes_system(build_system, standin_registry, runners, env=None):
    system = build_system(runners=runners, start=False,
                          env={"IMAGE_MAP": f"docker.io={standin_registry.address}", **(env or {})})
    for label, (_, extra) in system.plan.items():  # ids of its own: the engine is shared with other systems,
        if "RUNNER_ID" in extra:                    # whose runners (of older code) swept TES leftovers by id alone
            extra["RUNNER_ID"] = f"{extra['RUNNER_ID']}-{uuid.uuid4().hex[:6]}"
    system.start("gateway", "registry", "scheduler", "runner-1").wait_healthy()
    return system


def start_task(system, docker_client):
    """Create the task and wait until its second executor runs; returns (task id, that container)."""
    response = system.api.post("/ga4gh/tes/v1/tasks", TASK)
    assert response.status_code == 200, response.text
    task_id = response.json()["id"]
    second = {"label": [f"stevedore.result_id={task_id}", "stevedore.tes.executor=1"],
              "status": "running"}
    [container] = wait_until(lambda: docker_client.containers.list(filters=second), timeout=90,
                             what="the second executor to run")
    wait_until(lambda: b"second" in container.logs(), timeout=20, what="the second executor's output")
    return task_id, container


def tes_task(system, task_id):
    response = system.api.get(f"/ga4gh/tes/v1/tasks/{task_id}", params={"view": "FULL"})
    assert response.status_code == 200, response.text
    return response.json()


def test_runner_killed_for_good_ends_the_task_system_error_and_another_runner_removes_its_leftovers(
        build_system, standin_registry, docker_client, tes_leftovers):
    system = tes_system(build_system, standin_registry, runners=2)
    task_id, _ = start_task(system, docker_client)
    lost = system.plan["runner-1"][1]["RUNNER_ID"]
    assert len(tes_leftovers(task_id)) == 4  # the two executors' containers, the volumes of /data and /work
    system.start("runner-2")  # on the same engine; it outlives the first
    time.sleep(1)

    system.kill("runner-1")
    assert wait_finished(system.api, task_id, timeout=45)["status"] == "ERROR"
    task = tes_task(system, task_id)
    assert task["state"] == "SYSTEM_ERROR", task
    [log] = task["logs"]
    assert any(f"runner {lost} was lost" in line for line in log["system_logs"]), log
    # nothing is made up of what only the lost runner saw: no executor's exit, no output collected
    assert log["logs"] == [] and log["outputs"] == [] and log["metadata"]["runner"] == lost
    [detail] = system.api.details(task_id)
    assert detail["attempt"] == 1 and len(detail["attempts"]) == 1  # a TES task is not retried

    # the lost runner never comes back: the survivor's reconcile removes its containers and volumes
    wait_until(lambda: not tes_leftovers(task_id), timeout=30, what="the lost runner's TES leftovers removed")
    assert "removing TES leftovers" in system.log("runner-2")


def test_runner_restarted_under_its_id_ends_the_task_system_error_saying_so_and_removes_its_leftovers(
        build_system, standin_registry, docker_client, tes_leftovers):
    system = tes_system(build_system, standin_registry, runners=1, env={"LEASE_SECONDS": "30"})
    task_id, _ = start_task(system, docker_client)
    me = system.plan["runner-1"][1]["RUNNER_ID"]

    system.kill("runner-1")
    system.start("runner-1")
    # well within the lease: the restarted runner itself says how the task ended
    assert wait_finished(system.api, task_id, timeout=25)["status"] == "ERROR"
    task = tes_task(system, task_id)
    assert task["state"] == "SYSTEM_ERROR", task
    [log] = task["logs"]
    assert any(f"runner {me} restarted" in line and "TES task" in line for line in log["system_logs"]), log
    assert not any("found no container" in line for line in log["system_logs"]), log
    # what the engine still knew is recorded: the first executor's exit and output, the second's output
    # so far, and no exit of its own (-1: it was stopped, it did not end)
    first, second = log["logs"]
    assert (first["exit_code"], first["stdout"]) == (0, "first\n"), log
    assert (second["exit_code"], second["stdout"], second["end_time"]) == (-1, "staged\nsecond\n", None), log
    wait_until(lambda: not tes_leftovers(task_id), timeout=20, what="the TES leftovers removed")
