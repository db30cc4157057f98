"""The installed ``stevedore`` command, run as a person or a script would, against the whole running system."""
import json
import os
import re
import subprocess
import sys
import uuid

import pytest

from tests.support import ROOT, free_port, wait_until

pytestmark = pytest.mark.e2e

# the console script pip installs beside the interpreter running the tests
COMMAND = os.path.join(os.path.dirname(sys.executable), "stevedore")
ID = re.compile(r"^[0-9a-f]{32}$")


@pytest.fixture(scope="module")
def cli(system):
    """Run ``stevedore ARGS`` with STEVEDORE_URL pointing at the system; returns the CompletedProcess."""

    def run(*args, env=None, timeout=120):
        environ = {key: value for key, value in os.environ.items() if not key.startswith("STEVEDORE_")}
        environ.update({"STEVEDORE_URL": system.url, "STEVEDORE_TOKEN": system.token, **(env or {})})
        # the code under test (a worktree's), not the checkout the console script was installed from
        environ["PYTHONPATH"] = os.pathsep.join(filter(None, (ROOT, environ.get("PYTHONPATH"))))
        return subprocess.run([COMMAND, *args], env=environ, capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)

    return run


def field(stdout, label):
    """The value of ``label`` in `show` output (``label   value`` lines)."""
    match = re.search(rf"^{label} +(.*)$", stdout, re.MULTILINE)
    assert match, f"no {label!r} line in:\n{stdout}"
    return match.group(1)


def one_error_line(proc):
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("stevedore: ")
    return lines[0]


def test_command_is_installed_with_the_package(cli):
    assert os.access(COMMAND, os.X_OK), f"{COMMAND} is missing: reinstall the package (pip install -e .)"
    proc = cli("--version")
    assert proc.returncode == 0
    assert proc.stdout.startswith("stevedore ")


def test_task_add_wait_pulls_the_image_and_shows_the_task_ready(cli, test_images):
    name = f"cli-{uuid.uuid4().hex[:8]}"
    proc = cli("task", "add", test_images["env"], "--name", name, "--wait")
    assert proc.returncode == 0, proc.stderr
    assert field(proc.stdout, "status") == "READY"
    assert field(proc.stdout, "name") == name
    assert field(proc.stdout, "digest").startswith(test_images["env"].rsplit(":", 1)[0] + "@sha256:")
    task_id = field(proc.stdout, "id")

    shown = cli("task", "show", name, "--json")
    assert shown.returncode == 0, shown.stderr
    task = json.loads(shown.stdout)
    assert task["task_id"] == task_id and task["status"] == "READY"
    by_id = cli("--json", "task", "show", task_id)
    assert json.loads(by_id.stdout)["name"] == name


def test_task_add_wait_exits_1_with_the_import_error(cli, image_registry):
    proc = cli("task", "add", f"{image_registry.address}/stevedore-test/not-there:1",
               "--name", f"cli-{uuid.uuid4().hex[:8]}", "--wait")
    assert proc.returncode == 1
    assert field(proc.stdout, "status") == "ERROR"
    last = proc.stderr.splitlines()[-1]
    assert re.match(r"stevedore: task cli-\w+ is ERROR: image not found", last), proc.stderr


def test_task_ls_shows_a_table_and_filters_by_status(cli, ready_tasks):
    proc = cli("task", "ls")
    assert proc.returncode == 0, proc.stderr
    header, *rows = proc.stdout.splitlines()
    # (a LABELS column follows when some task has labels: test_labels_cli.py)
    assert header.split()[:5] == ["ID", "NAME", "STATUS", "REPOSITORY", "CREATED"]
    ok = ready_tasks["ok"]
    [row] = [row for row in rows if row.startswith(ok["task_id"])]
    assert row.split()[1:4] == ["e2e-ok", "READY", ok["repository"]]
    # every column starts where its header does
    assert row.index("READY") == header.index("STATUS")

    listed = json.loads(cli("task", "ls", "--status", "READY", "--json").stdout)
    assert ok["task_id"] in {task["task_id"] for task in listed}
    assert all(task["status"] == "READY" for task in listed)


