"""Fault tests: each builds its own system, on its own RabbitMQ vhost and its own database.

So that killing a process, or restarting RabbitMQ, PostgreSQL or dockerd,
disturbs no other test.  Leases, heartbeats and sweeps are short so that each
recovery takes seconds, not minutes.
"""
import pytest

from tests.faults.checks import remove_containers_of, sql
from tests.support import System, create_database, drop_database

FAST = {
    "LEASE_SECONDS": "6",
    "HEARTBEAT_INTERVAL": "1",
    "SWEEP_INTERVAL": "1",
    "PROBE_INTERVAL": "0.5",
    "RECONCILE_INTERVAL": "2",
    "RUNNER_POLL_INTERVAL": "0.5",
    "RPC_TIMEOUT": "5",
    "RETRY_BACKOFF": "0.5",
    "STOP_GRACE_PERIOD": "2",
    "RUNNER_STOP_GRACE": "10",
}


@pytest.fixture
def build_system(request, session_amqp_uri, vhost_pipeline, test_images, docker_client):
    """build_system(runners=2, env=None, start=True) -> a System of its own, stopped after the test."""
    from urllib.parse import urlparse

    made = []

    def build(runners=2, env=None, start=True):
        vhosts = vhost_pipeline.get()
        vhost = vhosts.__enter__()
        uri = urlparse(session_amqp_uri)
        database_url = create_database()
        system = System(f"{uri.scheme}://{uri.netloc}/{vhost}", database_url, runners=runners,
                        env={**FAST, **(env or {})}, name=request.node.name[:40])
        system.vhost = vhost
        made.append((system, vhosts, database_url))
        if start:
            system.start().wait_healthy()
        return system

    yield build
    failed = getattr(request.node, "rep_call", None)
    for system, vhosts, database_url in made:
        if failed is not None and failed.failed:  # the report's "Captured stdout teardown" says why
            print(f"logs: {system.log_dir}")
            for label, lines in system.troubles().items():
                print(f"--- {label}: last warnings and errors", *lines, sep="\n")
        system.stop(grace=15)
        try:
            results = [row[0] for row in sql(database_url, "SELECT id FROM results")]
            remove_containers_of(docker_client, results)
        finally:
            drop_database(database_url)
            vhosts.__exit__(None, None, None)


@pytest.fixture
def ok_task(test_images):
    """Registers the 'ok' image (busybox: sh, sleep) in a system: ok_task(system) -> task."""
    def register(system):
        return system.api.register(test_images["ok"])

    return register
