"""Hostile input and concurrency on the run features (PATCH /result/{id}/, ``after``, the failure policy,
``items`` / ``matrix``, schedules' run now), on the real system: every answer a 4xx JSON naming the field, or a
success; never a 500, never a stuck run."""
import os
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import create_engine, text

from tests.e2e.run_features import ENDED, after, cancel, patch, refused, result, run, run_now, schedule

pytestmark = pytest.mark.e2e


# ------------------------------------------------------------------ hostile input


@pytest.mark.parametrize("body, field", [
    ({"parallelism": 0}, "parallelism"), ({"parallelism": -1}, "parallelism"),
    ({"parallelism": 2 ** 63}, "parallelism"), ({"parallelism": 1e308}, "parallelism"),
    ({"parallelism": "NaN"}, "parallelism"), ({"parallelism": True}, "parallelism"),
    ({"parallelism": 1.5}, "parallelism"), ({"parallelism": [1]}, "parallelism"),
    ({"priority": None}, "priority"), ({"priority": 10}, "priority"), ({"priority": -1}, "priority"),
    ({"priority": "\u0000"}, "priority"), ({"priority": 1, "times": 3}, "times"),
    ({"priority": 1, "x\u0000": 1}, "body"), ({"priority": 1, "x": 1}, "x"), ({}, "body"), ([], "body"),
    ("x", "body"),
])
def test_a_bad_patch_of_a_run_is_a_400_naming_its_field(api, ready_tasks, body, field):
    target = run(api, ready_tasks["sleep"], times=1, env={"SLEEP": "20"})["result_id"]
    try:
        answer = patch(api, target, body)
        assert answer.status_code == 400, answer.text
        message = answer.json()["message"]
        assert message.startswith(f"{field}:"), message
    finally:
        cancel(api, target)


@pytest.mark.parametrize("raw", [
    b'{"parallelism": NaN}', b'{"parallelism": Infinity}', b'{"priority": 1e999}',
    b'{"priority": 1, "priority": "x"}', b'{"parallelism": "\\ud800"}', b'{"priority": 1' + b']' * 3,
    b'[' * 40 + b']' * 40, b'\xff\xfe', b'{"priority": ' + b'9' * 5000 + b'}',
])
def test_odd_json_in_a_patch_is_a_400_never_a_500(api, ready_tasks, raw):
    target = run(api, ready_tasks["sleep"], times=1, env={"SLEEP": "20"})["result_id"]
    try:
        answer = api.http.patch(f"{api.base_url}/result/{target}/", data=raw,
                                headers={"Content-Type": "application/json"}, timeout=30)
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"] == "VALIDATION_ERROR"
    finally:
        cancel(api, target)


@pytest.mark.parametrize("id_, status", [("0" * 32, 404), ("f" * 31, 404), ("x" * 32, 404), ("a" * 33, 404),
                                         ("A" * 32, 404), ("%00", 400), ("%ff", 400)])
def test_a_patch_of_an_unknown_or_odd_run_id_is_a_404_or_a_400(api, id_, status):
    answer = api.http.patch(f"{api.base_url}/result/{id_}/", json={"priority": 1}, timeout=30)
    assert answer.status_code == status, answer.text
    assert answer.json()["error"] in ("NOT_FOUND", "VALIDATION_ERROR")


