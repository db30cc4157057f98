"""Per-execution parameters (items, matrix) and changing a running run (PATCH /result/{id}/), on the real
runners: each execution's own output proves what it was given."""
import itertools

import pytest
from nameko.events import event_handler
from nameko.testing.services import entrypoint_waiter

from tests.support import wait_until

pytestmark = pytest.mark.e2e

SAY = ["sh", "-c", "echo LR=$LR SEED=$SEED BASE=$BASE INDEX=$STEVEDORE_EXECUTION_INDEX TIMES=$STEVEDORE_TIMES"]


def stdout_of(api, result_id, detail):
    return api.get(f"/result/{result_id}/detail/{detail['detail_id']}/logs/").json()["stdout"]


def said(text):
    return dict(word.split("=", 1) for word in text.split())


def test_a_matrix_of_six_gives_each_execution_its_own_combination(api, ready_tasks):
    matrix = {"LR": ["0.1", "0.01"], "SEED": ["1", "2", "3"]}
    response = api.post(f"/task/{ready_tasks['env']['task_id']}/",
                        {"operation": "RUN", "matrix": matrix, "env": {"BASE": "b", "LR": "overridden"},
                         "command": SAY})
    assert response.status_code == 202, response.text
    result = response.json()
    assert result["times"] == 6 and result["params"]["per_execution"] == "matrix"
    assert "matrix" not in result["params"]
    assert api.wait_result(result["result_id"], timeout=90)["status"] == "COMPLETE"
    combinations = list(itertools.product(matrix["LR"], matrix["SEED"]))
    details = api.details(result["result_id"])
    assert [d["index"] for d in details] == list(range(6))
    for detail in details:
        lr, seed = combinations[detail["index"]]
        assert detail["params"] == {"env": {"LR": lr, "SEED": seed}}
        assert said(stdout_of(api, result["result_id"], detail)) == {
            "LR": lr, "SEED": seed, "BASE": "b", "INDEX": str(detail["index"]), "TIMES": "6"}


def test_items_run_each_with_its_own_command_and_env(api, ready_tasks):
    items = [{"command": ["sh", "-c", "echo first $WHO"]}, {"command": "echo 'second one'"},
             {"env": {"WHO": "third"}}]
    result_id = api.post(f"/task/{ready_tasks['ok']['task_id']}/",
                         {"operation": "RUN", "times": 3, "items": items, "env": {"WHO": "run"},
                          "command": ["sh", "-c", "echo default $WHO"]}).json()["result_id"]
    assert api.wait_result(result_id, timeout=90)["status"] == "COMPLETE"
    details = api.details(result_id)
    assert [d["params"] for d in details] == [
        {"command": ["sh", "-c", "echo first $WHO"]}, {"command": ["echo", "second one"]}, {"env": {"WHO": "third"}}]
    assert [stdout_of(api, result_id, d) for d in details] == ["first run\n", "second one\n", "default third\n"]
    detail = api.get(f"/result/{result_id}/detail/{details[1]['detail_id']}/").json()
    assert detail["params"] == {"command": ["echo", "second one"]}


def test_a_plain_run_shows_no_params_per_execution_and_gets_stevedore_times(api, ready_tasks):
    result_id = api.run(ready_tasks["env"]["task_id"], times=2)
    assert api.wait_result(result_id)["status"] == "COMPLETE"
    for detail in api.details(result_id):
        assert detail["params"] is None
        assert "STEVEDORE_TIMES=2" in stdout_of(api, result_id, detail).split()


@pytest.mark.parametrize("body, field", [
    ({"times": 5, "matrix": {"A": ["1", "2"]}}, "times"),
    ({"items": [{}], "matrix": {"A": ["1"]}}, "matrix"),
    ({"items": [{}, {"env": {"X": 1}}]}, "items[1].env.X"),
    ({"matrix": {"A": ["1", None]}}, "matrix.A[1]"),
    ({"env": {"A": "1"}}, "times"),
])
def test_a_run_whose_items_or_matrix_do_not_fit_is_refused_naming_the_field(api, ready_tasks, body, field):
    response = api.post(f"/task/{ready_tasks['ok']['task_id']}/", {"operation": "RUN", **body})
    assert response.status_code == 400, response.text
    assert response.json()["message"].startswith(f"{field}: "), response.text


