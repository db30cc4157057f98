"""The web UI's per-execution parameters (the RUN form's matrix and items, each execution's parameters) and
its control to change a running run, in a real browser against the whole running system."""
import os

import pytest

from tests.browser import Browser
from tests.support import ARTIFACTS

pytestmark = pytest.mark.e2e

SCREENSHOTS = os.path.join(ARTIFACTS, "screenshots")


@pytest.fixture(scope="module")
def ui(system):
    browser = Browser(system.url, os.path.join(system.log_dir, "browser-params.log"), SCREENSHOTS).start()
    yield lambda scenario, **args: browser.run(scenario, token=system.token, **args)
    browser.stop()


def test_a_matrix_run_from_the_form_shows_each_executions_parameters(ui, api, ready_tasks):
    seen = ui("run_with_matrix", task_id=ready_tasks["ok"]["task_id"])
    assert seen["not_json"].startswith("is not JSON")
    assert seen["bad_item"] == "items[1].env.X: must be a string"
    assert seen["header_visible"] is True
    assert seen["params"] == ["A=1 B=x", "A=1 B=y", "A=1 B=z", "A=2 B=x", "A=2 B=y", "A=2 B=z"]
    assert "a matrix: each execution runs one combination" in seen["fields"]
    assert "A=2 B=y" in seen["execution_fields"]
    result = api.get(f"/result/{seen['result_id']}/").json()
    assert result["times"] == 6 and result["params"]["per_execution"] == "matrix"


def test_a_plain_run_shows_no_parameters_column_and_no_change_control_once_ended(ui, api, ready_tasks):
    result_id = api.run(ready_tasks["ok"]["task_id"], times=1)
    api.wait_result(result_id)
    assert ui("plain_result_has_no_parameters_column", result_id=result_id) == {
        "header_visible": False, "change_visible": False}


def test_parallelism_is_raised_from_the_result_page(ui, api, ready_tasks):
    result_id = api.run(ready_tasks["sleep"]["task_id"], times=4, parallelism=1, env={"SLEEP": "4"})
    seen = ui("change_running_run", result_id=result_id)
    assert seen["shown"] == {"parallelism": "1", "priority": "5"}
    assert seen["bad"].startswith("must be an integer from 1 to")
    assert "Changed parallelism to 3 and priority to 8" in seen["flash"]
    assert "3 (run with 1)" in seen["fields"] and "8 (run with 5)" in seen["fields"]
    assert seen["hidden_after"] and seen["hidden_on_reload"]
    result = api.get(f"/result/{result_id}/").json()
    assert (result["parallelism"], result["priority"]) == (3, 8)
    starts = sorted((d["start"], d["end"]) for d in api.details(result_id))
    # after the change two ran at once (two runners): some executions overlapped
    assert any(start < end for (_, end), (start, _) in zip(starts, starts[1:]))