def test_run_three_times_with_wait_shows_progress_and_exits_0(cli, api, ready_tasks):
    proc = cli("run", "e2e-ok", "--times", "3", "--wait")
    assert proc.returncode == 0, proc.stderr
    # not a terminal: plain progress lines, the last one final
    progress = proc.stderr.splitlines()
    assert progress and all(line.startswith("[") for line in progress), proc.stderr
    assert re.match(r"\[#+\]  3/3  COMPLETE 3  ", progress[-1])
    assert field(proc.stdout, "status") == "COMPLETE"
    assert field(proc.stdout, "executions") == "3/3 finished: COMPLETE 3"
    result = api.get(f"/result/{field(proc.stdout, 'result')}/").json()
    assert result["status"] == "COMPLETE" and result["counts"]["COMPLETE"] == 3
    assert result["task_id"] == ready_tasks["ok"]["task_id"]


def test_failing_run_with_wait_exits_1_and_lists_the_failed_executions(cli, ready_tasks):
    proc = cli("run", "e2e-fail", "--times", "2", "--wait")
    assert proc.returncode == 1
    result_id = field(proc.stdout, "result")
    assert proc.stderr.splitlines()[-1] == (
        f"stevedore: result {result_id} is ERROR: 2 of 2 executions did not complete")
    failed = [line for line in proc.stdout.splitlines() if "exited with code 3" in line]
    assert [line.split()[0] for line in failed] == ["0", "1"]


def test_run_without_wait_prints_the_result_id(cli, api, ready_tasks):
    proc = cli("run", ready_tasks["ok"]["task_id"], "--times", "2")
    assert proc.returncode == 0, proc.stderr
    result_id = proc.stdout.strip()
    assert ID.match(result_id), proc.stdout
    assert api.wait_result(result_id)["counts"]["COMPLETE"] == 2


def test_run_options_reach_the_executions(cli, api, ready_tasks):
    proc = cli("run", "e2e-ok", "--json", "--wait", "--times", "2",
               "--command", "sh -c 'echo $GREETING $STEVEDORE_EXECUTION_INDEX'",
               "--env", "GREETING=bonjour", "--env", "EMPTY=", "--memory", "64m", "--cpus", "0.5",
               "--priority", "7", "--retries", "1", "--timeout", "60", "--parallelism", "1")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["status"] == "COMPLETE"
    params = result["params"]
    assert params["env"] == {"GREETING": "bonjour", "EMPTY": ""}
    assert (params["memory"], params["cpus"], params["priority"], params["retries"],
            params["timeout"], params["parallelism"]) == ("64m", 0.5, 7, 1, 60, 1)
    logs = cli("logs", result["result_id"], "1")
    assert logs.returncode == 0 and logs.stdout == "bonjour 1\n"


def test_result_ls_and_show(cli, api, ready_tasks):
    result_id = api.run(ready_tasks["ok"]["task_id"], times=2)
    api.wait_result(result_id)
    details = api.details(result_id)

    listing = cli("result", "ls", "--task", "e2e-ok", "--limit", "5")
    assert listing.returncode == 0, listing.stderr
    header, *rows = listing.stdout.splitlines()
    # (a LABELS column follows when some result listed has labels: test_labels_cli.py)
    assert header.split()[:6] == ["ID", "TASK", "STATUS", "DONE", "SUBMITTED", "DURATION"]
    assert 1 <= len(rows) <= 5
    [row] = [row for row in rows if row.startswith(result_id)]
    assert row.split()[1:4] == ["e2e-ok", "COMPLETE", "2/2"]
    as_json = json.loads(cli("--json", "result", "ls", "--status", "complete", "--limit", "3").stdout)
    assert 1 <= len(as_json) <= 3 and all(r["status"] == "COMPLETE" for r in as_json)

    shown = cli("result", "show", result_id)
    assert shown.returncode == 0, shown.stderr
    assert field(shown.stdout, "status") == "COMPLETE"
    assert field(shown.stdout, "task") == f"e2e-ok ({ready_tasks['ok']['task_id']})"
    table = shown.stdout.split("\n\n", 1)[1].splitlines()
    assert table[0].split()[:4] == ["INDEX", "DETAIL_ID", "STATUS", "EXIT"]
    assert [line.split()[:4] for line in table[1:]] == [
        [str(d["index"]), d["detail_id"], "COMPLETE", "0"] for d in details]
    full = json.loads(cli("result", "show", result_id, "--json").stdout)
    assert full["result_id"] == result_id
    assert [d["detail_id"] for d in full["executions"]] == [d["detail_id"] for d in details]


