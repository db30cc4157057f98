"""The ``stevedore`` command's --matrix, --items and ``result set``, against the whole running system."""
import json

import pytest

from tests.e2e.test_cli import cli, field, one_error_line  # noqa: F401 -- the fixture, shared
from tests.support import wait_until

pytestmark = pytest.mark.e2e

SAY = "sh -c 'echo $A-$B'"


def test_run_with_matrix_runs_each_combination_and_show_lists_their_params(cli, api, ready_tasks):
    proc = cli("run", "e2e-ok", "--matrix", "A=1,2", "--matrix", "B=x,y,z", "--command", SAY, "--json", "--wait")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["times"] == 6 and result["params"]["per_execution"] == "matrix"
    outputs = [cli("logs", result["result_id"], str(i)).stdout for i in range(6)]
    assert outputs == ["1-x\n", "1-y\n", "1-z\n", "2-x\n", "2-y\n", "2-z\n"]
    shown = cli("result", "show", result["result_id"])
    table = shown.stdout.split("\n\n", 1)[1].splitlines()
    assert table[0].split()[-1] == "PARAMS"
    assert table[4].split()[0] == "3" and table[4].endswith("A=2 B=x")


def test_run_with_items_from_a_file_or_stdin(cli, api, ready_tasks, tmp_path):
    items = [{"env": {"A": "one"}}, {"command": ["echo", "own"]}]
    path = tmp_path / "items.json"
    path.write_text(json.dumps(items))
    proc = cli("run", "e2e-ok", "--items", str(path), "--env", "B=run", "--command", SAY, "--wait")
    assert proc.returncode == 0, proc.stderr
    result_id = field(proc.stdout, "result")
    assert [cli("logs", result_id, str(i)).stdout for i in range(2)] == ["one-run\n", "own\n"]
    mismatch = cli("run", "e2e-ok", "--items", str(path), "--times", "3")
    assert mismatch.returncode == 2
    assert one_error_line(mismatch).startswith("stevedore: times: must equal the number of executions items makes (2)")
    missing = cli("run", "e2e-ok", "--items", str(tmp_path / "absent.json"))
    assert missing.returncode == 2 and "--items: cannot read" in one_error_line(missing)
    both = cli("run", "e2e-ok", "--items", str(path), "--matrix", "A=1")
    assert both.returncode == 2 and one_error_line(both) == "stevedore: --items and --matrix: give one of them"


def test_result_set_raises_parallelism_of_a_running_result(cli, api, ready_tasks):
    result_id = api.run(ready_tasks["sleep"]["task_id"], times=3, parallelism=1, env={"SLEEP": "4"})
    proc = cli("result", "set", result_id, "--parallelism", "2", "--priority", "7")
    assert proc.returncode == 0, proc.stderr
    assert field(proc.stdout, "parallelism") == "2" and field(proc.stdout, "priority") == "7"
    wait_until(lambda: api.get(f"/result/{result_id}/").json()["counts"]["RUNNING"] == 2, timeout=60,
               what="two executions running at once")
    as_json = json.loads(cli("result", "set", result_id, "--parallelism", "none", "--json").stdout)
    assert as_json["parallelism"] is None
    nothing = cli("result", "set", result_id)
    assert nothing.returncode == 2
    assert one_error_line(nothing) == "stevedore: result set: give --parallelism and/or --priority"
    api.wait_result(result_id, timeout=60)
    ended = cli("result", "set", result_id, "--priority", "1")
    assert ended.returncode == 2 and "409 CONFLICT" in one_error_line(ended)
