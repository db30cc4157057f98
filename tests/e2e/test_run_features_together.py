"""The run features together, on the real system: dependencies (``after``), the failure policy
(``max_failures``, ``deadline``), per-execution parameters (``items``, ``matrix``), PATCH of a running run and
schedules, combined: each path's status, reason, counts and events.  Hostile input and concurrency:
test_run_features_hostile.py."""
import os
import subprocess
import sys
import time

import pytest

from tests.e2e.run_features import (
    NEVER, Watcher, after, cancel, patch, refused, rerun, result, run, run_now, said, schedule)
from tests.support import wait_until

pytestmark = pytest.mark.e2e


# ------------------------------------------------------------------ after + deadline / max_failures


def test_a_waiting_runs_deadline_counts_from_its_release_not_its_submission(api, ready_tasks):
    first = run(api, ready_tasks["sleep"], times=1, env={"SLEEP": "6"})["result_id"]
    second = run(api, ready_tasks["ok"], times=1, deadline=3, after=after(first))
    assert second["status"] == "QUEUED" and second["deadline_at"] is None
    time.sleep(4.5)  # past a deadline counted from the submission
    waiting = result(api, second["result_id"])
    assert waiting["status"] == "QUEUED" and waiting["reason"] is None and waiting["deadline_at"] is None
    assert api.wait_result(first, timeout=60)["status"] == "COMPLETE"
    first_end = max(d["end"] for d in api.details(first))
    released = wait_until(lambda: result(api, second["result_id"])["deadline_at"], timeout=30,
                          what="the deadline armed at the release")
    assert first_end + 3 - 1 <= released <= time.time() + 3 + 1
    api.wait_result(second["result_id"], timeout=60)


def test_a_waiting_run_stopped_by_max_failures_ends_error_and_its_rerun_waits_for_nothing(api, ready_tasks):
    first = run(api, ready_tasks["ok"], times=1)["result_id"]
    second = run(api, ready_tasks["fail"], times=6, parallelism=1, max_failures=2, deadline=600, after=after(first))
    assert second["waiting_for"] == after(first) or second["deadline_at"] is not None  # released at once, maybe
    done = api.wait_result(second["result_id"], timeout=120)
    assert done["status"] == "ERROR" and done["reason"] == "max_failures" and done["waiting_for"] is None
    counts = done["counts"]
    assert counts["ERROR"] >= 2 and counts["CANCELLED"]
    assert counts["ERROR"] + counts["CANCELLED"] + counts["KILLED"] == 6
    # stopped: nothing to change any more
    refused(patch(api, second["result_id"], {"parallelism": 3}), "result_id", 409)
    again = rerun(api, second["result_id"])
    assert again.status_code == 202, again.text
    rerun_of = again.json()
    assert rerun_of["waiting_for"] is None and "after" not in rerun_of["params"]
    assert rerun_of["deadline_at"] == pytest.approx(rerun_of["submitted_at"] + 600, abs=0.01)  # from its submit
    assert rerun_of["params"]["max_failures"] == 2
    assert rerun_of["times"] == done["counts"]["ERROR"] + done["counts"]["KILLED"]
    assert api.wait_result(rerun_of["result_id"], timeout=120)["reason"] == "max_failures"


def test_a_rerun_of_a_run_stopped_by_its_deadline_gets_a_deadline_of_its_own(api, ready_tasks):
    stopped = run(api, ready_tasks["sleep"], times=2, deadline=2, env={"SLEEP": "60"})["result_id"]
    done = api.wait_result(stopped, timeout=60)
    assert done["status"] == "KILLED" and done["reason"] == "deadline"
    again = rerun(api, stopped)
    assert again.status_code == 202, again.text
    rerun_of = again.json()
    assert rerun_of["deadline_at"] == pytest.approx(rerun_of["submitted_at"] + 2, abs=0.01)
    assert api.wait_result(rerun_of["result_id"], timeout=60)["reason"] == "deadline"


def test_a_rerun_of_a_run_cancelled_by_its_dependency_is_409_nothing_failed(api, ready_tasks):
    failed = run(api, ready_tasks["fail"], times=1)["result_id"]
    assert api.wait_result(failed)["status"] == "ERROR"
    cancelled = run(api, ready_tasks["ok"], times=2, after=after(failed))
    assert cancelled["status"] == "CANCELLED"
    refused(rerun(api, cancelled["result_id"]), "result_id", 409)


# ------------------------------------------------------------------ after + items / matrix / per_index


