"""Bad input gets a clear 4xx JSON error naming the field; never a 500, never a half-written row."""
import json
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from sqlalchemy import create_engine, text

from shared.db import psycopg2_url
from stevedore_jobs import contract
from tests.support import wait_until

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


@pytest.mark.parametrize("path, field", [
    ("/task/" + "a" * 8000 + "/", "task_id"),
    ("/result/" + "b" * 8000 + "/detail/", "result_id"),
])
def test_a_huge_unknown_id_is_404_and_echoed_short(api, path, field):
    body = assert_error(api.get(path), 404, "NOT_FOUND", field)
    assert len(body["message"]) < 600


def test_an_operation_with_a_field_it_does_not_take_is_refused_and_nothing_is_done(api, ready_tasks):
    """A field an operation does not take is a 400 naming it, not dropped: a CANCEL of one execution
    sent to its run's path would cancel the whole run, a rerun or run now "with" an env would run without."""
    result_id = api.run(ready_tasks["sleep"]["task_id"], times=2, env={"SLEEP": "30"})
    detail_id = api.get(f"/result/{result_id}/detail/").json()[0]["detail_id"]
    assert_error(api.post(f"/result/{result_id}/", {"operation": "CANCEL", "detail_id": detail_id}),
                 400, "VALIDATION_ERROR", "detail_id")
    assert_error(api.post(f"/result/{result_id}/detail/{detail_id}/", {"operation": "CANCEL", "reason": "x"}),
                 400, "VALIDATION_ERROR", "reason")
    assert_error(api.post(f"/result/{result_id}/", {"operation": "RERUN_FAILED", "env": {"A": "b"}}),
                 400, "VALIDATION_ERROR", "env")
    result = api.get(f"/result/{result_id}/").json()
    assert result["cancel_requested"] is False and result["status"] in ("QUEUED", "RUNNING")
    assert api.post(f"/result/{result_id}/", {"operation": "CANCEL"}).status_code == 202
    made = api.post("/schedule/", {"task_id": ready_tasks["ok"]["task_id"], "cron": "0 0 1 1 *", "suspend": True,
                                   "run": {"times": 1}})
    assert made.status_code == 201, made.text
    schedule_id = made.json()["schedule_id"]
    assert_error(api.post(f"/schedule/{schedule_id}/", {"operation": "RUN", "times": 5}),
                 400, "VALIDATION_ERROR", "times")
    assert api.get(f"/result/?schedule_id={schedule_id}").json() == []
    assert api.delete(f"/schedule/{schedule_id}/").status_code == 204


def test_unknown_detail_of_a_known_result_is_404(api, ready_tasks):
    result_id = api.run(ready_tasks["ok"]["task_id"], times=1)
    assert_error(api.get(f"/result/{result_id}/detail/nada/"), 404, "NOT_FOUND", "detail_id")


def test_unknown_path_and_method_answer_json(api):
    assert_error(api.get("/nowhere/"), 404, "NOT_FOUND")
    assert_error(api.delete("/result/"), 405, "METHOD_NOT_ALLOWED")
    # RFC 9110: a 405 names the methods the resource has
    assert set(api.delete("/result/").headers["Allow"].split(", ")) == {"GET", "HEAD"}


@pytest.mark.parametrize("query, field", [
    ({"limit": "0"}, "limit"), ({"limit": "1001"}, "limit"), ({"limit": "ten"}, "limit"),
    ({"status": "DONE"}, "status"), ({"after": "no-such-id"}, "after"),
])
def test_bad_list_queries_are_400(api, query, field):
    assert_error(api.get("/result/", params=query), 400, "VALIDATION_ERROR", field)


def test_huge_and_deep_bodies_are_refused(api):
    assert_error(api.post("/task/", raw="[" * 100000 + "]" * 100000), 400, "VALIDATION_ERROR", "body")
    assert_error(api.post("/task/", raw='{"name": "' + "x" * (2 * 1024 * 1024) + '"}'),
                 413, "PAYLOAD_TOO_LARGE", "body")
    assert api.get("/health/").status_code == 200


@pytest.mark.parametrize("path, query, field", [
    ("/task/%00/", None, "task_id"),
    ("/result/%00/", None, "result_id"),
    ("/result/%00/detail/", None, "result_id"),
    ("/result/abc/detail/%1b%5b2J/", None, "detail_id"),
    ("/result/", {"after": "\x00"}, "after"),
    ("/result/", {"task_id": "\x00"}, "task_id"),
    ("/result/?status=%ED%A0%80", None, "query"),  # a lone surrogate, as Python would write it in UTF-8
    ("/task/", {"after": "a\nb"}, "after"),
    ("/task/%ff%fe/", None, "path"),
    ("/result/?task_id=%ff", None, "query"),
])
def test_odd_bytes_in_paths_and_queries_are_refused_with_400_naming_the_field(api, path, query, field):
    assert_error(api.get(path, params=query), 400, "VALIDATION_ERROR", field)
    assert api.get("/result/").status_code == 200


