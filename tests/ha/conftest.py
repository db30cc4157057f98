"""High-availability tests: the whole system, twice over where it can be, on a redundant backbone.

Each test gets a backbone of its own (tests/ha/backbone.py: three RabbitMQ
nodes, a PostgreSQL primary with a synchronous replica) and a system on it of
two gateways, two schedulers, a registry and two runners, every process given
all three RabbitMQ nodes (``AMQP_URI``, ';'-separated, each process starting at
another node), both PostgreSQL servers (a libpq multi-host URL with
``target_session_attrs=read-write``) and ``QUEUE_TYPE=quorum``.  The test kills
a part; everything is stopped and removed after it, pass or fail.
"""
import uuid

import pytest
import requests

from tests.faults.conftest import FAST
from tests.ha.backbone import PostgresPair, RabbitCluster
from tests.support import Api, System, free_port

# A runner whose RabbitMQ node dies is silent while it fails over: the call in flight gives up after
# RPC_TIMEOUT (5 s in FAST), then it reconnects to another node and declares a new reply queue. The
# other scheduler, on a node still up, has no reason to distrust the broker, so the lease must outlast
# that failover (docs/deployment.md): FAST's 6 s lease did not always, on a loaded CI machine, and the
# runner's executions were declared lost (ERROR) while they ran on.
HA_LEASE = {"LEASE_SECONDS": "20"}

# the order processes are started in; each connects first to node (position % 3)
LABELS = ("gateway", "gateway-2", "registry", "scheduler", "scheduler-2", "runner-1", "runner-2")


class FailoverApi(Api):
    """The API through several gateways, as a load balancer gives it: the next one when one does not answer."""

    def __init__(self, base_urls, token):
        super().__init__(base_urls[0], token=token)
        self.base_urls = list(base_urls)

    def _each(self, call):
        for base_url in self.base_urls:
            self.base_url = base_url
            try:
                return call()
            except requests.ConnectionError:
                if base_url == self.base_urls[-1]:
                    raise

    def get(self, path, **kwargs):
        return self._each(lambda: super(FailoverApi, self).get(path, **kwargs))

    def post(self, path, body=None, raw=None, headers=None, **kwargs):
        return self._each(lambda: super(FailoverApi, self).post(path, body, raw, headers, **kwargs))

    def delete(self, path, **kwargs):
        return self._each(lambda: super(FailoverApi, self).delete(path, **kwargs))


def ha_system(cluster, pair, database_url, name):
    """A System (tests/support.py) of two gateways and two schedulers on ``cluster`` and ``pair``."""
    system = System(cluster.uri(), database_url, runners=2, name=name,
                    env={**FAST, **HA_LEASE, "QUEUE_TYPE": "quorum", "RUNNER_SLOTS": "2"})
    gateway_2 = free_port()
    system.plan["gateway-2"] = ("gateway", {"GATEWAY_ADDRESS": f"127.0.0.1:{gateway_2}", "METRICS_PORT": "0"})
    system.plan["scheduler-2"] = ("scheduler", {"METRICS_PORT": str(free_port())})
    system.plan = {label: system.plan[label] for label in LABELS}
    tag = uuid.uuid4().hex[:6]
    for position, (label, (service, extra)) in enumerate(system.plan.items()):
        extra["AMQP_URI"] = cluster.uri(first=position % len(cluster.names))
        if service == "runner":  # runner ids of their own: none shared with another test's runners
            extra["RUNNER_ID"] = f"ha-{tag}-{label}"
    system.runner_prefix = f"ha-{tag}-"
    system.gateway_urls = [system.url, f"http://127.0.0.1:{gateway_2}"]
    system.api = FailoverApi(system.gateway_urls, system.token)
    return system


@pytest.fixture
def rabbit_cluster():
    cluster = RabbitCluster()
    try:
        yield cluster.start()
    finally:
        cluster.stop()


@pytest.fixture
def postgres_pair():
    pair = PostgresPair()
    try:
        yield pair.start()
    finally:
        pair.stop()


@pytest.fixture
def ha(request, rabbit_cluster, postgres_pair, test_images, docker_client):
    """The system on the redundant backbone, started and healthy, with an 'ok' task READY."""
    from stevedore_jobs.migrate import upgrade

    # created and migrated as stevedore-migrate does it, through the services' multi-host URL
    database_url = postgres_pair.url(f"stevedore_ha_{uuid.uuid4().hex[:8]}")
    upgrade(database_url)
    system = ha_system(rabbit_cluster, postgres_pair, database_url, request.node.name[:40])
    system.cluster, system.pair = rabbit_cluster, postgres_pair
    try:
        system.start().wait_healthy(timeout=90)
        system.task = system.api.register(test_images["ok"])
        yield system
    finally:
        system.stop(grace=15)
        for container in docker_client.containers.list(all=True, sparse=True,
                                                       filters={"label": "stevedore.managed=true"}):
            if (container.attrs.get("Labels") or {}).get("stevedore.runner", "").startswith(system.runner_prefix):
                container.remove(force=True)