def test_a_run_with_a_matrix_waits_then_runs_each_combination(api, ready_tasks):
    first = run(api, ready_tasks["sleep"], times=1, env={"SLEEP": "2"})["result_id"]
    second = run(api, ready_tasks["ok"], matrix={"A": ["1", "2"], "B": ["x"]}, after=after(first))
    assert second["times"] == 2 and second["status"] == "QUEUED" and second["waiting_for"] == after(first)
    done = api.wait_result(second["result_id"], timeout=90)
    assert done["status"] == "COMPLETE"
    assert [d["params"] for d in api.details(second["result_id"])] == [
        {"env": {"A": "1", "B": "x"}}, {"env": {"A": "2", "B": "x"}}]


def test_per_index_pairs_runs_whose_times_come_from_items(api, ready_tasks):
    items = [{"env": {"SLEEP": "1"}}, {"env": {"SLEEP": "1"}}, {"env": {"SLEEP": "1"}}]
    first = run(api, ready_tasks["sleep"], items=items)["result_id"]
    second = run(api, ready_tasks["ok"], matrix={"N": ["a", "b", "c"]}, after=after(first), per_index=True)
    assert second["times"] == 3
    mismatch = api.post(f"/task/{ready_tasks['ok']['task_id']}/",
                        {"operation": "RUN", "items": [{}, {}], "after": after(first), "per_index": True})
    refused(mismatch, "per_index")
    assert api.wait_result(second["result_id"], timeout=90)["status"] == "COMPLETE"
    ends = {d["index"]: d["end"] for d in api.details(first)}
    for detail in api.details(second["result_id"]):
        assert detail["start"] >= ends[detail["index"]] - 0.01


# ------------------------------------------------------------------ PATCH, CANCEL, DELETE of waiting runs


def test_a_waiting_run_takes_a_patch_and_a_cancel_leaves_it_waiting_for_nothing(api, ready_tasks):
    first = run(api, ready_tasks["sleep"], times=1, env={"SLEEP": "30"})["result_id"]
    second = run(api, ready_tasks["ok"], times=3, after=after(first))["result_id"]
    changed = patch(api, second, {"parallelism": 1, "priority": 9})
    assert changed.status_code == 200, changed.text
    assert changed.json()["parallelism"] == 1 and changed.json()["priority"] == 9
    assert changed.json()["waiting_for"] == after(first)
    cancelled = cancel(api, second)
    assert cancelled.status_code == 202, cancelled.text
    assert cancelled.json()["status"] == "CANCELLED"
    assert cancelled.json()["waiting_for"] is None  # no longer waits: it ended
    assert result(api, second)["waiting_for"] is None
    assert all(d["status"] == "CANCELLED" for d in api.details(second))
    refused(patch(api, second, {"priority": 1}), "result_id", 409)
    cancel(api, first)


def test_deleting_a_run_that_completed_does_not_cancel_a_run_that_saw_it_complete(api, ready_tasks):
    done = run(api, ready_tasks["ok"], times=1)["result_id"]
    going = run(api, ready_tasks["sleep"], times=1, env={"SLEEP": "6"})["result_id"]
    assert api.wait_result(done)["status"] == "COMPLETE"
    waiting = run(api, ready_tasks["ok"], times=1, after=after(done, going))
    assert waiting["waiting_for"] == after(going)  # it saw ``done`` complete
    assert api.delete(f"/result/{done}/").status_code == 204
    assert api.wait_result(going, timeout=60)["status"] == "COMPLETE"
    ended = api.wait_result(waiting["result_id"], timeout=60)
    assert ended["status"] == "COMPLETE", ended["reason"]


def test_a_run_cannot_wait_for_a_deleted_run_nor_patch_or_cancel_one(api, ready_tasks):
    gone = run(api, ready_tasks["ok"], times=1)["result_id"]
    api.wait_result(gone)
    assert api.delete(f"/result/{gone}/").status_code == 204
    refused(api.post(f"/task/{ready_tasks['ok']['task_id']}/",
                     {"operation": "RUN", "times": 1, "after": after(gone)}), "after[0].result_id")
    refused(patch(api, gone, {"priority": 1}), "result_id", 404)
    refused(cancel(api, gone), "result_id", 404)
    refused(rerun(api, gone), "result_id", 404)


# ------------------------------------------------------------------ schedules with the run features


