"""The scheduler SIGKILLed, twice, while runners' coalesced reports (``execution_reports``) come in: the
batches it had not acknowledged are delivered again and folded once; the run ends with every execution
recorded once, and its claims given back once each."""
import time

import pytest

from tests.faults.checks import assert_truthful, sql, wait_finished, wait_started

pytestmark = pytest.mark.faults

TIMES = 48


def test_reports_folded_around_scheduler_kills_record_each_execution_once(build_system, ok_task, docker_client):
    # reports of the four slots of a runner wait for each other up to 0.2 s: batches of several
    system = build_system(runners=2, env={"RUNNER_SLOTS": "4", "RUNNER_REPORT_WINDOW": "0.2"})
    api, task = system.api, ok_task(system)
    since = time.time()
    result_id = api.run(task["task_id"], times=TIMES, command=["sleep", "1"])
    wait_started(api, result_id, count=4)  # reports flow (jobs of 1 s: not always 4 RUNNING at once)

    for _ in range(2):
        time.sleep(1.5)  # some ended, some reported while it folds
        system.kill("scheduler")
        time.sleep(1.5)  # reports wait in RabbitMQ meanwhile
        system.start("scheduler")

    assert wait_finished(api, result_id, timeout=120)["status"] == "COMPLETE"
    details = assert_truthful(api, docker_client, result_id, times=TIMES, since=since)
    assert all(d["status"] == "COMPLETE" and d["attempt"] == 1 and len(d["attempts"]) == 1 for d in details)
    [(active, n_running, n_complete)] = sql(
        system.database_url, "SELECT active, n_running, n_complete FROM results WHERE id = :id", id=result_id)
    assert (active, n_running, n_complete) == (0, 0, TIMES)
    [(held,)] = sql(system.database_url, "SELECT coalesce(sum(active), 0) FROM teams")
    assert held == 0
    assert "was lost" not in system.log("scheduler")
