"""``stevedore schedule add|ls|show|suspend|resume|run|rm``: the installed command against the running system."""
import json
import os
import re
import subprocess
import sys

import pytest

pytestmark = pytest.mark.e2e

COMMAND = os.path.join(os.path.dirname(sys.executable), "stevedore")
ID = re.compile(r"^[0-9a-f]{32}$")


@pytest.fixture(scope="module")
def cli(system):
    def run(*args, timeout=120):
        environ = {key: value for key, value in os.environ.items() if not key.startswith("STEVEDORE_")}
        environ.update({"STEVEDORE_URL": system.url, "STEVEDORE_TOKEN": system.token})
        return subprocess.run([COMMAND, *args], env=environ, capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)

    return run


def field(stdout, label):
    match = re.search(rf"^{label} +(.*)$", stdout, re.MULTILINE)
    assert match, f"no {label!r} line in:\n{stdout}"
    return match.group(1)


def test_schedule_add_ls_show_suspend_resume_run_rm(cli, ready_tasks, api):
    task = ready_tasks["ok"]
    added = cli("schedule", "add", task["name"], "0 6 * * MON-FRI", "--tz", "Europe/Berlin", "--policy", "Forbid",
                "--times", "2", "--env", "MODE=nightly", "--name", "weekday mornings", "--deadline", "600")
    assert added.returncode == 0, added.stderr
    schedule_id = added.stdout.strip()
    assert ID.match(schedule_id) and "next run: 20" in added.stderr

    listed = cli("schedule", "ls", "--task", task["task_id"])
    assert listed.returncode == 0, listed.stderr
    line = next(row for row in listed.stdout.splitlines() if row.startswith(schedule_id))
    assert "0 6 * * MON-FRI" in line and "Europe/Berlin" in line and "Forbid" in line

    shown = cli("schedule", "show", schedule_id)
    assert shown.returncode == 0, shown.stderr
    assert field(shown.stdout, "cron") == "0 6 * * MON-FRI (Europe/Berlin)"
    assert field(shown.stdout, "suspended") == "no" and field(shown.stdout, "deadline") == "600s"
    assert "MODE" in field(shown.stdout, "run") and "times=2" in field(shown.stdout, "run")

    suspended = cli("schedule", "suspend", schedule_id)
    assert suspended.returncode == 0 and "suspended schedule" in suspended.stdout
    assert json.loads(cli("--json", "schedule", "show", schedule_id).stdout)["next_run_at"] is None
    resumed = cli("schedule", "resume", schedule_id)
    assert resumed.returncode == 0 and "resumed schedule" in resumed.stdout
    assert json.loads(cli("--json", "schedule", "show", schedule_id).stdout)["next_run_at"] is not None

    ran = cli("schedule", "run", schedule_id, "--wait")
    assert ran.returncode == 0, ran.stderr
    assert field(ran.stdout, "status") == "COMPLETE"
    result_id = field(ran.stdout, "result")
    assert api.get(f"/result/{result_id}/").json()["schedule_id"] == schedule_id
    shown = cli("schedule", "show", schedule_id)
    assert "last fires:" in shown.stdout and result_id in shown.stdout and "run now" in shown.stdout

    removed = cli("schedule", "rm", schedule_id)
    assert removed.returncode == 0 and "deleted schedule" in removed.stdout
    gone = cli("schedule", "show", schedule_id)
    assert gone.returncode == 2 and "no schedule" in gone.stderr and "404 NOT_FOUND" in gone.stderr


def test_schedule_add_with_a_bad_cron_says_which_field_in_one_line(cli, ready_tasks):
    proc = cli("schedule", "add", ready_tasks["ok"]["name"], "H * * * *")
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert proc.stdout == "" and len(proc.stderr.splitlines()) == 1
    assert proc.stderr.startswith("stevedore: ") and "cron: " in proc.stderr
