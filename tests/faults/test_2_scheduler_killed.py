"""The scheduler SIGKILLed while it fans a 10,000-execution RUN out into details."""

import pytest

from tests.faults.checks import get_json, sql
from tests.support import wait_until

pytestmark = pytest.mark.faults

TIMES = 10000


def test_fan_out_interrupted_by_a_scheduler_kill_resumes_to_exactly_one_detail_per_index(
        build_system, ok_task):
    # no runners: the executions stay QUEUED and are counted, not run
    system = build_system(runners=0, env={"FAN_OUT_BATCH": "100"})
    api, task = system.api, ok_task(system)
    db = system.database_url

    result_id = api.run(task["task_id"], times=TIMES)

    def created():
        rows = sql(db, "SELECT created FROM results WHERE id = :id", id=result_id)
        return rows[0][0] if rows else 0

    # kill it mid-way: some batches committed, not all
    wait_until(lambda: created() > 0, timeout=30, interval=0.01, what="the fan-out to begin")
    system.kill("scheduler")
    at_kill = created()
    assert 0 < at_kill < TIMES, f"the fan-out was not interrupted ({at_kill} of {TIMES} made)"
    [(count,)] = sql(db, "SELECT count(*) FROM details WHERE result_id = :id", id=result_id)
    assert count == at_kill

    system.start("scheduler")
    wait_until(lambda: created() == TIMES, timeout=45, interval=0.5, what="the fan-out to resume")
    [(count, indices, low, high, queued, untouched)] = sql(db, """
        SELECT count(*), count(DISTINCT index), min(index), max(index),
               count(*) FILTER (WHERE status = 'QUEUED'),
               count(*) FILTER (WHERE runner IS NULL AND attempt = 0)
        FROM details WHERE result_id = :id""", id=result_id)
    assert (count, indices, low, high, queued, untouched) == (TIMES, TIMES, 0, TIMES - 1, TIMES, TIMES)

    result = wait_until(lambda: get_json(api, f"/result/{result_id}/"), timeout=30, what="the API")
    assert result["status"] == "QUEUED"
    assert result["counts"] == {"QUEUED": TIMES, "RUNNING": 0, "COMPLETE": 0, "ERROR": 0,
                                "CANCELLED": 0, "KILLED": 0}
