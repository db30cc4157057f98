"""RabbitMQ restarted mid-run (stop_app, ~5 s, start_app): every service reconnects and the run completes.

RabbitMQ is shared with other developers' tests: the outage is kept short and
happens once.  While it lasts no runner can heartbeat, so leases run out in
the database; the scheduler, whose sweep works on the database alone, must
blame the broker, not the runners, and declare no runner lost.
"""
import threading
import time

import pytest
import requests

from tests.faults.checks import assert_truthful, run, sql, wait_finished, wait_running
from tests.support import wait_until

pytestmark = pytest.mark.faults

OUTAGE_SECONDS = 5


def consumed_queues(request, vhost):
    """Names of the queues consumed in ``vhost`` (the management API lags a few seconds)."""
    api = request.config.getoption("RABBIT_API_URI").rstrip("/")
    try:
        response = requests.get(f"{api}/api/consumers/{vhost}", timeout=10)
        response.raise_for_status()
    except requests.RequestException:
        return []
    return sorted(consumer["queue"]["name"] for consumer in response.json())


def every_service_consumes(names):
    """The scheduler, the registry, the gateway and both runners each consume their queues."""
    def count(prefix):
        return sum(name.startswith(prefix) for name in names)

    return ("rpc-scheduler" in names and "rpc-registry" in names and count("rpc.reply-gateway-") == 1
            and count("rpc.reply-runner-") == 2 and count("rpc.reply-scheduler-") <= 1)


def test_services_reconnect_after_a_rabbitmq_restart_and_the_run_completes(
        request, build_system, ok_task, docker_client):
    system = build_system(runners=2, env={"LEASE_SECONDS": "8"})
    api, task = system.api, ok_task(system)
    before = wait_until(lambda: every_service_consumes(names := consumed_queues(request, system.vhost))
                        and names, timeout=30, what="every service to consume")
    since = time.time()
    result_id = api.run(task["task_id"], times=6, command=["sleep", "4"])
    wait_running(api, result_id, count=2)

    # watch the leases in the database while the broker is away
    expired_seen, watching = [], True

    def watch():
        while watching:
            [(n,)] = sql(system.database_url, """
                SELECT count(*) FROM details WHERE result_id = :id AND runner IS NOT NULL
                   AND status IN ('QUEUED', 'RUNNING')
                   AND lease_expires_at < extract(epoch FROM clock_timestamp())""", id=result_id)
            expired_seen.append(n)
            time.sleep(0.5)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        run("rabbitmqctl", "stop_app")
        time.sleep(OUTAGE_SECONDS)
    finally:
        run("rabbitmqctl", "start_app")
    run("rabbitmqctl", "await_startup")

    assert wait_finished(api, result_id, timeout=90)["status"] == "COMPLETE"
    watching = False
    watcher.join(5)
    details = assert_truthful(api, docker_client, result_id, times=6, since=since)
    assert all(d["status"] == "COMPLETE" and d["attempt"] == 1 for d in details)
    # the leases did run out while nobody could heartbeat, and no runner was declared lost
    assert max(expired_seen) > 0, expired_seen
    assert "was lost" not in system.log("scheduler")

    # every service consumes again, as before the restart
    wait_until(lambda: every_service_consumes(names := consumed_queues(request, system.vhost))
               and set(before) <= set(names), timeout=30, what="every consumer to be back")
    system.wait_healthy(timeout=30)
    again = api.run(task["task_id"], times=2)
    assert wait_finished(api, again, timeout=30)["status"] == "COMPLETE"
