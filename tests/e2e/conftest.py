"""Fixtures of the end-to-end tests that need a system of their own."""
import uuid

import pytest
import requests
from cryptography.fernet import Fernet

from tests.support import Api, free_port, started_system, wait_until


@pytest.fixture(scope="module")
def sched_system(vhost_pipeline, request, test_images, docker_client):
    """A system with TWO scheduler replicas, firing every half second, seconds allowed in cron."""
    env = {"SCHEDULE_ALLOW_SECONDS": "on", "SCHEDULE_INTERVAL": "0.5", "SWEEP_INTERVAL": "1", "RPC_TIMEOUT": "10",
           "STEVEDORE_WEBHOOK_SECRET": f"test-webhook-secret-{uuid.uuid4().hex}",
           "WEBHOOK_ALLOW_NETWORKS": "127.0.0.0/8"}
    with started_system(request, vhost_pipeline, "schedules", env, runners=2, docker_client=docker_client,
                        more={"scheduler-2": ("scheduler", {"METRICS_PORT": str(free_port())})}) as running:
        running.tasks = {behaviour: running.api.register(
            test_images[behaviour], name=f"s-{behaviour}-{uuid.uuid4().hex[:6]}")
            for behaviour in ("ok", "sleep")}
        yield running


@pytest.fixture(scope="session")
def teams_system(vhost_pipeline, request, test_images, docker_client):
    """A system of its own with TWO gateway processes (``gateway``, ``gateway-2``: another port), principals'
    tokens of each role (``tokens``: kind -> token) and one READY task per team (``tasks``) made by
    its member (tests/e2e/test_access.py, tests/e2e/test_teams.py)."""
    second = free_port()
    env = {"RPC_TIMEOUT": "10", "STEVEDORE_CREDENTIALS_KEY": Fernet.generate_key().decode(),
           # webhooks to the tests' loopback receivers (tests/e2e/test_team_events.py)
           "STEVEDORE_WEBHOOK_SECRET": f"test-webhook-secret-{uuid.uuid4().hex}",
           "WEBHOOK_ALLOW_NETWORKS": "127.0.0.0/8"}
    with started_system(request, vhost_pipeline, "teams", env, docker_client=docker_client,
                        more={"gateway-2": ("gateway", {"GATEWAY_ADDRESS": f"127.0.0.1:{second}"})}) as running:
        running.url2 = f"http://127.0.0.1:{second}"

        def second_healthy():  # not listening yet is not healthy yet (a loaded machine starts it late)
            try:
                return Api(running.url2).get("/health/").status_code == 200
            except requests.ConnectionError:
                return False

        wait_until(second_healthy, timeout=60, what="the second gateway")
        running.tokens = {"admin": running.token}
        for team in ("ops", "alpha", "beta"):
            made = running.api.post("/team/", {"name": team})
            assert made.status_code == 201, made.text
        for kind, team, role in (("operator", "ops", "operator"), ("member", "alpha", "member"),
                                 ("viewer", "alpha", "viewer"), ("other", "beta", "member")):
            made = running.api.post("/token/", {"name": f"{kind}-{uuid.uuid4().hex[:6]}", "team": team,
                                                "role": role})
            assert made.status_code == 201, made.text
            running.tokens[kind] = made.json()["token"]
        running.as_ = lambda kind, url=None: Api(url or running.url, token=running.tokens[kind])
        running.tasks = {team: running.as_(kind).register(test_images["ok"], name="etl")
                         for team, kind in (("alpha", "member"), ("beta", "other"))}
        yield running