@pytest.mark.parametrize("fields, field", [
    ({"after": [{"result_id": "0" * 32}]}, "after[0].result_id"),
    ({"after": [{"result_id": "A" * 32}]}, "after[0].result_id"),
    ({"after": [{"result_id": "a\u0000" * 16}]}, "after"),
    ({"after": [{"result_id": "\ud800" * 32}]}, "after"),
    ({"after": [{"result_id": 2 ** 63}]}, "after[0].result_id"),
    ({"after": [{"result_id": None}]}, "after[0].result_id"),
    ({"after": [{}]}, "after[0].result_id"),
    ({"after": [{"result_id": "0" * 32, "when": "NEVER"}]}, "after[0].when"),
    ({"after": [{"result_id": "0" * 32, "extra": 1}]}, "after[0]"),
    ({"after": [[]]}, "after[0]"), ({"after": {}}, "after"), ({"after": "x"}, "after"),
    ({"after": [{"result_id": "%032x" % i} for i in range(21)]}, "after"),
    ({"per_index": "yes", "after": None}, "per_index"), ({"per_index": True}, "per_index"),
    ({"max_failures": 0}, "max_failures"), ({"max_failures": -1}, "max_failures"),
    ({"max_failures": 2 ** 63}, "max_failures"), ({"max_failures": 1e308}, "max_failures"),
    ({"max_failures": "NaN"}, "max_failures"), ({"deadline": 0}, "deadline"), ({"deadline": -1}, "deadline"),
    ({"deadline": 1e308}, "deadline"), ({"deadline": "NaN"}, "deadline"), ({"deadline": 2 ** 63}, "deadline"),
    ({"retry_on_exit_codes": [256]}, "retry_on_exit_codes[0]"),
    ({"retry_on_exit_codes": [1] * 257}, "retry_on_exit_codes"),
    ({"no_retry_on_exit_codes": [True]}, "no_retry_on_exit_codes[0]"),
    ({"items": [{"env": {"A": "\u0000"}}]}, "items"), ({"matrix": {"A": ["\ud800"]}}, "matrix"),
    ({"matrix": {f"K{i}": ["1"] for i in range(17)}}, "matrix"), ({"items": [{}] * 100001}, "items"),
])
def test_hostile_values_of_the_new_run_fields_are_400s_naming_them(api, ready_tasks, fields, field):
    body = {"operation": "RUN", "times": 1, **fields}
    if "items" in fields or "matrix" in fields:
        del body["times"]
    answer = api.post(f"/task/{ready_tasks['ok']['task_id']}/", body)
    assert answer.status_code in (400, 413), answer.text
    if answer.status_code == 400:
        assert answer.json()["message"].startswith(f"{field}"), answer.text


def test_odd_json_numbers_in_a_run_are_400s(api, ready_tasks):
    path = f"{api.base_url}/task/{ready_tasks['ok']['task_id']}/"
    for raw in (b'{"operation": "RUN", "times": 1, "deadline": NaN}',
                b'{"operation": "RUN", "times": 1, "deadline": Infinity}',
                b'{"operation": "RUN", "times": 1, "max_failures": 1e999}',
                b'{"operation": "RUN", "times": 1, "deadline": -Infinity}'):
        answer = api.http.post(path, data=raw, headers={"Content-Type": "application/json"}, timeout=30)
        assert answer.status_code == 400, (raw, answer.text)
        assert answer.json()["error"] == "VALIDATION_ERROR"


def test_run_now_of_unknown_deleted_and_odd_schedules(api, ready_tasks):
    made = schedule(api, ready_tasks["ok"], {"times": 1})
    assert api.delete(f"/schedule/{made['schedule_id']}/").status_code == 204
    for schedule_id in (made["schedule_id"], "0" * 32, "x" * 40):
        assert run_now(api, schedule_id).status_code == 404
        assert api.http.patch(f"{api.base_url}/schedule/{schedule_id}/", json={"suspend": True},
                              timeout=30).status_code == 404
    for body in ({"operation": "CANCEL"}, {}, [], {"operation": None}, {"operation": "RUN\u0000"}):
        made = schedule(api, ready_tasks["ok"], {"times": 1})
        answer = api.post(f"/schedule/{made['schedule_id']}/", body)
        assert answer.status_code == 400, (body, answer.text)
        api.delete(f"/schedule/{made['schedule_id']}/")


# ------------------------------------------------------------------ concurrency


def test_twenty_concurrent_patches_all_answer_and_the_last_value_holds(api, ready_tasks, database_url):
    target = run(api, ready_tasks["sleep"], times=20, parallelism=1, env={"SLEEP": "20"})["result_id"]
    try:
        with ThreadPoolExecutor(20) as pool:
            answers = list(pool.map(lambda n: patch(api, target, {"parallelism": n + 1, "priority": n % 10}),
                                    range(20)))
        assert [a.status_code for a in answers] == [200] * 20, [a.text for a in answers if a.status_code != 200]
        final = result(api, target)
        assert (final["parallelism"], final["priority"]) in {(n + 1, n % 10) for n in range(20)}
        # the queued executions all took one priority: the run's now (the last PATCH's, not a mix)
        engine = create_engine(database_url)
        try:
            with engine.connect() as conn:
                priorities = {row[0] for row in conn.execute(text(
                    "SELECT priority FROM details WHERE result_id = :r AND status = 'QUEUED' AND runner IS NULL"),
                    {"r": target})}
        finally:
            engine.dispose()
        assert priorities == {final["priority"]}
    finally:
        cancel(api, target)
    assert api.wait_result(target, timeout=60)["status"] in ("CANCELLED", "KILLED")