def test_a_schedules_run_with_a_matrix_gives_each_execution_its_combination(api, ready_tasks):
    say = ["sh", "-c", "echo A=$A B=$B"]
    made = schedule(api, ready_tasks["ok"], {"matrix": {"A": ["1", "2"], "B": ["x", "y"]}, "command": say})
    assert made["run"]["matrix"] == {"A": ["1", "2"], "B": ["x", "y"]}
    started = run_now(api, made["schedule_id"])
    assert started.status_code == 202, started.text
    fired = started.json()
    assert fired["times"] == 4 and fired["params"]["per_execution"] == "matrix"
    assert fired["schedule_id"] == made["schedule_id"]
    assert api.wait_result(fired["result_id"], timeout=90)["status"] == "COMPLETE"
    details = api.details(fired["result_id"])
    expected = [("1", "x"), ("1", "y"), ("2", "x"), ("2", "y")]
    assert [d["params"] for d in details] == [{"env": {"A": a, "B": b}} for a, b in expected]
    for detail, (a, b) in zip(details, expected):
        logs = api.get(f"/result/{fired['result_id']}/detail/{detail['detail_id']}/logs/").json()
        assert logs["stdout"] == f"A={a} B={b}\n"
    api.delete(f"/schedule/{made['schedule_id']}/")


def test_a_schedules_run_with_items_and_a_failure_policy_and_a_bad_spread_is_refused(api, ready_tasks):
    items = [{"command": ["sh", "-c", "exit 3"]}, {"command": ["sh", "-c", "exit 3"]}, {}]
    made = schedule(api, ready_tasks["ok"], {"items": items, "max_failures": 1, "parallelism": 1,
                                             "deadline": 600, "retries": 2, "no_retry_on_exit_codes": [3]},
                    concurrency_policy="Forbid")
    fired = run_now(api, made["schedule_id"]).json()
    assert fired["times"] == 3 and fired["deadline_at"] == pytest.approx(fired["submitted_at"] + 600, abs=0.01)
    refused(run_now(api, made["schedule_id"]), "concurrency_policy", 409)  # Forbid while it goes on
    done = api.wait_result(fired["result_id"], timeout=90)
    assert done["status"] == "ERROR" and done["reason"] == "max_failures"
    assert done["counts"]["ERROR"] == 1 and done["counts"]["CANCELLED"] == 2  # parallelism 1: nothing else ran
    for body, field in (({"items": [{"env": {"STEVEDORE_X": "1"}}]}, "run.items[0].env"),
                        ({"items": [], "times": 1}, "run.items"),
                        ({"matrix": {"A": []}}, "run.matrix.A"),
                        ({"items": [{}], "matrix": {"A": ["1"]}}, "run.matrix"),
                        ({"matrix": {"A": ["1", "2"]}, "times": 3}, "run.times"),
                        ({"times": 1, "per_index": True}, "run.per_index"),
                        ({"matrix": {"A": [str(i) for i in range(1000)], "B": [str(i) for i in range(1000)]}},
                         "run.matrix"),  # a million combinations: over RUN_MAX_TIMES
                        ({"matrix": {"A": ["1"]}, "after": []}, "run.after")):
        answer = api.post("/schedule/", {"task_id": ready_tasks["ok"]["task_id"], "cron": NEVER, "run": body})
        assert answer.status_code == 400, (body, answer.text)
        assert answer.json()["message"].startswith(field), (body, answer.text)
        changed = api.http.patch(f"{api.base_url}/schedule/{made['schedule_id']}/", json={"run": body}, timeout=30)
        assert changed.status_code == 400 and changed.json()["message"].startswith(field), changed.text
    api.delete(f"/schedule/{made['schedule_id']}/")


# ------------------------------------------------------------------ what waits is settled at once


@pytest.mark.skipif((os.cpu_count() or 1) >= 4, reason="needs runners that cannot fit 4 CPUs")
def test_a_run_replaced_by_its_schedule_cancels_what_waits_for_it_at_once(api, ready_tasks):
    # no runner here fits 4 CPUs: the run replaced is still queued, and ends CANCELLED with the fire
    made = schedule(api, ready_tasks["ok"], {"times": 1, "cpus": 4}, concurrency_policy="Replace")
    previous = run_now(api, made["schedule_id"]).json()["result_id"]
    waiting = run(api, ready_tasks["ok"], times=1, after=after(previous))["result_id"]
    replacing = run_now(api, made["schedule_id"])
    assert replacing.status_code == 202, replacing.text
    # settled by the fire that cancelled it, not by the next sweep (SWEEP_INTERVAL, 10 s here)
    now = result(api, waiting)
    assert now["status"] == "CANCELLED", now
    assert now["reason"].startswith(f"result {previous} ended")
    assert result(api, previous)["status"] == "CANCELLED"
    cancel(api, replacing.json()["result_id"])
    api.delete(f"/schedule/{made['schedule_id']}/")


