"""The ``stevedore`` command's labels: run / task add / schedule add --label, result ls / task ls -l, against
the whole running system."""
import json
import uuid

import pytest

from tests.e2e.test_cli import cli, field, one_error_line  # noqa: F401 -- the fixture, shared

pytestmark = pytest.mark.e2e


def test_run_with_labels_and_result_ls_filters_by_them(cli, api, ready_tasks):
    sweep = f"cli-{uuid.uuid4().hex[:10]}"
    first = cli("run", "e2e-ok", "--label", f"sweep={sweep}", "--label", "project=vision", "--json")
    assert first.returncode == 0, first.stderr
    first = json.loads(first.stdout)
    assert first["labels"] == {"sweep": sweep, "project": "vision"}
    second = cli("run", "e2e-ok", "--label", f"sweep={sweep}", "--label", "project=audio", "--wait")
    assert second.returncode == 0, second.stderr
    assert field(second.stdout, "labels") == f"project=audio,sweep={sweep}"
    second_id = field(second.stdout, "result")

    listed = cli("result", "ls", "-l", f"sweep={sweep}", "--json")
    assert listed.returncode == 0, listed.stderr
    assert {r["result_id"] for r in json.loads(listed.stdout)} == {first["result_id"], second_id}
    both = cli("result", "ls", "-l", f"sweep={sweep}", "--label", "project=vision", "--json")
    assert [r["result_id"] for r in json.loads(both.stdout)] == [first["result_id"]]
    keyed = cli("result", "ls", "-l", f"sweep={sweep}", "-l", "project", "--json")
    assert len(json.loads(keyed.stdout)) == 2
    table = cli("result", "ls", "-l", f"sweep={sweep}").stdout.splitlines()
    assert table[0].split()[-1] == "LABELS"
    assert table[1].endswith(f"project=audio,sweep={sweep}")  # newest first
    shown = cli("result", "show", first["result_id"])
    assert field(shown.stdout, "labels") == f"project=vision,sweep={sweep}"
    assert "labels" not in field(shown.stdout, "params")  # shown once, on their own line


def test_a_tes_task_is_marked_from_tes_in_result_ls_and_show(cli, api, test_images):
    tes_id = api.run_tes(test_images["ok"], ["echo", "from tes"])
    table = cli("result", "ls", "-l", "ga4gh.org/tes=task").stdout.splitlines()
    assert "FROM" in table[0].split()
    [row] = [line for line in table[1:] if line.startswith(tes_id)]
    assert " TES " in row  # the task's name is "tes: <image>": the mark is the column's, upper case
    shown = cli("result", "show", tes_id)
    assert field(shown.stdout, "from").startswith("GA4GH TES")
    plain = cli("result", "ls", "-l", "sweep").stdout.splitlines()  # no TES run among them: no such column
    assert not plain or "FROM" not in plain[0].split()


def test_bad_labels_and_filters_are_told_in_one_line(cli, ready_tasks):
    reserved = cli("run", "e2e-ok", "--label", "stevedore.managed=false")
    assert reserved.returncode == 2
    assert one_error_line(reserved).startswith("stevedore: labels.stevedore.managed: is reserved")
    no_value = cli("run", "e2e-ok", "--label", "sweep")
    assert no_value.returncode == 2
    assert one_error_line(no_value) == "stevedore: --label: expected KEY=VALUE, got 'sweep'"
    bad_filter = cli("result", "ls", "-l", "a==b")
    assert bad_filter.returncode == 2 and one_error_line(bad_filter).startswith("stevedore: label: ")


def test_task_add_with_labels_and_task_ls_filters_by_them(cli, api, test_images):
    team = f"team-{uuid.uuid4().hex[:10]}"
    name = f"cli-labelled-{uuid.uuid4().hex[:6]}"
    added = cli("task", "add", test_images["ok"], "--name", name, "--label", f"team={team}", "--wait")
    assert added.returncode == 0, added.stderr
    assert field(added.stdout, "labels") == f"team={team}"
    listed = cli("task", "ls", "-l", f"team={team}", "--json")
    assert [t["name"] for t in json.loads(listed.stdout)] == [name]
    assert json.loads(cli("task", "ls", "-l", f"team={team}", "-l", "tier", "--json").stdout) == []
    table = cli("task", "ls", "--label", f"team={team}").stdout.splitlines()
    assert table[0].split()[-1] == "LABELS" and table[1].endswith(f"team={team}")
    assert cli("task", "rm", name).returncode == 0


def test_schedule_add_with_labels_gives_its_runs_the_labels(cli, api):
    sweep = f"cron-{uuid.uuid4().hex[:10]}"
    added = cli("schedule", "add", "e2e-ok", "0 0 1 1 *", "--suspend", "--label", f"sweep={sweep}", "--json")
    assert added.returncode == 0, added.stderr
    schedule = json.loads(added.stdout)
    assert schedule["run"]["labels"] == {"sweep": sweep}
    fired = cli("schedule", "run", schedule["schedule_id"], "--json")
    assert fired.returncode == 0, fired.stderr
    assert json.loads(fired.stdout)["labels"] == {"sweep": sweep}
    listed = json.loads(cli("result", "ls", "-l", f"sweep={sweep}", "--json").stdout)
    assert [r["schedule_id"] for r in listed] == [schedule["schedule_id"]]
    assert cli("schedule", "rm", schedule["schedule_id"]).returncode == 0