def test_a_rerun_of_failed_items_runs_each_again_with_its_own_parameters_and_index(api, ready_tasks):
    items = [{"env": {"V": "good"}}, {"env": {"V": "bad"}}, {"env": {"V": "fine"}}, {"env": {"V": "bad"}}]
    command = ["sh", "-c", "echo V=$V INDEX=$STEVEDORE_EXECUTION_INDEX TIMES=$STEVEDORE_TIMES; [ $V != bad ]"]
    first = api.post(f"/task/{ready_tasks['ok']['task_id']}/",
                     {"operation": "RUN", "items": items, "command": command}).json()["result_id"]
    assert api.wait_result(first, timeout=90)["status"] == "ERROR"
    response = api.post(f"/result/{first}/", {"operation": "RERUN_FAILED"})
    assert response.status_code == 202, response.text
    rerun = response.json()["result_id"]
    assert api.wait_result(rerun, timeout=90)["status"] == "ERROR"  # bad stays bad
    details = api.details(rerun)
    assert [d["index"] for d in details] == [1, 3]
    for detail in details:
        assert detail["params"] == {"env": {"V": "bad"}}
        assert said(stdout_of(api, rerun, detail)) == {"V": "bad", "INDEX": str(detail["index"]), "TIMES": "4"}


class Subscriber:
    name = "e2e_change_subscriber"
    seen = []

    @event_handler("scheduler", "result_changed")
    def on_result_changed(self, payload):
        self.seen.append(payload)


def running(api, result_id):
    return api.get(f"/result/{result_id}/").json()["counts"]["RUNNING"]


def test_raising_parallelism_mid_run_lets_more_run_at_once(api, ready_tasks, container_factory, session_amqp_uri):
    container = container_factory(Subscriber, {"AMQP_URI": session_amqp_uri})
    container.start()
    result_id = api.run(ready_tasks["sleep"]["task_id"], times=4, parallelism=1, env={"SLEEP": "6"})
    wait_until(lambda: running(api, result_id) == 1, timeout=60, what="the first execution running")
    assert all(running(api, result_id) <= 1 for _ in range(5))  # held to 1
    with entrypoint_waiter(container, "on_result_changed", timeout=30,
                           callback=lambda wc, r, e: wc.args[0]["result_id"] == result_id):
        response = api.http.patch(f"{api.base_url}/result/{result_id}/", json={"parallelism": 3}, timeout=30)
    assert response.status_code == 200, response.text
    changed = response.json()
    assert changed["parallelism"] == 3 and changed["params"]["parallelism"] == 1
    event = [p for p in Subscriber.seen if p["result_id"] == result_id][-1]
    assert event == {"result_id": result_id, "changed": ["parallelism"], "previous": {"parallelism": 1},
                     "parallelism": 3, "priority": 5, "team": "default", "submitted_by": "admin"}
    # the e2e system has two runners of one slot each: both busy with this run now
    wait_until(lambda: running(api, result_id) >= 2, timeout=30, what="two executions running at once")
    assert api.wait_result(result_id, timeout=120)["status"] == "COMPLETE"
    assert api.get(f"/result/{result_id}/").json()["parallelism"] == 3


def test_a_patch_changes_priority_and_is_refused_once_the_run_ended(api, ready_tasks):
    result_id = api.run(ready_tasks["sleep"]["task_id"], times=2, parallelism=1, env={"SLEEP": "3"})
    response = api.http.patch(f"{api.base_url}/result/{result_id}/", json={"priority": 8}, timeout=30)
    assert response.status_code == 200, response.text
    assert response.json()["priority"] == 8 and response.json()["params"]["priority"] == 5
    bad = api.http.patch(f"{api.base_url}/result/{result_id}/", json={"parallelism": 0}, timeout=30)
    assert bad.status_code == 400 and bad.json()["message"].startswith("parallelism: ")
    empty = api.http.patch(f"{api.base_url}/result/{result_id}/", json={}, timeout=30)
    assert empty.status_code == 400 and empty.json()["message"].startswith("body: ")
    assert api.wait_result(result_id, timeout=60)["status"] == "COMPLETE"
    ended = api.http.patch(f"{api.base_url}/result/{result_id}/", json={"priority": 1}, timeout=30)
    assert ended.status_code == 409, ended.text
    missing = api.http.patch(f"{api.base_url}/result/{'0' * 32}/", json={"priority": 1}, timeout=30)
    assert missing.status_code == 404
    assert set(api.http.put(f"{api.base_url}/result/{result_id}/", timeout=30).headers["Allow"].split(", ")) >= {
        "GET", "POST", "PATCH", "DELETE"}
