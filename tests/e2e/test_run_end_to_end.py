"""The foundation, driven over HTTP like a user: register, run N times, track every execution."""
import pytest

from tests.support import wait_until

pytestmark = pytest.mark.e2e

SEED_RESULT_FIELDS = {"result_id", "task_id", "status", "submitted_at", "start", "end", "duration"}
SEED_DETAIL_FIELDS = SEED_RESULT_FIELDS | {"detail_id"}


def test_register_pulls_image_and_pins_its_digest(api, test_images):
    response = api.post("/task/", {"repository": test_images["ok"], "name": "pin-me"})
    assert response.status_code == 201
    created = response.json()
    assert created["status"] in ("SUBMITTED", "IMPORTING", "READY")
    assert response.headers["Location"] == f"/task/{created['task_id']}/"

    task = api.wait_task(created["task_id"])
    assert task["status"] == "READY", task
    assert task["error"] is None
    registry, _ = test_images["ok"].split("/", 1)
    assert task["digest"].startswith(f"{registry}/stevedore-test/busybox@sha256:")

    listed = api.get("/task/").json()
    mine = [t for t in listed if t["task_id"] == task["task_id"]]
    assert mine and mine[0]["name"] == "pin-me" and mine[0]["id"] == task["task_id"]
    assert mine[0]["repository"] == test_images["ok"]


def test_run_five_times_records_every_execution(api, ready_tasks):
    task = ready_tasks["ok"]
    response = api.post(f"/task/{task['task_id']}/", {"operation": "RUN", "times": 5})
    assert response.status_code == 202, response.text
    result_id = response.json()["result_id"]

    result = api.wait_result(result_id)
    assert SEED_RESULT_FIELDS <= set(result)
    assert result["status"] == "COMPLETE"
    assert result["task_id"] == task["task_id"]
    assert result["counts"]["COMPLETE"] == 5
    assert result["image"] == task["digest"]

    details = api.details(result_id)
    assert len(details) == 5
    assert sorted(d["index"] for d in details) == [0, 1, 2, 3, 4]
    for detail in details:
        assert SEED_DETAIL_FIELDS <= set(detail)
        assert detail["status"] == "COMPLETE"
        assert detail["exit_code"] == 0
        assert detail["result_id"] == result_id
        assert detail["submitted_at"] <= detail["start"] <= detail["end"]
        assert detail["duration"] == pytest.approx(detail["end"] - detail["start"], abs=1e-5)
        assert detail["runner"]
        one = api.get(f"/result/{result_id}/detail/{detail['detail_id']}/").json()
        assert one["status"] == "COMPLETE" and one["detail_id"] == detail["detail_id"]

    assert result["submitted_at"] <= result["start"] <= result["end"]
    assert result["start"] == pytest.approx(min(d["start"] for d in details))
    assert result["end"] == pytest.approx(max(d["end"] for d in details))
    assert result["duration"] == pytest.approx(result["end"] - result["start"], abs=1e-5)

    logs = api.get(f"/result/{result_id}/detail/{details[0]['detail_id']}/logs/").json()
    assert logs["stdout"] == "hello from stevedore\n"


def test_failing_command_ends_in_error_with_its_exit_code(api, ready_tasks):
    result_id = api.run(ready_tasks["ok"]["task_id"], times=2, command=["sh", "-c", "exit 7"])
    result = api.wait_result(result_id)
    assert result["status"] == "ERROR"
    assert result["counts"]["ERROR"] == 2
    for detail in api.details(result_id):
        assert detail["status"] == "ERROR"
        assert detail["exit_code"] == 7
        assert "code 7" in detail["reason"]


def test_image_that_exits_non_zero_ends_in_error(api, ready_tasks):
    result_id = api.run(ready_tasks["fail"]["task_id"], times=1)
    assert api.wait_result(result_id)["status"] == "ERROR"
    [detail] = api.details(result_id)
    assert detail["exit_code"] == 3
    logs = api.get(f"/result/{result_id}/detail/{detail['detail_id']}/logs/").json()
    assert logs["stderr"] == "failing on purpose\n"


