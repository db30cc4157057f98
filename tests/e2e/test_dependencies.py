"""Dependencies between runs (a RUN's ``after``), proven on the real runners: released by the end of what
they wait for, cancelled when it can no longer hold, and paired by index."""
import json
import uuid

import pytest

from tests.support import WebhookReceiver, wait_until

pytestmark = pytest.mark.e2e

ENDED = ("COMPLETE", "ERROR", "CANCELLED", "KILLED")


def after(*result_ids, when="COMPLETE"):
    return [{"result_id": result_id, "when": when} for result_id in result_ids]


def result(api, result_id):
    return api.get(f"/result/{result_id}/").json()


def test_a_run_after_another_starts_only_once_it_completed(api, ready_tasks):
    first = api.run(ready_tasks["sleep"]["task_id"], times=2, env={"SLEEP": "3"})
    second = api.run(ready_tasks["ok"]["task_id"], times=2, after=after(first))
    waiting = result(api, second)
    assert waiting["status"] == "QUEUED"
    assert waiting["waiting_for"] == [{"result_id": first, "when": "COMPLETE"}]
    assert waiting["params"]["after"] == [{"result_id": first, "when": "COMPLETE"}]
    assert waiting["params"]["per_index"] is False
    for detail in api.details(second):
        assert detail["status"] == "QUEUED"
        assert first in detail["reason"] and detail["reason"].startswith("waiting for result")
    assert api.wait_result(first, timeout=60)["status"] == "COMPLETE"
    done = api.wait_result(second, timeout=60)
    assert done["status"] == "COMPLETE" and done["waiting_for"] is None and done["reason"] is None
    first_end = max(d["end"] for d in api.details(first))
    assert min(d["start"] for d in api.details(second)) >= first_end
    assert all(d["reason"] is None for d in api.details(second))


def test_a_run_waiting_for_one_that_fails_ends_cancelled_naming_it_and_the_chain_goes_on(api, ready_tasks):
    first = api.run(ready_tasks["sleep"]["task_id"], times=1, timeout=1, env={"SLEEP": "60"})
    second = api.run(ready_tasks["ok"]["task_id"], times=3, after=after(first))
    third = api.run(ready_tasks["ok"]["task_id"], times=1, after=after(second, when="ENDED"))
    fourth = api.run(ready_tasks["ok"]["task_id"], times=1, after=after(second))
    assert result(api, third)["waiting_for"] == [{"result_id": second, "when": "ENDED"}]
    assert api.wait_result(first, timeout=60)["status"] == "ERROR"
    cancelled = api.wait_result(second, timeout=30)
    assert cancelled["status"] == "CANCELLED"
    assert cancelled["reason"] == f"result {first} ended ERROR; this run waited for it to end COMPLETE"
    assert cancelled["waiting_for"] is None and cancelled["start"] is None
    for detail in api.details(second):
        assert detail["status"] == "CANCELLED" and first in detail["reason"] and detail["start"] is None
    # waiting for its end, however it ended: released; waiting for it to COMPLETE: cancelled in turn
    assert api.wait_result(third, timeout=60)["status"] == "COMPLETE"
    assert api.wait_result(fourth, timeout=30)["status"] == "CANCELLED"
    assert second in result(api, fourth)["reason"]


def test_the_webhook_of_a_run_cancelled_by_its_dependency_says_why(api, ready_tasks):
    first = api.run(ready_tasks["sleep"]["task_id"], times=1, timeout=1, env={"SLEEP": "60"})
    with WebhookReceiver() as receiver:
        second = api.run(ready_tasks["ok"]["task_id"], times=1, after=after(first), callback_url=receiver.url)
        wait_until(lambda: receiver.received, timeout=60, what="the webhook")
    body = json.loads(receiver.received[0]["body"])
    assert body["result_id"] == second and body["status"] == "CANCELLED"
    assert body["reason"].startswith(f"result {first} ended ERROR")
    assert body["params"]["after"] == [{"result_id": first, "when": "COMPLETE"}]
    assert body["waiting_for"] is None


