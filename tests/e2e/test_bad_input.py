"""Bad input gets a clear 4xx JSON error naming the field; never a 500, never a half-written row."""
import pytest

pytestmark = pytest.mark.e2e


def assert_error(response, status, code, field=None):
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["error"] == code
    if field:
        assert body["message"].startswith(f"{field}:"), body["message"]
    return body


@pytest.mark.parametrize("raw, field", [
    ("{not json", "body"),
    ("[1, 2]", "body"),
    ('"a string"', "body"),
    ("", "body"),
    ('{"name": "x"}', "repository"),
    ('{"repository": 42}', "repository"),
    ('{"repository": "UPPER/case"}', "repository"),
    ('{"repository": "has space:1"}', "repository"),
    ('{"repository": "ok/image:bad tag"}', "repository"),
    ('{"repository": "ok/image", "name": 5}', "name"),
    ('{"repository": "ok/image", "name": ""}', "name"),
    ('{"repository": "ok/image", "status": "READY"}', "status"),
])
def test_bad_task_bodies_are_refused_with_400_naming_the_field(api, raw, field):
    before = len(api.get("/task/", params={"limit": 1000}).json())
    assert_error(api.post("/task/", raw=raw), 400, "VALIDATION_ERROR", field)
    assert len(api.get("/task/", params={"limit": 1000}).json()) == before


def test_duplicate_task_name_is_refused_with_409(api, test_images):
    api.register(test_images["ok"], name="only-once")
    body = assert_error(api.post("/task/", {"repository": test_images["ok"], "name": "only-once"}),
                        409, "CONFLICT", "name")
    assert "only-once" in body["message"]


@pytest.mark.parametrize("body, field", [
    ({"times": 1}, "operation"),
    ({"operation": "EXPLODE", "times": 1}, "operation"),
    ({"operation": "RUN"}, "times"),
    ({"operation": "RUN", "times": 0}, "times"),
    ({"operation": "RUN", "times": 100001}, "times"),
    ({"operation": "RUN", "times": "5"}, "times"),
    ({"operation": "RUN", "times": 1.5}, "times"),
    ({"operation": "RUN", "times": True}, "times"),
    ({"operation": "RUN", "times": 1, "command": 5}, "command"),
    ({"operation": "RUN", "times": 1, "command": []}, "command"),
    ({"operation": "RUN", "times": 1, "command": "echo 'unbalanced"}, "command"),
    ({"operation": "RUN", "times": 1, "command": "echo trailing\\"}, "command"),
    ({"operation": "RUN", "times": 1, "env": ["A=1"]}, "env"),
    ({"operation": "RUN", "times": 1, "env": {"A": 1}}, "env"),
    ({"operation": "RUN", "times": 1, "env": {"1BAD": "x"}}, "env"),
    ({"operation": "RUN", "times": 1, "timeout": -1}, "timeout"),
    ({"operation": "RUN", "times": 1, "priority": 10}, "priority"),
    ({"operation": "RUN", "times": 1, "memory": "lots"}, "memory"),
    ({"operation": "RUN", "times": 1, "colour": "blue"}, "colour"),
])
def test_bad_run_bodies_are_refused_with_400_naming_the_field(api, ready_tasks, body, field):
    task_id = ready_tasks["ok"]["task_id"]
    before = len(api.get("/result/", params={"task_id": task_id, "limit": 1000}).json())
    assert_error(api.post(f"/task/{task_id}/", body), 400, "VALIDATION_ERROR", field)
    assert len(api.get("/result/", params={"task_id": task_id, "limit": 1000}).json()) == before


def test_run_of_unknown_task_is_404(api):
    assert_error(api.post("/task/0123456789abcdef0123456789abcdef/", {"operation": "RUN", "times": 1}),
                 404, "NOT_FOUND", "task_id")


@pytest.mark.parametrize("path, field", [
    ("/task/nope/", "task_id"),
    ("/result/nope/", "result_id"),
    ("/result/nope/detail/", "result_id"),
    ("/result/nope/detail/nada/", "result_id"),
])
def test_unknown_ids_are_404(api, path, field):
    assert_error(api.get(path), 404, "NOT_FOUND", field)


def test_unknown_detail_of_a_known_result_is_404(api, ready_tasks):
    result_id = api.run(ready_tasks["ok"]["task_id"], times=1)
    assert_error(api.get(f"/result/{result_id}/detail/nada/"), 404, "NOT_FOUND", "detail_id")


def test_unknown_path_and_method_answer_json(api):
    assert_error(api.get("/nowhere/"), 404, "NOT_FOUND")
    assert_error(api.delete("/result/"), 405, "METHOD_NOT_ALLOWED")


@pytest.mark.parametrize("query, field", [
    ({"limit": "0"}, "limit"), ({"limit": "1001"}, "limit"), ({"limit": "ten"}, "limit"),
    ({"status": "DONE"}, "status"), ({"after": "no-such-id"}, "after"),
])
def test_bad_list_queries_are_400(api, query, field):
    assert_error(api.get("/result/", params=query), 400, "VALIDATION_ERROR", field)


def test_huge_and_deep_bodies_are_refused(api):
    assert_error(api.post("/task/", raw="[" * 100000 + "]" * 100000), 400, "VALIDATION_ERROR", "body")
    assert_error(api.post("/task/", raw='{"name": "' + "x" * (2 * 1024 * 1024) + '"}'),
                 400, "VALIDATION_ERROR", "body")
    assert api.get("/health/").status_code == 200
