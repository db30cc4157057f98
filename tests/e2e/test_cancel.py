"""Cancelling runs and single executions, on the real runners."""
import time

import pytest

from tests.support import containers_of, wait_until

pytestmark = pytest.mark.e2e


def running_count(api, result_id, n):
    def check():
        result = api.get(f"/result/{result_id}/").json()
        return result if result["counts"]["RUNNING"] >= n else None

    return wait_until(check, timeout=30, what=f"{n} executions RUNNING")


def test_cancel_kills_running_and_cancels_queued_executions(api, ready_tasks, docker_client):
    result_id = api.run(ready_tasks["sleep"]["task_id"], times=5, env={"SLEEP": "60"})
    running_count(api, result_id, 2)  # the e2e system has two runners

    response = api.post(f"/result/{result_id}/", {"operation": "CANCEL"})
    assert response.status_code == 202, response.text
    assert response.json()["cancel_requested"] is True
    assert response.json()["counts"]["CANCELLED"] == 3  # the queued ones, at once

    result = api.wait_result(result_id, timeout=30)
    assert result["status"] == "KILLED"
    assert result["counts"] == {"QUEUED": 0, "RUNNING": 0, "COMPLETE": 0, "ERROR": 0,
                                "CANCELLED": 3, "KILLED": 2}
    details = api.details(result_id)
    killed = [d for d in details if d["status"] == "KILLED"]
    assert len(killed) == 2
    for detail in killed:
        assert detail["reason"] == "cancelled"
        assert detail["end"] - detail["start"] < 30  # stopped, not run to the end
    for detail in details:
        if detail["status"] == "CANCELLED":
            assert detail["start"] is None and detail["reason"] == "cancelled before it started"
    wait_until(lambda: not containers_of(docker_client, result_id), timeout=15,
               what="the killed containers to be removed")

    again = api.post(f"/result/{result_id}/", {"operation": "CANCEL"})
    assert again.status_code == 409 and again.json()["error"] == "CONFLICT"


def test_cancel_of_a_queued_run_never_starts_it(api, ready_tasks):
    blocker = api.run(ready_tasks["sleep"]["task_id"], times=2, env={"SLEEP": "60"})
    try:
        running_count(api, blocker, 2)
        waiting = api.run(ready_tasks["ok"]["task_id"], times=3)
        first = api.post(f"/result/{waiting}/", {"operation": "CANCEL"})
        assert first.status_code == 202
        result = api.get(f"/result/{waiting}/").json()
        assert result["status"] == "CANCELLED"
        assert result["start"] is None
        # the runners free up; nothing of the cancelled run may start afterwards
        api.post(f"/result/{blocker}/", {"operation": "CANCEL"})
        api.wait_result(blocker, timeout=30)
        time.sleep(3)
        assert all(d["status"] == "CANCELLED" and d["start"] is None and d["attempt"] == 0
                   for d in api.details(waiting))
    finally:
        api.post(f"/result/{blocker}/", {"operation": "CANCEL"})


def test_cancel_of_one_execution(api, ready_tasks):
    result_id = api.run(ready_tasks["sleep"]["task_id"], times=2, env={"SLEEP": "4"})
    running_count(api, result_id, 1)
    running = [d for d in api.details(result_id) if d["status"] == "RUNNING"][0]
    path = f"/result/{result_id}/detail/{running['detail_id']}/"
    response = api.post(path, {"operation": "CANCEL"})
    assert response.status_code == 202, response.text
    killed = wait_until(lambda: (d := api.get(path).json())["status"] == "KILLED" and d,
                        timeout=20, what="the execution to be KILLED")
    assert killed["reason"] == "cancelled"
    result = api.wait_result(result_id)
    assert result["counts"]["KILLED"] == 1 and result["counts"]["COMPLETE"] == 1
    assert api.post(path, {"operation": "CANCEL"}).status_code == 409


def test_cancel_with_bad_operation_is_400(api, ready_tasks):
    result_id = api.run(ready_tasks["ok"]["task_id"], times=1)
    response = api.post(f"/result/{result_id}/", {"operation": "PAUSE"})
    assert response.status_code == 400 and response.json()["message"].startswith("operation:")
    assert api.post("/result/nope/", {"operation": "CANCEL"}).status_code == 404