@pytest.mark.skipif((os.cpu_count() or 1) >= 4, reason="needs runners that cannot fit 4 CPUs")
def test_a_run_its_deadline_ended_before_anything_started_cancels_what_waits_for_it_at_once(api, ready_tasks):
    stuck = run(api, ready_tasks["ok"], times=2, cpus=4, deadline=1)["result_id"]  # no runner here fits it
    waiting = run(api, ready_tasks["ok"], times=1, after=after(stuck))["result_id"]
    ended = api.wait_result(stuck, timeout=30)
    assert ended["status"] == "KILLED" and ended["reason"] == "deadline"
    # settled by the stop itself, not by the next sweep (SWEEP_INTERVAL, 10 s here)
    settled = wait_until(lambda: result(api, waiting)["status"] == "CANCELLED" and result(api, waiting),
                         timeout=30, interval=0.1, what="the waiting run cancelled")
    assert settled["end"] - ended["end"] < 2.0, (settled["end"], ended["end"])


# ------------------------------------------------------------------ events: each said once


def test_each_path_to_an_end_announces_the_end_once(container_factory, session_amqp_uri, api, ready_tasks):
    Watcher.seen = []
    container = container_factory(Watcher, {"AMQP_URI": session_amqp_uri})
    container.start()
    failed = run(api, ready_tasks["fail"], times=1)["result_id"]
    api.wait_result(failed)
    by_dependency = run(api, ready_tasks["ok"], times=2, after=after(failed))["result_id"]
    by_max_failures = run(api, ready_tasks["fail"], times=4, parallelism=1, max_failures=1)["result_id"]
    by_deadline = run(api, ready_tasks["sleep"], times=2, deadline=2, env={"SLEEP": "60"})["result_id"]
    awaited = run(api, ready_tasks["sleep"], times=1, env={"SLEEP": "2"})["result_id"]
    released = run(api, ready_tasks["ok"], times=1, after=after(awaited), deadline=120)["result_id"]
    blocker = run(api, ready_tasks["sleep"], times=1, env={"SLEEP": "60"})["result_id"]
    cancelled_waiting = run(api, ready_tasks["ok"], times=2, after=after(blocker))["result_id"]
    assert cancel(api, cancelled_waiting).status_code == 202
    assert cancel(api, blocker).status_code == 202
    ends = {rid: api.wait_result(rid, timeout=90) for rid in
            (by_dependency, by_max_failures, by_deadline, released, cancelled_waiting, blocker)}
    assert [ends[r]["status"] for r in (by_dependency, by_max_failures, by_deadline, released, cancelled_waiting)] \
        == ["CANCELLED", "ERROR", "KILLED", "COMPLETE", "CANCELLED"]
    wait_until(lambda: all(said(rid, "result_finished") for rid in ends), timeout=30, what="every end announced")
    time.sleep(3)  # room for a second announcement, were there one
    for rid, end in ends.items():
        assert said(rid, "result_finished") == [("result_finished", rid, end["status"], end["reason"])], rid
    assert [e[3] for e in said(by_max_failures, "result_cancelled")] == ["max_failures"]
    assert [e[3] for e in said(by_deadline, "result_cancelled")] == ["deadline"]
    assert [e[3] for e in said(by_dependency, "result_cancelled")] == [ends[by_dependency]["reason"]]
    assert ends[by_dependency]["reason"].startswith(f"result {failed} ended ERROR")
    assert len(said(cancelled_waiting, "result_cancelled")) == 1
    assert len(said(released, "result_released")) == 1 and not said(cancelled_waiting, "result_released")


