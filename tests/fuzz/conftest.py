"""A whole system for the fuzz, isolated so that nothing a fuzzer names can leave this machine.

A generated ``POST /task/`` names any image reference, which the registry
service then pulls; a generated RUN names any ``callback_url``, which the
scheduler then posts to.  So the registry, scheduler and runner, and the
Docker engine they use, run inside a network namespace of their own with its
loopback up and nothing else (tests/multihost/hosts.py ``Namespace``): no
link, no route, no reachable DNS server.  What they need from outside,
RabbitMQ and PostgreSQL, is carried in on one port each by forwarders over a
unix socket, which give the namespace those ports and no route.  The image
registry holding the READY task's image runs in the namespace too, and the
image is built by the namespace's engine (``FROM scratch``, no network).

The gateway runs outside, on this machine's loopback, where the fuzzer
reaches it; it talks to RabbitMQ only.  All of it is undone after the module,
also on failure.
"""
import base64
import secrets
import shutil
import tempfile
import time
import uuid
from types import SimpleNamespace
from urllib.parse import urlparse

import pytest
from cryptography.fernet import Fernet

from tests.multihost.hosts import Engine, Namespace, rig_cleanup
from tests.support import POSTGRES, ImageRegistry, build_test_images, started_system

RUN_MAX_TIMES = 3
INSIDE = ("registry", "scheduler", "runner-1")  # the services a generated request can aim somewhere


class RegistryInside(ImageRegistry):
    """The loopback image registry, serving inside ``namespace``."""

    def __init__(self, namespace):
        super().__init__(prefix=namespace.enter)
        self.namespace = namespace

    def _up(self):
        return self.namespace.listening(self.port)


@pytest.fixture(scope="module")
def isolated(request, vhost_pipeline):
    """SimpleNamespace(system, api, namespace, engine, task, reference, result, details, starts)."""
    with rig_cleanup() as cleanup:
        yield build_isolated(request, cleanup, vhost_pipeline)


def build_isolated(request, cleanup, vhost_pipeline):
    base = tempfile.mkdtemp(prefix="stv-fz-")  # short: dockerd's socket path must fit
    cleanup.add(f"directory {base}", lambda: shutil.rmtree(base, ignore_errors=True))
    namespace = Namespace(cleanup, f"stv-fuzz-{uuid.uuid4().hex[:6]}")

    amqp = urlparse(request.config.getoption("RABBIT_AMQP_URI"))
    namespace.reach_out(amqp.port or 5672, f"{amqp.hostname}:{amqp.port or 5672}", base)
    database = urlparse(POSTGRES)  # where started_system makes the system's database
    namespace.reach_out(database.port or 5432, f"{database.hostname}:{database.port or 5432}", base)

    registry = RegistryInside(namespace).start()
    cleanup.add("image registry", registry.stop)
    engine = Engine(cleanup, f"{base}/engine", registry.address, enter=namespace.enter).wait_up()
    reference = build_test_images(engine.client, registry, behaviours=("ok",), repository="stevedore-test/fuzz",
                                  network_mode="none")["ok"]

    env = {"RUN_MAX_TIMES": str(RUN_MAX_TIMES),
           "DOCKER_HOST": engine.url,
           "CONTAINER_NETWORK": "none",  # the engine has no bridge (hosts.Engine)
           "STEVEDORE_CREDENTIALS_KEY": Fernet.generate_key().decode(),
           # with a secret, a RUN's callback_url is taken and its deliveries are attempted; no
           # WEBHOOK_ALLOW_NETWORKS, so only global addresses pass, which the namespace cannot reach
           "STEVEDORE_WEBHOOK_SECRET": "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode(),
           # schemathesis is one client asking as fast as it is answered, and it tries every operation with a
           # made-up token (its ignored_auth check) from one address: a flood and a brute force by their shape.
           # The gateway would rightly answer 429 (tests/e2e/test_edge_rates.py); here the answers are fuzzed
           "HTTP_RATE_LIMIT": "0", "HTTP_AUTH_FAILURES": "0"}
    system = cleanup.enter("system", started_system(request, vhost_pipeline, "fuzz", env, start=()))
    system.prefix.update({label: namespace.enter for label in INSIDE})
    system.start().wait_healthy()
    task = system.api.register(reference, name="fuzz-ready", timeout=120)
    assert task["status"] == "READY", task
    since = int(time.time())
    result = system.api.wait_result(system.api.run(task["task_id"], times=2))
    # the container starts the namespace's engine saw: the runs ran there, the one engine the runner has
    starts = list(engine.client.events(since=since, until=int(time.time()) + 1, decode=True,
                                       filters={"type": "container", "event": "start",
                                                "label": "stevedore.managed=true"}))
    return SimpleNamespace(system=system, api=system.api, namespace=namespace, engine=engine, task=task,
                           reference=reference, result=result, details=system.api.details(result["result_id"]),
                           starts=starts)
