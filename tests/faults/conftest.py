"""Fault tests: each builds its own system, on its own RabbitMQ vhost and its own database.

So that killing a process, or restarting RabbitMQ, PostgreSQL or dockerd,
disturbs no other test.  Leases, heartbeats and sweeps are short so that each
recovery takes seconds, not minutes.
"""
import contextlib

import pytest

from tests.support import started_system

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
def build_system(request, vhost_pipeline, test_images, docker_client):
    """build_system(runners=2, env=None, start=True) -> a System of its own, stopped after the test."""
    with contextlib.ExitStack() as made:
        systems = []

        def build(runners=2, env=None, start=True):
            systems.append(made.enter_context(started_system(
                request, vhost_pipeline, request.node.name[:40], {**FAST, **(env or {})}, runners=runners,
                start=None if start else (), docker_client=docker_client, grace=15)))
            return systems[-1]

        yield build
        failed = getattr(request.node, "rep_call", None)
        if failed is not None and failed.failed:  # the report's "Captured stdout teardown" says why
            for system in systems:
                print(f"logs: {system.log_dir}")
                for label, lines in system.troubles().items():
                    print(f"--- {label}: last warnings and errors", *lines, sep="\n")


@pytest.fixture
def ok_task(test_images):
    """Registers the 'ok' image (busybox: sh, sleep) in a system: ok_task(system) -> task."""
    def register(system):
        return system.api.register(test_images["ok"])

    return register