@pytest.mark.parametrize("raw, field", [
    ('{"operation": "RUN", "times": 1, "env": {"A": "\\ud800"}}', "env"),
    ('{"operation": "RUN", "times": 1, "env": {"A": "x\\u0000y"}}', "env"),
    ('{"operation": "RUN", "times": 1, "env": {"A\\u0000": "x"}}', "env"),
    ('{"operation": "RUN", "times": 1, "env": {"A\\n": "x"}}', "env"),
    ('{"operation": "RUN", "times": null}', "times"),
    ('{"operation": "RUN", "times": 1, "retries": null}', "retries"),
    ('{"operation": "RUN", "times": 1, "priority": null}', "priority"),
    ('{"operation": "RUN", "times": 1, "command": "echo \\u0000"}', "command"),
    ('{"operation": "RUN", "times": 1, "command": ["echo", "\\udfff"]}', "command"),
    ('{"operation": "RUN", "times": 1, "callback_url": "http://127.0.0.1/\\u0007"}', "callback_url"),
    ('{"operation": "RUN", "times": 1, "memory": "256m\\n"}', "memory"),
    ('{"operation": "RUN\\u0000", "times": 1}', "operation"),
    ('{"operation": null, "times": 1}', "operation"),
    ('{"operation": "RUN", "times": 1, "\\u0000": 1}', "body"),
    ('{"operation": "RUN", "times": 1, "' + "k" * 100000 + '": 1}', "k" * 60),
])
def test_bad_strings_and_nulls_in_a_run_are_refused_and_nothing_is_stored(api, ready_tasks, raw, field):
    task_id = ready_tasks["ok"]["task_id"]
    before = len(api.get("/result/", params={"task_id": task_id, "limit": 1000}).json())
    body = assert_error(api.post(f"/task/{task_id}/", raw=raw, headers={"Content-Type": "application/json"}),
                        400, "VALIDATION_ERROR", field)
    assert len(body["message"]) < 400  # echoed input is cut short
    listed = api.get("/result/", params={"task_id": task_id, "limit": 1000})
    assert listed.status_code == 200
    assert len(listed.json()) == before


def test_newlines_and_tabs_are_free_text_in_env_values_and_commands(api, ready_tasks):
    task_id = ready_tasks["ok"]["task_id"]
    result_id = api.run(task_id, times=1, env={"PEM": "line 1\nline 2\r\n\tend"}, command=["true", "a\tb"])
    assert api.get(f"/result/{result_id}/").json()["params"]["env"] == {"PEM": "line 1\nline 2\r\n\tend"}


@pytest.mark.parametrize("body, field", [
    ({"repository": "localhost:5000/ok/image\n"}, "repository"),
    ({"repository": None}, "repository"),
    ({"repository": "ok/image", "name": "a\ud800"}, "name"),
    ({"repository": "ok/image", "name": "a\x00"}, "name"),
    ({"repository": "ok/image", "name": "a\x9b"}, "name"),
    ({"repository": "ok/image", "username": "u\x00", "password": "p"}, "username"),
    ({"repository": "ok/image", "username": "u", "password": "secret\ud83d"}, "password"),
])
def test_bad_strings_in_a_task_are_refused_and_nothing_is_stored(api, body, field):
    before = len(api.get("/task/", params={"limit": 1000}).json())
    response = api.post("/task/", raw=json.dumps(body), headers={"Content-Type": "application/json"})
    message = assert_error(response, 400, "VALIDATION_ERROR", field)["message"]
    assert "secret" not in message
    assert len(api.get("/task/", params={"limit": 1000}).json()) == before


def store_params(database_url, result_id, change):
    """Rewrite a stored run's ``params`` with ``change(params)``, as an older version stored them."""
    engine = create_engine(psycopg2_url(database_url))
    try:
        with engine.begin() as conn:
            params = json.loads(conn.execute(text("SELECT params::text FROM results WHERE id = :id"),
                                             {"id": result_id}).scalar_one())
            change(params)
            conn.execute(text("UPDATE results SET params = CAST(:params AS json) WHERE id = :id"),
                         {"params": json.dumps(params), "id": result_id})
    finally:
        engine.dispose()