def test_logs_by_index_or_detail_id(cli, api, ready_tasks):
    result_id = api.run(ready_tasks["fail"]["task_id"], times=1)
    api.wait_result(result_id)
    [detail] = api.details(result_id)

    by_index = cli("logs", result_id, "0")
    assert by_index.returncode == 0
    assert (by_index.stdout, by_index.stderr) == ("", "failing on purpose\n")
    by_id = cli("logs", result_id, detail["detail_id"], "--json")
    assert json.loads(by_id.stdout)["stderr"] == "failing on purpose\n"

    missing = cli("logs", result_id, "4")
    assert missing.returncode == 2
    assert "has no execution 4" in one_error_line(missing)


def test_logs_follow_waits_for_the_execution_and_prints_its_output(cli, api, ready_tasks):
    result_id = api.run(ready_tasks["sleep"]["task_id"], times=1, env={"SLEEP": "2"})
    proc = cli("logs", result_id, "0", "--follow")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "slept 2s\n"
    assert api.details(result_id)[0]["status"] == "COMPLETE"


def test_validation_error_is_one_line_with_exit_2(cli, ready_tasks):
    proc = cli("run", "e2e-ok", "--times", "0")
    assert proc.returncode == 2
    assert one_error_line(proc) == \
        "stevedore: times: must be an integer from 1 to 100000 (400 VALIDATION_ERROR)"


def test_unknown_task_and_bad_arguments_are_one_line_with_exit_2(cli):
    unknown = cli("run", "no-such-task-here")
    assert unknown.returncode == 2
    assert one_error_line(unknown) == "stevedore: no task named 'no-such-task-here'"
    bad_env = cli("run", "e2e-ok", "--env", "=oops")
    assert bad_env.returncode == 2 and "--env" in one_error_line(bad_env)
    bad_int = cli("run", "e2e-ok", "--times", "many")
    assert bad_int.returncode == 2
    assert one_error_line(bad_int) == \
        "stevedore: argument --times: invalid int value: 'many' (see stevedore run --help)"


def test_unreachable_api_is_one_clear_line(cli):
    url = f"http://127.0.0.1:{free_port()}"
    proc = cli("task", "ls", env={"STEVEDORE_URL": url})
    assert proc.returncode == 1
    assert one_error_line(proc).startswith(
        f"stevedore: cannot reach the Stevedore API at {url} (connection refused)")
    flag = cli("--url", url, "result", "ls")
    assert flag.returncode == 1 and url in one_error_line(flag)


def test_cancel_stops_a_result_and_one_execution(cli, api, ready_tasks):
    result_id = api.run(ready_tasks["sleep"]["task_id"], times=3, parallelism=1, env={"SLEEP": "10"})
    wait_until(lambda: api.get(f"/result/{result_id}/").json()["status"] == "RUNNING",
               timeout=30, what="the result to run")

    one = cli("cancel", result_id, "--detail", "2")
    assert one.returncode == 0, one.stderr
    assert one.stdout.startswith("cancel requested for execution ")
    wait_until(lambda: api.details(result_id)[2]["status"] == "CANCELLED", timeout=30,
               what="execution 2 to be cancelled")

    every = cli("cancel", result_id)
    assert every.returncode == 0, every.stderr
    assert every.stdout.startswith(f"cancel requested for result {result_id}")
    assert api.wait_result(result_id, timeout=60)["status"] == "KILLED"  # execution 0 was running


