"""Three runner hosts, each a network namespace with its own Docker engine (see hosts.py).

Built once for the module: a private registry (htpasswd) with the test
images, the hub address with forwarders to RabbitMQ and the registry, the
hosts and their engines, an engine for the registry service, then the system:
gateway, registry and scheduler in the root namespace, one runner per host
inside its namespace.  All of it is undone after the module, also on failure.
"""
import os
import shutil
import tempfile
import uuid
from types import SimpleNamespace
from urllib.parse import urlparse

import pytest
from cryptography.fernet import Fernet

from stevedore_jobs.host import spawn
from tests.multihost.hosts import Engine, Network, rig_cleanup, wait_all_up
from tests.support import ImageRegistry, build_test_images, started_system

HOSTS = 3
USER = "multihost"
PASSWORD = f"pw-{uuid.uuid4().hex[:12]}"

FAST = {
    "LEASE_SECONDS": "6",
    "HEARTBEAT_INTERVAL": "1",
    "SWEEP_INTERVAL": "1",
    "PROBE_INTERVAL": "0.5",
    "RECONCILE_INTERVAL": "2",
    "RUNNER_POLL_INTERVAL": "0.5",
    "RUNNER_SLOTS": "2",
    "RPC_TIMEOUT": "5",
    "RETRY_BACKOFF": "0.5",
    "STOP_GRACE_PERIOD": "2",
    "RUNNER_STOP_GRACE": "5",
    # the broker drops a cut-off runner's connection in ~10 s, so that runner
    # can take its exclusive broadcast queues back as soon as its link returns
    "AMQP_HEARTBEAT": "5",
    # an engine gone for good ends its executions ERROR this soon (test_engine_gone.py)
    "ENGINE_PATIENCE": "10",
}


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/multihost/" in str(item.fspath):
            item.add_marker(pytest.mark.multihost)


@pytest.fixture(scope="module")
def rig(request, vhost_pipeline, docker_client):
    """SimpleNamespace(system, api, hosts, task, registry, registry_address, hub)."""
    with rig_cleanup() as cleanup:
        yield build_rig(request, cleanup, vhost_pipeline, docker_client)


def build_rig(request, cleanup, vhost_pipeline, docker_client):
    registry = ImageRegistry(users={USER: PASSWORD}).start()
    cleanup.add("image registry", registry.stop)
    auth = {"username": USER, "password": PASSWORD}
    images = {**build_test_images(docker_client, registry, behaviours=("sleep",),
                                  repository="stevedore-test/multihost", auth=auth),
              "gone": build_test_images(docker_client, registry, behaviours=("ok",),
                                        repository="stevedore-test/multihost-gone", auth=auth)["ok"]}

    network = Network(cleanup)
    amqp = urlparse(request.config.getoption("RABBIT_AMQP_URI"))
    # on real machines RabbitMQ listens on the network with a user of its own;
    # here it listens on loopback and guest may only log in from there
    hub_amqp = network.forward(5672, f"{amqp.hostname}:{amqp.port or 5672}")
    hub_registry = network.forward(registry.port, registry.address)
    links = [network.add_host(n) for n in range(1, HOSTS + 1)]

    base = tempfile.mkdtemp(prefix="stv-mh-")  # short: dockerd's socket path must fit
    cleanup.add(f"directory {base}", lambda: shutil.rmtree(base, ignore_errors=True))
    # the registry service's engine, in the root namespace: on a bridge of its own
    control = Engine(cleanup, f"{base}/control", hub_registry, bridge=network.add_bridge("ctl", 250))
    engines = [Engine(cleanup, f"{base}/h{n}", hub_registry, enter=link.enter)
               for n, link in enumerate(links, 1)]
    wait_all_up([control, *engines])

    credentials_key = Fernet.generate_key().decode()
    system = cleanup.enter("system", started_system(
        request, vhost_pipeline, "multihost", {**FAST, "STEVEDORE_CREDENTIALS_KEY": credentials_key}, runners=0,
        per_runner={"registry": {"DOCKER_HOST": control.url}}))

    hosts = []
    runner_amqp = f"{amqp.scheme}://{amqp.username}:{amqp.password}@{hub_amqp}/{system.vhost}"
    for n, (link, engine) in enumerate(zip(links, engines), 1):
        runner_id = f"host-{n}"
        env = {**system.env, "AMQP_URI": runner_amqp, "DOCKER_HOST": engine.url, "RUNNER_ID": runner_id,
               "CONTAINER_NETWORK": "none",
               # labels for test_constraints_on_hosts.py: hosts 1 and 2 in zone eu, host 3 in zone us
               "RUNNER_LABELS": f"host=h{n},zone={'eu' if n < HOSTS else 'us'}",
               # a runner needs RabbitMQ and its engine only: give it no database
               "DATABASE_URL": "postgresql+psycopg2://nobody@127.0.0.1:1/none"}
        system.procs[runner_id] = spawn("runner", env, prefix=link.enter,
                                        log_file=os.path.join(system.log_dir, f"{runner_id}.log"))
        hosts.append(SimpleNamespace(runner_id=runner_id, link=link, engine=engine))

    def register(reference):
        response = system.api.post("/task/", {
            "repository": reference.replace(registry.address, hub_registry),
            "name": f"multihost-{uuid.uuid4().hex[:6]}", **auth})
        assert response.status_code == 201, response.text
        task = system.api.wait_task(response.json()["task_id"])
        assert task["status"] == "READY", task
        assert task["digest"].startswith(f"{hub_registry}/"), task
        return task

    return SimpleNamespace(system=system, api=system.api, hosts=hosts, control=control,
                           task=register(images["sleep"]), gone_task=register(images["gone"]),
                           registry=registry, auth=auth, hub=network.hub)