def test_twenty_concurrent_run_nows_of_a_forbid_schedule_start_one_run(api, ready_tasks):
    made = schedule(api, ready_tasks["sleep"], {"times": 1, "env": {"SLEEP": "20"}}, concurrency_policy="Forbid")
    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(lambda _: run_now(api, made["schedule_id"]), range(20)))
    codes = sorted(a.status_code for a in answers)
    assert codes == [202] + [409] * 19, [a.text for a in answers]
    started = next(a.json() for a in answers if a.status_code == 202)
    listed = api.get("/result/", params={"schedule_id": made["schedule_id"]}).json()
    assert [r["result_id"] for r in listed] == [started["result_id"]]
    counts = api.get(f"/schedule/{made['schedule_id']}/").json()["counts"]
    assert counts["fired"] == 1
    cancel(api, started["result_id"])
    api.wait_result(started["result_id"], timeout=60)
    api.delete(f"/schedule/{made['schedule_id']}/")


def test_twenty_concurrent_runs_with_one_idempotency_key_and_after_make_one_run(api, ready_tasks):
    first = run(api, ready_tasks["sleep"], times=1, env={"SLEEP": "3"})["result_id"]
    key = f"together-{uuid.uuid4().hex}"
    body = {"operation": "RUN", "times": 2, "after": after(first), "deadline": 300, "max_failures": 1}

    def post(_):
        return api.post(f"/task/{ready_tasks['ok']['task_id']}/", body, headers={"Idempotency-Key": key})

    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(post, range(20)))
    assert [a.status_code for a in answers] == [202] * 20, [a.text for a in answers if a.status_code != 202]
    assert len({a.json()["result_id"] for a in answers}) == 1
    made = answers[0].json()["result_id"]
    assert len(api.details(made)) == 2
    done = api.wait_result(made, timeout=60)
    assert done["status"] == "COMPLETE" and done["deadline_at"] is not None
    other = dict(body, after=after(made))
    refused(api.post(f"/task/{ready_tasks['ok']['task_id']}/", other, headers={"Idempotency-Key": key}),
            "Idempotency-Key", 409)


@pytest.mark.skipif((os.cpu_count() or 1) >= 4, reason="needs runners that cannot fit 4 CPUs")
def test_twenty_concurrent_run_nows_of_a_replace_schedule_leave_one_run_going(api, ready_tasks):
    made = schedule(api, ready_tasks["ok"], {"times": 2, "cpus": 4, "deadline": 600}, concurrency_policy="Replace")
    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(lambda _: run_now(api, made["schedule_id"]), range(20)))
    assert [a.status_code for a in answers] == [202] * 20, [a.text for a in answers if a.status_code != 202]
    runs = api.get("/result/", params={"schedule_id": made["schedule_id"]}).json()
    assert len(runs) == 20
    going = [r for r in runs if r["status"] not in ENDED]
    assert len(going) == 1 and going[0]["result_id"] == api.get(f"/schedule/{made['schedule_id']}/").json()[
        "last_result_id"]
    for ended in (r for r in runs if r["status"] in ENDED):
        assert ended["status"] == "CANCELLED" and ended["counts"]["CANCELLED"] == 2 and ended["reason"] is None
    assert api.get(f"/schedule/{made['schedule_id']}/").json()["counts"]["fired"] == 20
    cancel(api, going[0]["result_id"])
    api.delete(f"/schedule/{made['schedule_id']}/")


@pytest.mark.parametrize("query", [{"schedule_id": "x"}, {"schedule_id": "0" * 33}, {"schedule_id": "\u0000"},
                                   {"schedule_id": str(2 ** 63)}, {"schedule_id": "A" * 32},
                                   {"status": "WAITING"}])
def test_odd_filters_of_the_result_list_are_400s_naming_them(api, query):
    answer = api.get("/result/", params=query)
    assert answer.status_code == 400, answer.text
    assert answer.json()["message"].split(":")[0] in query, answer.text


def test_an_unknown_schedule_id_filter_lists_nothing(api):
    answer = api.get("/result/", params={"schedule_id": uuid.uuid4().hex})
    assert answer.status_code == 200 and answer.json() == []