def test_result_is_running_while_executions_run(api, ready_tasks):
    result_id = api.run(ready_tasks["sleep"]["task_id"], times=1, env={"SLEEP": "3"})
    running = wait_until(lambda: (r := api.get(f"/result/{result_id}/").json())["status"] == "RUNNING" and r,
                         timeout=30, what="RUNNING")
    assert running["start"] is not None
    assert running["end"] is None and running["duration"] is None
    assert running["counts"]["RUNNING"] == 1
    assert api.wait_result(result_id)["status"] == "COMPLETE"


def test_command_and_env_reach_the_container(api, ready_tasks):
    result_id = api.run(ready_tasks["ok"]["task_id"], times=1,
                        command="sh -c 'echo $GREETING $STEVEDORE_EXECUTION_INDEX'",
                        env={"GREETING": "bonjour"})
    assert api.wait_result(result_id)["status"] == "COMPLETE"
    [detail] = api.details(result_id)
    logs = api.get(f"/result/{result_id}/detail/{detail['detail_id']}/logs/").json()
    assert logs["stdout"] == "bonjour 0\n"


def test_missing_image_ends_task_in_error(api, image_registry):
    task = api.register(f"{image_registry.address}/stevedore-test/no-such-image:1.0")
    assert task["status"] == "ERROR"
    assert "not found" in task["error"]
    assert task["digest"] is None


def test_unreachable_registry_ends_task_in_error(api):
    task = api.register("127.0.0.1:1/stevedore-test/busybox:ok")
    assert task["status"] == "ERROR"
    assert "unreachable" in task["error"]


def test_run_on_task_in_error_is_refused_with_409(api, image_registry):
    task = api.register(f"{image_registry.address}/stevedore-test/absent:1")
    response = api.post(f"/task/{task['task_id']}/", {"operation": "RUN", "times": 1})
    assert response.status_code == 409
    assert response.json()["error"] == "CONFLICT"
    assert "READY" in response.json()["message"]


def test_results_are_listed_newest_first_and_filtered(api, ready_tasks):
    task_id = ready_tasks["ok"]["task_id"]
    first = api.run(task_id, times=1)
    second = api.run(task_id, times=1)
    api.wait_result(first), api.wait_result(second)
    listed = api.get("/result/", params={"task_id": task_id}).json()
    ids = [r["result_id"] for r in listed]
    assert ids.index(second) < ids.index(first)
    assert all(r["task_id"] == task_id for r in listed)
    complete = api.get("/result/", params={"status": "COMPLETE"}).json()
    assert complete and all(r["status"] == "COMPLETE" for r in complete)


def test_result_lists_are_paginated_with_a_link_header(api, ready_tasks):
    task_id = ready_tasks["ok"]["task_id"]
    for _ in range(3):
        api.run(task_id, times=1)
    page = api.get("/result/", params={"task_id": task_id, "limit": 2})
    assert page.status_code == 200 and len(page.json()) == 2
    link = page.headers["Link"]
    assert 'rel="next"' in link
    next_path = link[link.index("<") + 1:link.index(">")]
    following = api.get(next_path).json()
    assert following
    assert not {r["result_id"] for r in following} & {r["result_id"] for r in page.json()}


def test_details_are_paginated(api, ready_tasks):
    result_id = api.run(ready_tasks["ok"]["task_id"], times=3)
    api.wait_result(result_id)
    page = api.get(f"/result/{result_id}/detail/", params={"limit": 2})
    assert [d["index"] for d in page.json()] == [0, 1]
    link = page.headers["Link"]
    rest = api.get(link[link.index("<") + 1:link.index(">")]).json()
    assert [d["index"] for d in rest] == [2]
    assert "Link" not in api.get(f"/result/{result_id}/detail/", params={"limit": 3}).headers
