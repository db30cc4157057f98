"""A run's failure policy on the real runners: max_failures, exit-code rules of retries, deadline."""
import time

import pytest
import requests

from tests.support import wait_until

pytestmark = pytest.mark.e2e

RUNNER_SLOTS = 2  # the e2e system: two runners of one slot each
FIRST_ATTEMPT_EXITS = 'if [ "$STEVEDORE_ATTEMPT" = 1 ]; then exit {code}; fi; echo "attempt $STEVEDORE_ATTEMPT ok"'


def test_max_failures_stops_a_run_of_a_thousand_failing_executions_after_about_three(system, api, ready_tasks):
    submitted = time.time()
    result_id = api.run(ready_tasks["fail"]["task_id"], times=1000, max_failures=3)
    result = api.wait_result(result_id, timeout=90)
    took = time.time() - submitted
    assert result["status"] == "ERROR"
    assert result["reason"] == "max_failures"
    assert result["params"]["max_failures"] == 3
    counts = result["counts"]
    # three failures, plus what the runners held when the third was folded (ended on its own, or stopped)
    assert 3 <= counts["ERROR"] <= 3 + RUNNER_SLOTS, counts
    assert counts["ERROR"] + counts["KILLED"] <= 3 + RUNNER_SLOTS, counts
    assert counts["COMPLETE"] == 0 and counts["QUEUED"] == 0 and counts["RUNNING"] == 0
    assert counts["CANCELLED"] >= 1000 - 3 - RUNNER_SLOTS
    assert took < 45, f"the run took {took:.1f}s to stop"
    cancelled = api.details(result_id, status="CANCELLED", limit=50)
    assert cancelled and all(d["reason"] == "max_failures" for d in cancelled)
    # the stopped run is counted, and its executions add up to times (details made by the fan-out too)
    assert sum(counts.values()) == 1000
    assert len(api.details(result_id, status="CANCELLED", limit=1000)) == counts["CANCELLED"]
    assert stopped_runs(system, "max_failures") >= 1


def stopped_runs(system, reason):
    text = requests.get(system.metrics_url("scheduler"), timeout=10).text
    line = next(line for line in text.splitlines()
                if line.startswith(f'stevedore_runs_stopped_total{{reason="{reason}"}}'))
    return float(line.split()[-1])


def test_a_timeout_counts_as_a_failure_and_a_running_execution_is_stopped(api, ready_tasks):
    result_id = api.run(ready_tasks["sleep"]["task_id"], times=6, timeout=1, max_failures=1,
                        env={"SLEEP": "60"})
    result = api.wait_result(result_id, timeout=60)
    assert result["status"] == "ERROR" and result["reason"] == "max_failures"
    details = api.details(result_id)
    timed_out = [d for d in details if d["reason"] and d["reason"].startswith("timeout")]
    assert timed_out and all(d["status"] == "KILLED" for d in timed_out)
    rest = [d for d in details if d not in timed_out]
    assert rest and all(d["status"] in ("CANCELLED", "KILLED") and d["reason"] == "max_failures" for d in rest)


def test_retry_on_exit_codes_retries_only_those_codes(api, ready_tasks):
    ok = ready_tasks["ok"]["task_id"]
    runs = {
        "listed": api.run(ok, times=1, retries=2, retry_on_exit_codes=[7],
                          command=["sh", "-c", FIRST_ATTEMPT_EXITS.format(code=7)]),
        "unlisted": api.run(ok, times=1, retries=2, retry_on_exit_codes=[7],
                            command=["sh", "-c", FIRST_ATTEMPT_EXITS.format(code=3)]),
        "excluded": api.run(ok, times=1, retries=2, no_retry_on_exit_codes=[3],
                            command=["sh", "-c", FIRST_ATTEMPT_EXITS.format(code=3)]),
        "not_excluded": api.run(ok, times=1, retries=2, no_retry_on_exit_codes=[3],
                                command=["sh", "-c", FIRST_ATTEMPT_EXITS.format(code=4)]),
    }
    ended = {name: api.wait_result(result_id, timeout=60) for name, result_id in runs.items()}
    details = {name: api.details(result_id)[0] for name, result_id in runs.items()}
    for name in ("listed", "not_excluded"):
        assert ended[name]["status"] == "COMPLETE", name
        assert [a["status"] for a in details[name]["attempts"]] == ["ERROR", "COMPLETE"], name
    for name in ("unlisted", "excluded"):
        assert ended[name]["status"] == "ERROR", name
        assert details[name]["attempt"] == 1 and details[name]["exit_code"] == 3, name
        assert len(details[name]["attempts"]) == 1, name
        assert details[name]["reason"].endswith("; not retried: exit code 3 and " + (
            "retry_on_exit_codes" if name == "unlisted" else "no_retry_on_exit_codes")), details[name]


def test_a_run_past_its_deadline_is_stopped_and_ends_killed(system, api, ready_tasks):
    result_id = api.run(ready_tasks["sleep"]["task_id"], times=5, deadline=3, env={"SLEEP": "60"})
    wait_until(lambda: api.get(f"/result/{result_id}/").json()["counts"]["RUNNING"] >= 1, timeout=20,
               what="an execution running")
    result = api.wait_result(result_id, timeout=40)
    assert result["status"] == "KILLED" and result["reason"] == "deadline"
    assert result["deadline_at"] == pytest.approx(result["submitted_at"] + 3, abs=0.01)
    # stopped at its deadline (checked every second), its containers given STOP_GRACE_PERIOD (2 s)
    assert result["deadline_at"] <= result["end"] < result["deadline_at"] + 10
    details = api.details(result_id)
    assert all(d["reason"] == "deadline" for d in details), [(d["status"], d["reason"]) for d in details]
    assert {d["status"] for d in details} <= {"KILLED", "CANCELLED"}
    assert sum(d["status"] == "KILLED" for d in details) >= 1
    assert result["counts"]["CANCELLED"] >= 5 - RUNNER_SLOTS
    assert stopped_runs(system, "deadline") >= 1