def test_a_run_after_one_that_ended_already_is_decided_at_submit(api, ready_tasks):
    done = api.run(ready_tasks["ok"]["task_id"], times=1)
    failed = api.run(ready_tasks["fail"]["task_id"], times=1)
    assert api.wait_result(done)["status"] == "COMPLETE"
    assert api.wait_result(failed)["status"] == "ERROR"
    answer = api.post(f"/task/{ready_tasks['ok']['task_id']}/",
                      {"operation": "RUN", "times": 1, "after": after(failed)})
    assert answer.status_code == 202, answer.text
    assert answer.json()["status"] == "CANCELLED" and failed in answer.json()["reason"]
    released = api.run(ready_tasks["ok"]["task_id"], times=1, after=after(done) + after(failed, when="ENDED"))
    assert result(api, released)["waiting_for"] is None
    assert api.wait_result(released)["status"] == "COMPLETE"


def test_per_index_pairs_executions_by_index(api, ready_tasks):
    # A's executions one after another, 3 s each: B's execution i starts once A's i ended, not after all of A
    first = api.run(ready_tasks["sleep"]["task_id"], times=3, parallelism=1, env={"SLEEP": "3"})
    second = api.run(ready_tasks["ok"]["task_id"], times=3, after=after(first), per_index=True)
    assert api.wait_result(second, timeout=90)["status"] == "COMPLETE"
    a = {d["index"]: d for d in api.details(first)}
    b = {d["index"]: d for d in api.details(second)}
    for i in range(3):
        assert b[i]["start"] >= a[i]["end"], (i, a[i], b[i])
    assert b[0]["start"] < a[2]["end"] and b[0]["start"] < a[2]["start"]


def test_per_index_cancels_only_the_execution_whose_pair_failed(api, ready_tasks):
    first = api.run(ready_tasks["sleep"]["task_id"], times=2, parallelism=1, env={"SLEEP": "3"})
    second = api.run(ready_tasks["ok"]["task_id"], times=2, after=after(first), per_index=True)
    pair = {d["index"]: d for d in api.details(first)}[1]
    assert api.post(f"/result/{first}/detail/{pair['detail_id']}/", {"operation": "CANCEL"}).status_code == 202
    ended = api.wait_result(second, timeout=60)
    assert ended["status"] == "ERROR"
    b = {d["index"]: d for d in api.details(second)}
    assert b[0]["status"] == "COMPLETE"
    assert b[1]["status"] == "CANCELLED" and b[1]["start"] is None
    assert b[1]["reason"] == (f"cancelled: execution 1 of result {first} ended CANCELLED; "
                              "this one waited for it to end COMPLETE")
    assert ended["reason"] == b[1]["reason"]


def test_a_waiting_run_is_cancelled_like_a_queued_one(api, ready_tasks):
    first = api.run(ready_tasks["sleep"]["task_id"], times=1, env={"SLEEP": "4"})
    second = api.run(ready_tasks["ok"]["task_id"], times=3, after=after(first))
    answer = api.post(f"/result/{second}/", {"operation": "CANCEL"})
    assert answer.status_code == 202, answer.text
    assert answer.json()["status"] == "CANCELLED" and answer.json()["waiting_for"] is None
    assert {d["status"] for d in api.details(second)} == {"CANCELLED"}
    assert api.wait_result(first, timeout=60)["status"] == "COMPLETE"  # what it waited for is not touched
    assert result(api, second)["status"] == "CANCELLED"


def test_a_big_run_waiting_is_fanned_out_held_and_released(api, ready_tasks):
    first = api.run(ready_tasks["sleep"]["task_id"], times=1, env={"SLEEP": "3"})
    second = api.run(ready_tasks["ok"]["task_id"], times=150, after=after(first, when="ENDED"))  # fanned out
    wait_until(lambda: len(api.details(second)) == 150, timeout=30, what="the fan-out")
    if result(api, first)["status"] not in ENDED:
        assert all(d["status"] == "QUEUED" and d["runner"] is None for d in api.details(second))
    assert api.wait_result(first, timeout=60)["status"] == "COMPLETE"
    started = wait_until(lambda: [d for d in api.details(second) if d["start"]][:3] or None, timeout=60,
                         what="the released executions to start")
    first_end = api.details(first)[0]["end"]
    assert all(d["start"] >= first_end for d in started)
    assert all(d["reason"] is None or not d["reason"].startswith("waiting for result")
               for d in api.details(second))
    api.post(f"/result/{second}/", {"operation": "CANCEL"})  # the rest is not this test's business
    assert api.wait_result(second, timeout=60)["status"] in ("CANCELLED", "KILLED")


