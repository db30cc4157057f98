"""The RabbitMQ node a scheduler is connected to SIGKILLed mid-run: the services fail over to the
other two nodes, the quorum queues elect leaders there, and the run completes, each execution once."""
import time

import pytest

from tests.faults.checks import assert_truthful, wait_finished, wait_started, why_not
from tests.support import wait_until

pytestmark = pytest.mark.ha

TIMES = 12


def test_a_killed_rabbitmq_node_is_failed_over_and_the_run_completes_once_each(ha, docker_client):
    api, cluster = ha.api, ha.cluster
    scheduler = ha.procs["scheduler"].pid
    node = cluster.wait_node_of(scheduler)
    work_queues = cluster.quorum_members()
    assert {"rpc-scheduler", "evt-runner-execution_finished--scheduler.on_execution_finished",
            "evt-runner-execution_reports--scheduler.on_execution_reports"} <= set(work_queues)
    assert all(len(members) == 3 for _, members in work_queues.values()), work_queues

    since = time.time()
    result_id = api.run(ha.task["task_id"], times=TIMES, command=["sleep", "1.5"])
    wait_started(api, result_id, count=3)
    cluster.kill(node)

    # the scheduler now talks to a node still up, and each work queue is led from one
    cluster.wait_node_of(scheduler, other_than=node)
    wait_until(lambda: cluster.names[node] not in {leader for leader, _ in cluster.quorum_members().values()},
               timeout=30, what="every work queue to be led from a node still up")

    finished = wait_finished(api, result_id, timeout=90)
    assert finished["status"] == "COMPLETE", (finished, why_not(api, result_id), ha.troubles())
    details = assert_truthful(api, docker_client, result_id, times=TIMES, since=since)
    assert all(d["status"] == "COMPLETE" and d["attempt"] == 1 for d in details)
    for label in ("scheduler", "scheduler-2"):
        assert "was lost" not in ha.log(label)

    # on two nodes of three the system goes on taking work
    again = api.run(ha.task["task_id"], times=4)
    assert wait_finished(api, again, timeout=60)["status"] == "COMPLETE"