def test_a_run_that_ends_before_its_deadline_is_not_touched(api, ready_tasks):
    result_id = api.run(ready_tasks["ok"]["task_id"], times=2, deadline=600, max_failures=1)
    result = api.wait_result(result_id, timeout=60)
    assert result["status"] == "COMPLETE" and result["reason"] is None


@pytest.mark.parametrize("fields, field", [
    ({"max_failures": 0}, "max_failures"),
    ({"deadline": 0.5}, "deadline"),
    ({"retry_on_exit_codes": [1, 256]}, "retry_on_exit_codes[1]"),
    ({"retry_on_exit_codes": [1], "no_retry_on_exit_codes": [2]}, "no_retry_on_exit_codes"),
    ({"no_retry_on_exit_codes": "3"}, "no_retry_on_exit_codes"),
])
def test_a_bad_failure_policy_is_refused_naming_its_field(api, ready_tasks, fields, field):
    response = api.post(f"/task/{ready_tasks['ok']['task_id']}/", {"operation": "RUN", "times": 1, **fields})
    assert response.status_code == 400, response.text
    assert response.json()["message"].startswith(f"{field}: "), response.text


# ---------------------------------------------------------------- the CLI

@pytest.fixture(scope="module")
def cli(system):
    """Run the installed ``stevedore ARGS`` against the system."""
    import os
    import subprocess
    import sys

    command = os.path.join(os.path.dirname(sys.executable), "stevedore")

    def run(*args):
        environ = {key: value for key, value in os.environ.items() if not key.startswith("STEVEDORE_")}
        environ.update({"STEVEDORE_URL": system.url, "STEVEDORE_TOKEN": system.token})
        return subprocess.run([command, *args], env=environ, capture_output=True, text=True, timeout=120,
                              stdin=subprocess.DEVNULL)

    return run


def test_the_cli_runs_with_a_failure_policy_and_shows_why_the_run_stopped(cli, api, ready_tasks):
    proc = cli("run", "e2e-fail", "--times", "30", "--max-failures", "2", "--retries", "2",
               "--no-retry-on-exit-codes", "3,4", "--deadline", "600", "--wait")
    assert proc.returncode == 1, proc.stderr
    shown = dict(line.split(None, 1) for line in proc.stdout.splitlines()[:12] if line.strip())
    assert shown["status"] == "ERROR (stopped: max_failures)", proc.stdout
    assert "deadline" in shown
    result = api.get(f"/result/{shown['result']}/").json()
    params = result["params"]
    assert (params["max_failures"], params["no_retry_on_exit_codes"], params["deadline"]) == (2, [3, 4], 600)
    assert result["reason"] == "max_failures" and result["counts"]["CANCELLED"] >= 30 - 2 - RUNNER_SLOTS
    # exit code 3 is not retried: every failed execution ran once
    assert all(d["attempt"] == 1 for d in api.details(result["result_id"], status="ERROR"))


def test_the_cli_refuses_a_bad_failure_policy_in_one_line(cli, ready_tasks):
    both = cli("run", "e2e-ok", "--retry-on-exit-codes", "1", "--no-retry-on-exit-codes", "2")
    assert both.returncode == 2 and "not allowed with argument" in both.stderr
    words = cli("run", "e2e-ok", "--retry-on-exit-codes", "one")
    assert words.returncode == 2 and "expected exit codes separated by commas" in words.stderr
    out_of_range = cli("run", "e2e-ok", "--retry-on-exit-codes", "1,300")
    assert out_of_range.returncode == 2 and out_of_range.stdout == ""
    assert out_of_range.stderr.strip() == (
        "stevedore: retry_on_exit_codes[1]: must be an integer from 0 to 255 (400 VALIDATION_ERROR)")


# ---------------------------------------------------------------- the web UI

@pytest.fixture(scope="module")
def browser(system):
    import os

    from tests.browser import Browser
    from tests.support import ARTIFACTS

    running = Browser(system.url, os.path.join(system.log_dir, "browser-policy.log"),
                      os.path.join(ARTIFACTS, "screenshots")).start()
    yield running
    running.stop()


def test_the_web_ui_runs_with_a_failure_policy_and_shows_why_the_run_stopped(browser, system, api, ready_tasks):
    seen = browser.run("failure_policy", token=system.token, task_id=ready_tasks["fail"]["task_id"])
    assert seen["both_rules_error"] == "give retry_on_exit_codes or no_retry_on_exit_codes, not both"
    assert seen["range_error"].startswith("retry_on_exit_codes[1]: must be an integer from 0 to 255")
    assert "stop after 2 failures" in seen["policy"] and "never retry exit codes 3, 4" in seen["policy"]
    assert "deadline" in seen["policy"]
    assert seen["stopped"] == "max failures reached: the rest were stopped"
    assert "Deadline at" in seen["fields"]
    assert not seen["cancel_visible"] and seen["rerun_visible"]
    result = api.get(f"/result/{seen['result_id']}/").json()
    assert result["status"] == "ERROR" and result["reason"] == "max_failures"
    assert (result["params"]["max_failures"], result["params"]["no_retry_on_exit_codes"],
            result["params"]["deadline"], result["params"]["retries"]) == (2, [3, 4], 600, 2)
