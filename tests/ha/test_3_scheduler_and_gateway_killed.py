"""One of two schedulers and one of two gateways SIGKILLed mid-run, and not started again: the
other scheduler takes the work and the reports the dead one held (quorum queues give its
unacknowledged messages back), the other gateway answers, and the run completes, each execution
recorded once."""
import time

import pytest
import requests

from tests.faults.checks import assert_truthful, sql, wait_finished, wait_started
from tests.support import Api

pytestmark = pytest.mark.ha

TIMES = 16


def test_runs_complete_once_each_on_the_scheduler_and_gateway_left_standing(ha, docker_client):
    api = ha.api
    since = time.time()
    result_id = api.run(ha.task["task_id"], times=TIMES, command=["sleep", "1.5"])
    wait_started(api, result_id, count=3)

    def done():
        [(n,)] = sql(ha.database_url, "SELECT count(*) FROM details WHERE result_id = :id "
                                      "AND status NOT IN ('QUEUED', 'RUNNING')", id=result_id)
        return n

    ha.kill("scheduler")
    ha.kill("gateway")
    assert done() < TIMES, "the run ended before the kill: nothing was tested"
    with pytest.raises(requests.ConnectionError):
        Api(ha.gateway_urls[0], ha.token).get("/health/")

    # the API through the gateway left, every answer from the scheduler left
    assert wait_finished(api, result_id, timeout=90)["status"] == "COMPLETE"
    assert api.base_url == ha.gateway_urls[1]
    details = assert_truthful(api, docker_client, result_id, times=TIMES, since=since)
    assert all(d["status"] == "COMPLETE" and d["attempt"] == 1 for d in details)
    [(rows, indices)] = sql(ha.database_url, "SELECT count(*), count(DISTINCT index) FROM details "
                                             "WHERE result_id = :id", id=result_id)
    assert (rows, indices) == (TIMES, TIMES)
    assert "was lost" not in ha.log("scheduler-2")
    assert ha.procs["scheduler"].poll() is not None and ha.procs["gateway"].poll() is not None

    # and a new RUN goes round on them alone
    again = api.run(ha.task["task_id"], times=4)
    assert wait_finished(api, again, timeout=60)["status"] == "COMPLETE"
