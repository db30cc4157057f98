"""A run's failure policy under faults: the scheduler away when a deadline falls, a stop cut short."""
import time

import pytest

from sqlalchemy import create_engine, text

from tests.faults.checks import all_details, sql, wait_finished, wait_no_containers, wait_running
from tests.support import wait_until

pytestmark = pytest.mark.faults


def write(database_url, statement, **params):
    engine = create_engine(database_url)
    try:
        with engine.begin() as conn:
            conn.execute(text(statement), params)
    finally:
        engine.dispose()


def test_a_deadline_that_falls_while_the_scheduler_is_down_stops_the_run_once_it_is_back(
        build_system, ok_task, docker_client):
    system = build_system(runners=2)
    api, task = system.api, ok_task(system)
    result_id = api.run(task["task_id"], times=6, deadline=4, command=["sleep", "60"])
    wait_running(api, result_id, count=2)
    system.kill("scheduler")
    [(deadline_at,)] = sql(system.database_url, "SELECT deadline_at FROM results WHERE id = :id", id=result_id)
    while time.time() < deadline_at + 3:  # the deadline passes while no scheduler runs
        time.sleep(0.5)
    assert sql(system.database_url, "SELECT status, ended_by FROM results WHERE id = :id", id=result_id) \
        == [("RUNNING", None)]  # nobody stopped it meanwhile
    system.start("scheduler")
    result = wait_finished(api, result_id, timeout=60)
    assert result["status"] == "KILLED" and result["reason"] == "deadline"
    assert sum(result["counts"].values()) == 6 and result["counts"]["KILLED"] == 2, result
    details = all_details(api, result_id)
    assert all(d["reason"] == "deadline" for d in details), [(d["status"], d["reason"]) for d in details]
    assert sorted(d["status"] for d in details) == ["CANCELLED"] * 4 + ["KILLED"] * 2
    wait_no_containers(docker_client, result_id)


def test_a_stop_cut_short_by_a_crash_is_finished_by_the_sweep(build_system, ok_task):
    # no runners: the executions stay QUEUED until the stop; the scheduler is stopped while the run
    # is marked as a report reaching max_failures marks it, so the stop itself is left to the sweep
    system = build_system(runners=0)
    api, task = system.api, ok_task(system)
    db = system.database_url
    result_id = api.run(task["task_id"], times=300, max_failures=1)
    wait_until(lambda: sql(db, "SELECT created FROM results WHERE id = :id", id=result_id)[0][0] == 300,
               timeout=30, what="the fan-out")
    system.kill("scheduler")
    write(db, "UPDATE results SET ended_by = 'max_failures', n_failed = 1 WHERE id = :id", id=result_id)
    system.start("scheduler")
    result = wait_finished(api, result_id, timeout=60)
    assert result["status"] == "ERROR" and result["reason"] == "max_failures"
    assert result["counts"]["CANCELLED"] == 300 and result["cancel_requested"]
    assert {d["reason"] for d in all_details(api, result_id)} == {"max_failures"}