def test_task_import_then_rm(cli, api, test_images):
    task = api.register(test_images["ok"], name=f"cli-import-{uuid.uuid4().hex[:6]}")
    imported = cli("task", "import", task["name"], "--wait")
    assert imported.returncode == 0, imported.stderr
    assert field(imported.stdout, "status") == "READY"
    assert api.get(f"/task/{task['task_id']}/").json()["imported_at"] > task["imported_at"]

    removed = cli("task", "rm", task["name"])
    assert removed.returncode == 0, removed.stderr
    assert removed.stdout.strip() == f"deleted task {task['name']} ({task['task_id']})"
    assert api.get(f"/task/{task['task_id']}/").status_code == 404
    again = cli("task", "rm", task["task_id"])
    assert again.returncode == 2
    assert one_error_line(again) == f"stevedore: no task named {task['task_id']!r}"


def test_rerun_runs_the_failed_executions_again(cli, api, ready_tasks):
    result_id = api.run(ready_tasks["fail"]["task_id"], times=2)
    assert api.wait_result(result_id)["status"] == "ERROR"
    proc = cli("rerun", result_id, "--wait", "--json")
    assert proc.returncode == 1  # they fail again
    rerun = json.loads(proc.stdout)
    assert rerun["rerun_of"] == result_id and rerun["times"] == 2 and rerun["counts"]["ERROR"] == 2
    assert "did not complete" in proc.stderr.splitlines()[-1]


def test_result_rm_deletes_an_ended_result_and_refuses_a_running_one(cli, api, ready_tasks):
    ended = api.run(ready_tasks["ok"]["task_id"], times=1)
    api.wait_result(ended)
    removed = cli("result", "rm", ended)
    assert removed.returncode == 0, removed.stderr
    assert removed.stdout.strip() == f"deleted result {ended} with its executions and their output"
    assert api.get(f"/result/{ended}/").status_code == 404
    again = cli("result", "rm", ended, "--json")
    assert again.returncode == 2
    assert one_error_line(again) == f"stevedore: result_id: no result {ended!r} (404 NOT_FOUND)"

    running = api.run(ready_tasks["sleep"]["task_id"], times=1, env={"SLEEP": "30"})
    refused = cli("result", "rm", running)
    assert refused.returncode == 2
    assert one_error_line(refused).endswith("cancel it or let it end first (409 CONFLICT)")
    api.post(f"/result/{running}/", {"operation": "CANCEL"})
    api.wait_result(running, timeout=60)
    removed = cli("result", "rm", running, "--json")
    assert removed.returncode == 0 and json.loads(removed.stdout) == {"result_id": running, "deleted": True}


def test_run_after_waits_for_the_other_run_and_says_so(cli, ready_tasks):
    first = cli("run", ready_tasks["sleep"]["task_id"], "--times", "1", "--env", "SLEEP=3")
    assert first.returncode == 0, first.stderr
    first_id = first.stdout.strip()
    second = cli("run", ready_tasks["ok"]["task_id"], "--times", "2", "--after", first_id)
    assert second.returncode == 0, second.stderr
    second_id = second.stdout.strip()
    shown = cli("result", "show", second_id)
    if field(shown.stdout, "status") == "QUEUED":  # the first run may have ended already on a slow machine
        assert field(shown.stdout, "waits for") == f"{first_id} (COMPLETE)"
    waited = cli("run", ready_tasks["ok"]["task_id"], "--after", f"{second_id}:ENDED", "--wait", "--json")
    assert waited.returncode == 0, waited.stderr
    result = json.loads(waited.stdout)
    assert result["status"] == "COMPLETE"
    assert result["params"]["after"] == [{"result_id": second_id, "when": "ENDED"}]


def test_run_after_a_failed_run_shows_why_it_was_cancelled(cli, ready_tasks):
    failed = cli("run", ready_tasks["fail"]["task_id"], "--wait")
    assert failed.returncode == 1
    failed_id = field(failed.stdout, "result")
    proc = cli("run", ready_tasks["ok"]["task_id"], "--after", failed_id, "--wait")
    assert proc.returncode == 1
    assert field(proc.stdout, "status") == "CANCELLED"
    assert field(proc.stdout, "reason") == f"result {failed_id} ended ERROR; this run waited for it to end COMPLETE"


def test_run_after_an_unknown_run_is_refused_naming_the_field(cli, ready_tasks):
    proc = cli("run", ready_tasks["ok"]["task_id"], "--after", uuid.uuid4().hex)
    assert proc.returncode == 2
    assert "after[0].result_id" in one_error_line(proc)
