"""PostgreSQL restarted mid-run: no event is dropped, and the run completes with the right counts.

PostgreSQL is shared with other developers' tests: one short restart, with a
pause of a few seconds between stop and start so that reports do arrive while
it is down.  The scheduler acknowledges a runner's report only once it is
written; a report that arrives while the database is away is retried, not lost.
"""
import os
import time

import pytest

from tests.faults.checks import assert_truthful, run, wait_finished, wait_started

pytestmark = pytest.mark.faults

DOWN_SECONDS = 3


def postgres_version():
    return sorted(os.listdir("/etc/postgresql"))[-1]


def test_reports_written_during_a_postgres_restart_are_retried_and_the_run_completes(
        build_system, ok_task, docker_client):
    system = build_system(runners=2, env={"RUNNER_SLOTS": "2"})
    api, task = system.api, ok_task(system)
    since = time.time()
    times = 12
    result_id = api.run(task["task_id"], times=times, command=["sleep", "1.5"])
    wait_started(api, result_id, count=3)

    cluster = ("pg_ctlcluster", "--skip-systemctl-redirect", postgres_version(), "main")
    try:
        run(*cluster, "stop")
        time.sleep(DOWN_SECONDS)
    finally:
        run(*cluster, "start")

    assert wait_finished(api, result_id, timeout=60)["status"] == "COMPLETE"
    details = assert_truthful(api, docker_client, result_id, times=times, since=since)
    assert all(d["status"] == "COMPLETE" and d["attempt"] == 1 for d in details)
    scheduler_log = system.log("scheduler")
    assert "was lost" not in scheduler_log
    # reports did arrive while it was down, and were retried
    # (coalesced: runner.execution_reports; a report alone from a runner with RUNNER_REPORT_WINDOW=0: the event's)
    assert "handling runner.execution_reports failed" in scheduler_log \
        or "handling runner.execution_finished failed" in scheduler_log
