"""The PostgreSQL primary SIGKILLed mid-run (postmaster and every backend at once) and its
synchronous replica promoted: the services find the new primary through their multi-host URL, and
the run completes, each execution recorded once."""
import time

import pytest

from tests.faults.checks import assert_truthful, sql, wait_finished, wait_started

pytestmark = pytest.mark.ha

TIMES = 12
DOWN_SECONDS = 3


def test_the_replica_promoted_after_the_primary_is_killed_carries_the_run_to_its_end_once_each(
        ha, docker_client):
    api, pair = ha.api, ha.pair
    since = time.time()
    result_id = api.run(ha.task["task_id"], times=TIMES, command=["sleep", "1.5"])
    wait_started(api, result_id, count=3)
    [(before,)] = sql(ha.database_url, "SELECT count(*) FROM details WHERE result_id = :id", id=result_id)
    assert before == TIMES

    pair.kill_primary()
    time.sleep(DOWN_SECONDS)  # reports and claims meet no primary meanwhile
    pair.promote()

    assert wait_finished(api, result_id, timeout=90)["status"] == "COMPLETE"
    details = assert_truthful(api, docker_client, result_id, times=TIMES, since=since)
    assert all(d["status"] == "COMPLETE" and d["attempt"] == 1 for d in details)
    # what the API said is what the new primary holds, and it is the former replica
    [(port, in_recovery, rows)] = sql(ha.database_url, """
        SELECT inet_server_port(), pg_is_in_recovery(),
               (SELECT count(*) FROM details WHERE result_id = :id AND status = 'COMPLETE')""", id=result_id)
    assert (port, in_recovery, rows) == (pair.ports["replica"], False, TIMES)
    logs = ha.log("scheduler") + ha.log("scheduler-2")
    assert "was lost" not in logs
    # reports did meet the missing primary, and were retried
    assert "handling runner.execution_" in logs

    again = api.run(ha.task["task_id"], times=4)
    assert wait_finished(api, again, timeout=60)["status"] == "COMPLETE"
