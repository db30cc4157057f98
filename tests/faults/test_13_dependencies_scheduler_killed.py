"""Runs that wait for others while the scheduler is SIGKILLed: the end of what they wait for, reported while
no scheduler runs, still releases (or cancels) them once one is back; nothing is left waiting."""
import time

import pytest

from tests.faults.checks import assert_truthful, get_json, sql, wait_running
from tests.support import wait_until

pytestmark = pytest.mark.faults


def test_runs_waiting_when_the_scheduler_is_killed_are_released_or_cancelled_after_its_restart(
        build_system, test_images, docker_client):
    system = build_system(runners=2)
    api, db = system.api, system.database_url
    sleeper = api.register(test_images["sleep"])["task_id"]
    ok = api.register(test_images["ok"])["task_id"]
    since = time.time()

    first = api.run(sleeper, times=1, env={"SLEEP": "4"})
    failing = api.run(sleeper, times=1, timeout=1, env={"SLEEP": "60"})
    released = api.run(ok, times=2, after=[{"result_id": first}])
    paired = api.run(ok, times=1, after=[{"result_id": first}], per_index=True)
    cancelled = api.run(ok, times=2, after=[{"result_id": failing}])
    wait_running(api, first)

    system.kill("scheduler")
    time.sleep(8)  # both awaited runs end meanwhile: their reports wait in RabbitMQ
    system.start("scheduler").wait_healthy()

    for result_id, times in ((first, 1), (released, 2), (paired, 1)):
        details = assert_truthful(api, docker_client, result_id, times, since=since)
        assert {d["status"] for d in details} == {"COMPLETE"}
    first_end = get_json(api, f"/result/{first}/")["end"]
    for result_id in (released, paired):
        assert min(d["start"] for d in api.details(result_id)) >= first_end
    assert wait_until(lambda: get_json(api, f"/result/{cancelled}/")["status"] == "CANCELLED" or None,
                      timeout=30, what="the run waiting for a failed one to be cancelled")
    assert get_json(api, f"/result/{cancelled}/")["reason"].startswith(f"result {failing} ended ERROR")
    assert sql(db, "SELECT id FROM results WHERE waiting_for IS NOT NULL") == []
    assert sql(db, "SELECT count(*) FROM details WHERE waiting AND status = 'QUEUED'") == [(0,)]