@pytest.mark.parametrize("extra, field", [
    ({"after": [{"result_id": uuid.uuid4().hex}]}, "after[0].result_id"),
    ({"after": [{"result_id": "not-an-id"}]}, "after[0].result_id"),
    ({"after": [{"result_id": "a" * 32, "when": "SOON"}]}, "after[0].when"),
    ({"after": "x"}, "after"),
    ({"after": [{"result_id": "a" * 32}] * 2}, "after[1].result_id"),
    ({"after": [{"result_id": uuid.uuid4().hex} for _ in range(21)]}, "after"),
    ({"per_index": True}, "per_index"),
])
def test_an_after_that_cannot_be_waited_for_is_refused_naming_the_field(api, ready_tasks, extra, field):
    answer = api.post(f"/task/{ready_tasks['ok']['task_id']}/", {"operation": "RUN", "times": 1, **extra})
    assert answer.status_code == 400, answer.text
    assert answer.json()["message"].startswith(f"{field}:"), answer.json()


def test_per_index_needs_runs_of_equal_times(api, ready_tasks):
    first = api.run(ready_tasks["ok"]["task_id"], times=2)
    answer = api.post(f"/task/{ready_tasks['ok']['task_id']}/",
                      {"operation": "RUN", "times": 3, "after": after(first), "per_index": True})
    assert answer.status_code == 400 and answer.json()["message"].startswith("per_index:"), answer.text
    listed = api.get("/result/", params={"task_id": ready_tasks["ok"]["task_id"], "limit": 1}).json()
    assert listed[0]["result_id"] == first  # nothing was stored


def test_a_rerun_of_a_run_that_waited_waits_for_nothing_and_per_index_cannot_pair_with_it(api, ready_tasks):
    first = api.run(ready_tasks["ok"]["task_id"], times=2)
    failed = api.run(ready_tasks["fail"]["task_id"], times=2, after=after(first, when="ENDED"))
    assert api.wait_result(failed)["status"] == "ERROR"
    answer = api.post(f"/result/{failed}/", {"operation": "RERUN_FAILED"})
    assert answer.status_code == 202, answer.text
    rerun = answer.json()
    assert "after" not in rerun["params"] and rerun["waiting_for"] is None
    assert api.wait_result(rerun["result_id"])["status"] == "ERROR"
    refused = api.post(f"/task/{ready_tasks['ok']['task_id']}/", {
        "operation": "RUN", "times": 2, "after": after(rerun["result_id"]), "per_index": True})
    assert refused.status_code == 400 and refused.json()["message"].startswith("per_index:"), refused.text


def test_a_run_after_others_sent_twice_with_one_idempotency_key_is_one_run(api, ready_tasks):
    first = api.run(ready_tasks["sleep"]["task_id"], times=1, env={"SLEEP": "2"})
    body = {"operation": "RUN", "times": 1, "after": after(first)}
    headers = {"Idempotency-Key": f"deps-{uuid.uuid4().hex}"}
    one = api.post(f"/task/{ready_tasks['ok']['task_id']}/", body, headers=headers)
    two = api.post(f"/task/{ready_tasks['ok']['task_id']}/", body, headers=headers)
    assert one.status_code == two.status_code == 202
    assert one.json()["result_id"] == two.json()["result_id"]
    other = api.post(f"/task/{ready_tasks['ok']['task_id']}/", {**body, "after": after(first, when="ENDED")},
                     headers=headers)
    assert other.status_code == 409, other.text
    assert api.wait_result(one.json()["result_id"], timeout=60)["status"] == "COMPLETE"
