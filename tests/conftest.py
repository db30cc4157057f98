"""Fixtures shared by every test layer: the real backbone and the test images.

Everything here is real: a Docker registry on loopback, images built from
Debian's busybox-static and pushed to it, a fresh PostgreSQL database migrated
by alembic, and an isolated RabbitMQ vhost (nameko's ``vhost_pipeline``).
"""
import uuid

import docker
import pytest
from cryptography.fernet import Fernet

from tests.support import (
    ImageRegistry,
    System,
    build_test_images,
    create_database,
    drop_database,
    own_system,
)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the test item (``item.rep_call``): a fixture's teardown can then tell a
    failed test from a passed one, and print what it knows of the failure."""
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


@pytest.fixture(scope="session")
def docker_client():
    client = docker.from_env(version="auto", timeout=120)
    client.ping()
    yield client
    client.close()


@pytest.fixture(scope="session")
def image_registry():
    registry = ImageRegistry().start()
    yield registry
    registry.stop()


@pytest.fixture(scope="session")
def test_images(docker_client, image_registry):
    """{"ok"|"fail"|"sleep"|"env"|"flaky": reference in the loopback registry}."""
    return build_test_images(docker_client, image_registry)


@pytest.fixture(scope="session")
def database_url():
    url = create_database()
    yield url
    drop_database(url)


@pytest.fixture(scope="session")
def session_amqp_uri(request, vhost_pipeline):
    from urllib.parse import urlparse

    uri = urlparse(request.config.getoption("RABBIT_AMQP_URI"))
    with vhost_pipeline.get() as vhost:
        yield f"{uri.scheme}://{uri.netloc}/{vhost}"


@pytest.fixture(scope="session")
def system(session_amqp_uri, database_url, test_images):
    """The whole system, started once for the end-to-end tests that share it."""
    secrets = {"STEVEDORE_CREDENTIALS_KEY": Fernet.generate_key().decode(),
               "STEVEDORE_WEBHOOK_SECRET": f"test-webhook-secret-{uuid.uuid4().hex}",
               # the tests' receivers listen on loopback, which webhooks may not reach by default
               "WEBHOOK_ALLOW_NETWORKS": "127.0.0.0/8"}
    running = System(session_amqp_uri, database_url, runners=2, name="e2e",
                     env=secrets).start().wait_healthy()
    yield running
    running.stop()


@pytest.fixture(scope="session")
def api(system):
    return system.api


@pytest.fixture(scope="session")
def ready_tasks(api, test_images):
    """One READY task per test image behaviour: {"ok": task, ...}."""
    return {behaviour: api.register(ref, name=f"e2e-{behaviour}")
            for behaviour, ref in test_images.items()}


@pytest.fixture(scope="module")
def standin_registry(docker_client):
    """A loopback registry holding busybox stand-ins of ``alpine`` and ``ubuntu:20.04`` (Docker Hub's names)."""
    from tests.support import build_standins

    registry = ImageRegistry().start()
    try:
        build_standins(docker_client, registry)
        yield registry
    finally:
        registry.stop()


def mapped_system(request, vhost_pipeline, docker_client, registry, name, env=None):
    """A system of its own whose IMAGE_MAP sends Docker Hub names to ``registry`` (a generator: yields it)."""
    yield from own_system(request, vhost_pipeline, name, {"IMAGE_MAP": f"docker.io={registry.address}",
                                                          "SWEEP_INTERVAL": "1", **(env or {})},
                          runners=2, docker_client=docker_client)
