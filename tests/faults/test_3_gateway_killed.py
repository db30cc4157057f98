"""The gateway SIGKILLed: runs carry on without it; the API answers again once it is back."""
import time

import pytest
import requests

from tests.faults.checks import assert_truthful, sql, wait_running
from tests.support import wait_until

pytestmark = pytest.mark.faults


def test_runs_carry_on_without_the_gateway_and_the_api_answers_again_after_its_restart(
        build_system, ok_task, docker_client):
    system = build_system(runners=2)
    api, task = system.api, ok_task(system)
    since = time.time()
    result_id = api.run(task["task_id"], times=6, command=["sleep", "2"])
    wait_running(api, result_id)

    system.kill("gateway")
    with pytest.raises(requests.ConnectionError):
        api.get("/health/")

    def complete():
        [(n,)] = sql(system.database_url,
                     "SELECT count(*) FROM details WHERE result_id = :id AND status = 'COMPLETE'",
                     id=result_id)
        return n

    # executions go on finishing while nobody can ask
    wait_until(lambda: complete() >= 3, timeout=30, what="executions to complete without the gateway")
    with pytest.raises(requests.ConnectionError):
        api.get(f"/result/{result_id}/")

    system.start("gateway").wait_healthy()
    details = assert_truthful(api, docker_client, result_id, times=6, since=since)
    assert all(d["status"] == "COMPLETE" and d["attempt"] == 1 for d in details)