def test_a_row_an_older_version_stored_with_a_lone_surrogate_does_not_break_the_reads(
        api, ready_tasks, database_url):
    result_id = api.run(ready_tasks["ok"]["task_id"], times=1)
    store_params(database_url, result_id, lambda params: params.update(env={"BAD": "\ud800"}))
    listed = api.get("/result/", params={"limit": 1000})
    assert listed.status_code == 200, listed.text[:300]
    assert {"BAD": "\ufffd"} in [result["params"].get("env") for result in listed.json()]
    one = api.get(f"/result/{result_id}/")
    assert one.status_code == 200 and one.json()["params"]["env"] == {"BAD": "\ufffd"}


def test_a_run_stored_before_command_strings_were_split_is_listed_and_read_as_the_spec_says(
        api, ready_tasks, database_url):
    def older(params):  # a command kept as the string sent; no callback_url, which came later
        params.update(command="echo stored as a string")
        params.pop("callback_url", None)

    result_id = api.run(ready_tasks["ok"]["task_id"], times=1)
    store_params(database_url, result_id, older)
    listed = api.get("/result/", params={"limit": 1000})
    assert listed.status_code == 200, listed.text[:300]
    for result in listed.json():
        contract.Result.model_validate(result)
    one = api.get(f"/result/{result_id}/")
    assert one.status_code == 200, one.text[:300]
    assert contract.Result.model_validate(one.json()).params.command == "echo stored as a string"
    assert "callback_url" not in one.json()["params"]  # served as stored, not filled in


def send_all_at_once(count, request):
    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(lambda _: request(), range(count)))


def test_one_idempotency_key_sent_20_times_at_once_makes_one_result(system, api, ready_tasks):
    task_id = ready_tasks["ok"]["task_id"]
    before = len(api.get("/result/", params={"task_id": task_id, "limit": 1000}).json())
    key = f"run-{uuid.uuid4().hex}"
    answers = send_all_at_once(20, lambda: requests.post(
        f"{system.url}/task/{task_id}/", json={"operation": "RUN", "times": 1}, timeout=60,
        headers={"Authorization": f"Bearer {system.token}", "Idempotency-Key": key}))
    assert all(answer.status_code in (202, 409) for answer in answers), [a.text for a in answers]
    made = {answer.json()["result_id"] for answer in answers if answer.status_code == 202}
    assert len(made) == 1
    assert len(api.get("/result/", params={"task_id": task_id, "limit": 1000}).json()) == before + 1


def test_one_idempotency_key_sent_20_times_at_once_registers_one_task(system, api, test_images):
    key, name = f"task-{uuid.uuid4().hex}", f"once-{uuid.uuid4().hex[:8]}"
    answers = send_all_at_once(20, lambda: requests.post(
        f"{system.url}/task/", json={"repository": test_images["ok"], "name": name}, timeout=60,
        headers={"Authorization": f"Bearer {system.token}", "Idempotency-Key": key}))
    assert all(answer.status_code in (201, 409) for answer in answers), [a.text for a in answers]
    made = {answer.json()["task_id"] for answer in answers if answer.status_code == 201}
    assert len(made) == 1
    assert [t["name"] for t in api.get("/task/", params={"limit": 1000}).json()].count(name) == 1


def lines_about(log, needle):
    lines = log.splitlines()
    return [(line, lines[n + 1] if n + 1 < len(lines) else "") for n, line in enumerate(lines) if needle in line]


def test_a_404_is_one_log_line_in_the_gateway_and_one_in_the_registry(system, api):
    missing = uuid.uuid4().hex
    assert_error(api.get(f"/task/{missing}/"), 404, "NOT_FOUND", "task_id")
    wait_until(lambda: missing in system.log("gateway") and missing in system.log("registry"),
               timeout=10, what="the 404 in both logs")
    for label in ("gateway", "registry"):
        found = lines_about(system.log(label), missing)
        assert len(found) == 1, (label, found)
        line, after = found[0]
        assert " INFO " in line and "NOT_FOUND" in line, line
        assert not after.startswith("Traceback"), after


def test_a_refused_body_echoes_little_and_no_secret_reaches_the_logs(system, api):
    password = f"pw-{uuid.uuid4().hex}"
    key = "K" * 5000
    assert_error(api.post("/task/", {"repository": "ok/image", "password": password}), 400,
                 "VALIDATION_ERROR", "username")
    body = assert_error(api.post(f"/task/{uuid.uuid4().hex}/", {"operation": key}), 400,
                        "VALIDATION_ERROR", "operation")
    assert len(body["message"]) < 300
    for label in ("gateway", "registry", "scheduler"):
        log = system.log(label)
        assert password not in log
        assert system.token not in log
        assert key not in log
