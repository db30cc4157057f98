"""Idempotent submits, re-import, delete, and reruns of failed executions."""
import uuid

import pytest


pytestmark = pytest.mark.e2e


def test_a_repeated_idempotency_key_returns_the_first_task(api, test_images):
    key = {"Idempotency-Key": uuid.uuid4().hex}
    body = {"repository": test_images["ok"], "name": f"idem-{uuid.uuid4().hex[:6]}"}
    first = api.post("/task/", body, headers=key)
    second = api.post("/task/", body, headers=key)
    assert first.status_code == second.status_code == 201
    assert first.json()["task_id"] == second.json()["task_id"]
    named = [t for t in api.get("/task/", params={"limit": 1000}).json() if t["name"] == body["name"]]
    assert len(named) == 1
    other = api.post("/task/", {**body, "name": "something-else"}, headers=key)
    assert other.status_code == 409 and other.json()["message"].startswith("Idempotency-Key:")


def test_a_repeated_idempotency_key_returns_the_first_run(api, ready_tasks):
    task_id = ready_tasks["ok"]["task_id"]
    key = {"Idempotency-Key": uuid.uuid4().hex}
    body = {"operation": "RUN", "times": 2}
    first = api.post(f"/task/{task_id}/", body, headers=key).json()["result_id"]
    second = api.post(f"/task/{task_id}/", body, headers=key).json()["result_id"]
    assert first == second
    api.wait_result(first)
    assert len(api.details(first)) == 2
    different = api.post(f"/task/{task_id}/", {**body, "times": 3}, headers=key)
    assert different.status_code == 409


def test_import_pulls_the_moved_tag_and_running_results_keep_their_digest(api, docker_client, image_registry,
                                                                        test_images):
    moving = f"{image_registry.address}/stevedore-test/moving:latest"
    docker_client.images.pull(test_images["ok"]).tag(moving)
    docker_client.images.push(moving)
    task = api.register(moving)
    old_result = api.run(task["task_id"], times=1)
    api.wait_result(old_result)

    docker_client.images.pull(test_images["fail"]).tag(moving)
    docker_client.images.push(moving)
    response = api.post(f"/task/{task['task_id']}/", {"operation": "IMPORT"})
    assert response.status_code == 202
    reimported = api.wait_task(task["task_id"])
    assert reimported["status"] == "READY"
    assert reimported["digest"] != task["digest"]

    assert api.get(f"/result/{old_result}/").json()["image"] == task["digest"]
    new_result = api.run(task["task_id"], times=1)
    assert api.get(f"/result/{new_result}/").json()["image"] == reimported["digest"]
    assert api.wait_result(new_result)["status"] == "ERROR"  # the tag now points at the failing image


def test_delete_removes_an_idle_task_and_refuses_one_with_active_runs(api, test_images):
    task = api.register(test_images["sleep"])
    result_id = api.run(task["task_id"], times=1, env={"SLEEP": "30"})
    refused = api.delete(f"/task/{task['task_id']}/")
    assert refused.status_code == 409 and "active" in refused.json()["message"]
    api.post(f"/result/{result_id}/", {"operation": "CANCEL"})
    api.wait_result(result_id, timeout=30)
    assert api.delete(f"/task/{task['task_id']}/").status_code == 204
    assert api.get(f"/task/{task['task_id']}/").status_code == 404
    assert api.get(f"/result/{result_id}/").json()["task_id"] == task["task_id"]  # history stays
    # the scheduler had the task in mind from the RUN above: the delete made it forget
    again = api.post(f"/task/{task['task_id']}/", {"operation": "RUN", "times": 1})
    assert again.status_code == 404, again.text


def test_rerun_failed_runs_only_the_failed_indices_and_links_both_ways(api, ready_tasks):
    command = ["sh", "-c", 'test $((STEVEDORE_EXECUTION_INDEX % 2)) -eq 0 || exit 5']
    original = api.run(ready_tasks["ok"]["task_id"], times=5, command=command)
    assert api.wait_result(original)["status"] == "ERROR"

    response = api.post(f"/result/{original}/", {"operation": "RERUN_FAILED"})
    assert response.status_code == 202, response.text
    rerun = response.json()
    assert rerun["rerun_of"] == original and rerun["times"] == 2
    assert rerun["params"]["command"] == command
    api.wait_result(rerun["result_id"])
    assert sorted(d["index"] for d in api.details(rerun["result_id"])) == [1, 3]
    assert api.get(f"/result/{original}/").json()["reruns"] == [rerun["result_id"]]

    complete = api.run(ready_tasks["ok"]["task_id"], times=1)
    api.wait_result(complete)
    nothing = api.post(f"/result/{complete}/", {"operation": "RERUN_FAILED"})
    assert nothing.status_code == 409


def test_concurrent_reads_of_one_result_share_calls_and_stay_fresh(api, ready_tasks):
    """Many clients polling one result (the gateway coalesces them): each gets the truth as of its request."""
    from concurrent.futures import ThreadPoolExecutor

    result_id = api.run(ready_tasks["sleep"]["task_id"], times=1, env={"SLEEP": "2"})
    missing = "0" * 32

    def read(path):
        response = api.__class__(api.base_url, token=api.http.headers["Authorization"][7:]).get(path)
        return response.status_code, response.json()

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(read, [f"/result/{result_id}/"] * 24 + [f"/result/{missing}/"] * 8))
    for code, body in answers[:24]:
        assert code == 200 and body["result_id"] == result_id and body["times"] == 1
    for code, body in answers[24:]:
        assert code == 404 and body["error"] == "NOT_FOUND"
    ended = api.wait_result(result_id)
    assert ended["status"] == "COMPLETE"
    # a read after the end is never answered from before it
    assert api.get(f"/result/{result_id}/").json()["status"] == "COMPLETE"