def test_replace_does_not_cancel_again_a_run_already_being_cancelled(container_factory, session_amqp_uri, api,
                                                                     ready_tasks):
    Watcher.seen = []
    container = container_factory(Watcher, {"AMQP_URI": session_amqp_uri})
    container.start()
    made = schedule(api, ready_tasks["sleep"], {"times": 1, "env": {"SLEEP": "60"}}, concurrency_policy="Replace")
    previous = run_now(api, made["schedule_id"]).json()["result_id"]
    wait_until(lambda: result(api, previous)["status"] == "RUNNING", timeout=60, what="the run running")
    assert cancel(api, previous).status_code == 202  # its container is stopped within STOP_GRACE_PERIOD
    assert result(api, previous)["status"] == "RUNNING"
    replacing = run_now(api, made["schedule_id"])
    assert replacing.status_code == 202, replacing.text
    cancel(api, replacing.json()["result_id"])
    assert api.wait_result(previous, timeout=60)["status"] == "KILLED"
    wait_until(lambda: said(previous, "result_finished"), timeout=30, what="its end announced")
    assert len(said(previous, "result_cancelled")) == 1, Watcher.seen
    api.delete(f"/schedule/{made['schedule_id']}/")


def test_a_schedules_run_naming_another_task_is_409_naming_run_task_id(api, ready_tasks):
    ok, other = ready_tasks["ok"]["task_id"], ready_tasks["fail"]["task_id"]
    answer = api.post("/schedule/", {"task_id": ok, "cron": NEVER, "run": {"times": 1, "task_id": other}})
    refused(answer, "run.task_id", 409)
    made = schedule(api, ready_tasks["ok"], {"times": 1, "task_id": ok})
    changed = api.http.patch(f"{api.base_url}/schedule/{made['schedule_id']}/",
                             json={"run": {"times": 1, "task_id": other}}, timeout=30)
    refused(changed, "run.task_id", 409)
    assert api.get(f"/schedule/{made['schedule_id']}/").json()["run"] == {"times": 1, "task_id": ok}
    api.delete(f"/schedule/{made['schedule_id']}/")


def test_the_cli_adds_a_schedule_with_a_matrix_and_its_run_now_spreads_it(system, api, ready_tasks):
    command = os.path.join(os.path.dirname(sys.executable), "stevedore")
    environ = {key: value for key, value in os.environ.items() if not key.startswith("STEVEDORE_")}
    environ.update({"STEVEDORE_URL": system.url, "STEVEDORE_TOKEN": system.token})
    added = subprocess.run([command, "schedule", "add", ready_tasks["ok"]["name"], NEVER, "--matrix", "A=1,2",
                            "--matrix", "B=x"], env=environ, capture_output=True, text=True, timeout=60)
    assert added.returncode == 0, added.stderr
    schedule_id = added.stdout.strip()
    assert api.get(f"/schedule/{schedule_id}/").json()["run"] == {"matrix": {"A": ["1", "2"], "B": ["x"]}}
    fired = run_now(api, schedule_id).json()
    assert fired["times"] == 2
    assert api.wait_result(fired["result_id"], timeout=60)["status"] == "COMPLETE"
    assert [d["params"] for d in api.details(fired["result_id"])] == [
        {"env": {"A": "1", "B": "x"}}, {"env": {"A": "2", "B": "x"}}]
    api.delete(f"/schedule/{schedule_id}/")


def test_a_big_waiting_run_fanned_out_in_batches_is_held_then_released_with_its_deadline(api, ready_tasks):
    first = run(api, ready_tasks["sleep"], times=1, env={"SLEEP": "4"})["result_id"]
    big = run(api, ready_tasks["ok"], matrix={"N": [str(i) for i in range(150)]}, parallelism=2, deadline=600,
              after=after(first))["result_id"]  # over the 100 a RUN makes itself: fanned out after it
    made = wait_until(lambda: len(api.details(big)) == 150 and api.details(big), timeout=60, what="the fan-out")
    waiting = result(api, big)
    if waiting["waiting_for"] is not None:  # (the sleep may have ended under load)
        assert waiting["deadline_at"] is None and waiting["counts"]["RUNNING"] == 0
        assert all(d["status"] == "QUEUED" and d["reason"].startswith("waiting for result") for d in made)
    assert api.wait_result(first, timeout=60)["status"] == "COMPLETE"
    released = wait_until(lambda: result(api, big)["deadline_at"] and result(api, big), timeout=30,
                          what="the release")
    assert released["waiting_for"] is None
    wait_until(lambda: result(api, big)["counts"]["COMPLETE"] >= 2, timeout=60, what="executions to run")
    assert not [d for d in api.details(big, status="QUEUED") if (d["reason"] or "").startswith("waiting")]
    assert [d["params"] for d in api.details(big)][149] == {"env": {"N": "149"}}
    cancel(api, big)
    assert api.wait_result(big, timeout=60)["status"] in ("CANCELLED", "KILLED")
