"""A task's import interrupted mid-pull never leaves it IMPORTING.

The registry service pulls into a Docker engine of the test's own, inside a
network namespace (tests/multihost/hosts.py), never the machine's shared
engine: that engine is restarted, and its link cut, in the middle of pulling
an image with one large layer from the test's registry.  The link is rate
limited (tc, on the test's own veth) so that the pull lasts long enough to be
interrupted.
"""
import os
import shutil
import tempfile
import time
import uuid
from types import SimpleNamespace

import pytest

from tests.multihost.hosts import Engine, Network, rig_cleanup, sh
from tests.support import ImageRegistry, started_system, wait_until

LAYER_MB = 160       # random bytes: no compression shortens the pull
LINK_RATE = "40mbit"  # about 32 s for the whole layer
PULL_TIMEOUT = 20
TERMINAL = ("READY", "ERROR")


@pytest.fixture(scope="module")
def rig(request, vhost_pipeline):
    with rig_cleanup() as cleanup:
        yield build_rig(request, cleanup, vhost_pipeline)


def build_rig(request, cleanup, vhost_pipeline):
    registry = ImageRegistry().start()
    cleanup.add("image registry", registry.stop)
    network = Network(cleanup)
    hub_registry = network.forward(registry.port, registry.address)
    link = network.add_host(1)
    base = tempfile.mkdtemp(prefix="stv-imp-")  # short: dockerd's socket path must fit
    cleanup.add(f"directory {base}", lambda: shutil.rmtree(base, ignore_errors=True))
    engine = Engine(cleanup, f"{base}/h1", hub_registry, enter=link.enter).wait_up()
    reference = push_big_image(engine, hub_registry)
    # from now on the engine's downloads cross a slow link
    sh("tc", "qdisc", "add", "dev", link.veth, "root", "tbf", "rate", LINK_RATE,
       "burst", "64kb", "latency", "400ms")

    system = cleanup.enter("system", started_system(
        request, vhost_pipeline, "import-interrupted", {"PULL_TIMEOUT": str(PULL_TIMEOUT)}, runners=0,
        per_runner={"registry": {"DOCKER_HOST": engine.url}}))
    return SimpleNamespace(system=system, api=system.api, engine=engine, link=link, reference=reference)


def push_big_image(engine, hub_registry):
    """An image with one layer of LAYER_MB random bytes, built on the test's engine, pushed, removed there."""
    context = tempfile.mkdtemp(prefix="stv-big-")
    try:
        shutil.copy(shutil.which("busybox") or "/bin/busybox", os.path.join(context, "busybox"))
        with open(os.path.join(context, "big"), "wb") as fh:
            fh.writelines(os.urandom(1024 * 1024) for _ in range(LAYER_MB))
        with open(os.path.join(context, "Dockerfile"), "w") as fh:
            fh.write("FROM scratch\nCOPY busybox /bin/busybox\nCOPY big /big\nCMD [\"/bin/busybox\", \"true\"]\n")
        reference = f"{hub_registry}/stevedore-test/big:{uuid.uuid4().hex[:6]}"
        engine.client.images.build(path=context, tag=reference, rm=True)
        for line in engine.client.images.push(reference, stream=True, decode=True):
            assert "error" not in line, line
        engine.client.images.remove(reference, force=True)  # so that the import really pulls it
        return reference
    finally:
        shutil.rmtree(context, ignore_errors=True)


def start_import(rig):
    """Register the big image; return the task id once its pull has been going for a few seconds."""
    response = rig.api.post("/task/", {"repository": rig.reference, "name": f"big-{uuid.uuid4().hex[:6]}"})
    assert response.status_code == 201, response.text
    task_id = response.json()["task_id"]
    wait_until(lambda: task(rig, task_id)["status"] == "IMPORTING", timeout=30, what="the pull to begin")
    time.sleep(4)  # well into the layer's download (about 20 MB of it)
    assert task(rig, task_id)["status"] == "IMPORTING"
    return task_id


def task(rig, task_id):
    return rig.api.get(f"/task/{task_id}/").json()


def wait_ended(rig, task_id):
    # never stuck: it ends by itself, at the latest at PULL_TIMEOUT
    wait_until(lambda: task(rig, task_id)["status"] in TERMINAL, timeout=PULL_TIMEOUT + 60,
               what="the import to end")
    return task(rig, task_id)


def test_an_engine_restarted_mid_pull_ends_the_import_with_a_reason(rig):
    task_id = start_import(rig)
    rig.engine.restart()
    ended = wait_ended(rig, task_id)
    if ended["status"] == "ERROR":
        assert ended["error"] and len(ended["error"]) <= 2000, ended
        assert "PULL_TIMEOUT" not in ended["error"], ended  # ended by the break, not the deadline
    else:
        assert ended["digest"], ended


def test_a_pull_stalled_by_a_dead_link_ends_in_error_at_pull_timeout(rig):
    task_id = start_import(rig)
    rig.link.cut()  # no FIN, no RST: the engine's download just stops
    try:
        ended = wait_ended(rig, task_id)
    finally:
        rig.link.restore()
    assert ended["status"] == "ERROR", ended
    assert f"did not finish within PULL_TIMEOUT ({PULL_TIMEOUT}s)" in ended["error"], ended
