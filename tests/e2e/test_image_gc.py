"""The image collection on the real Docker engine (shared/image_gc.py): past its bound the least recently used
of the images Stevedore pulled goes; one in use, and one the operator tagged, stay; a RUN of the one removed
pulls it again and completes.

The engine is shared with other test sessions: this test's system collects only images named under a
registry namespace of its own (IMAGE_GC_REPOSITORIES), built with a label of its own, and removes them after.
"""
import uuid

import docker
import pytest
import requests

from tests.support import build_images, own_system, wait_until

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def gc_images(docker_client, image_registry):
    """{"a", "b", "c" (sleeps), "d" (the operator's)}: references in the loopback registry under a namespace of
    this module's, each image its own id (a label of its own); removed from the engine after."""
    mark = uuid.uuid4().hex[:12]
    namespace = f"gc-{mark}"
    refs = build_images(docker_client, image_registry,
                        {"a": f"{namespace}/a:ok", "b": f"{namespace}/b:ok", "sleep": f"{namespace}/c:sleep",
                         "d": f"{namespace}/d:ok"}, labels={"stevedore-test.gc": mark})
    yield {"a": refs["a"], "b": refs["b"], "c": refs["sleep"], "d": refs["d"],
           "namespace": f"{image_registry.address}/{namespace}/"}
    for image in docker_client.images.list(filters={"label": f"stevedore-test.gc={mark}"}):
        try:  # only this module's images: its label is its own
            docker_client.images.remove(image.id, force=True)
        except docker.errors.APIError:
            pass


@pytest.fixture(scope="module")
def image_size(docker_client, gc_images):
    """The engine's Size of one of these images (they differ by a few bytes at most)."""
    image = docker_client.images.pull(gc_images["b"])
    size = image.attrs["Size"]
    docker_client.images.remove(image.id, force=True)
    return size


@pytest.fixture(scope="module")
def gc_system(request, vhost_pipeline, gc_images, image_size):
    # room for two of them, not three: past it, one goes (down to 99% of the bound)
    env = {"RUNNER_SLOTS": "2", "IMAGE_GC": "on", "IMAGE_GC_INTERVAL": "1", "IMAGE_GC_MIN_AGE": "0", "IMAGE_GC_HIGH_PERCENT": "100",
           "IMAGE_GC_LOW_PERCENT": "99", "IMAGE_CACHE_BYTES": str(int(image_size * 2.5)),
           "IMAGE_GC_REPOSITORIES": gc_images["namespace"]}
    yield from own_system(request, vhost_pipeline, "image-gc", env, runners=1)


def present(docker_client, reference):
    try:
        docker_client.images.get(reference)
        return True
    except docker.errors.ImageNotFound:
        return False


def runner_pulls(system):
    label = next(label for label in system.plan if label.startswith("runner"))
    text = requests.get(system.metrics_url(label), timeout=10).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith('stevedore_image_pull_seconds_count{') and 'where="runner"' in line
               and 'outcome="ok"' in line)


def test_the_least_recently_used_image_goes_past_the_bound_the_one_in_use_and_the_operators_stay(
        gc_system, gc_images, docker_client):
    api = gc_system.api
    # the operator pulled d and tagged it; Stevedore pulls it too for a task of its own
    operators = docker_client.images.pull(gc_images["d"])
    d = api.register(gc_images["d"])
    assert d["status"] == "READY", d
    c = api.register(gc_images["c"])
    going = api.run(c["task_id"], env={"SLEEP": "120"})
    wait_until(lambda: api.get(f"/result/{going}/").json()["status"] == "RUNNING", timeout=60,
               what="c's execution to run")
    a = api.register(gc_images["a"])
    assert api.wait_result(api.run(a["task_id"]))["status"] == "COMPLETE"
    b = api.register(gc_images["b"])  # a third image of Stevedore's: past the bound
    assert api.wait_result(api.run(b["task_id"]))["status"] == "COMPLETE"

    wait_until(lambda: not present(docker_client, a["digest"]), timeout=30, what="a, least recently used, removed")
    assert present(docker_client, b["digest"])
    assert present(docker_client, c["digest"])  # in use by c's running container
    assert present(docker_client, operators.id)  # the operator's, though Stevedore pulled it too
    assert f"{gc_images['d'].rsplit(':', 1)[0]}:ok" in docker_client.images.get(operators.id).tags

    # needed again: the runner pulls it and it runs; b, now the least recently used, makes room
    pulls = runner_pulls(gc_system)
    again = api.wait_result(api.run(a["task_id"]))
    assert again["status"] == "COMPLETE", again
    assert runner_pulls(gc_system) == pulls + 1
    wait_until(lambda: not present(docker_client, b["digest"]), timeout=30, what="b removed in its turn")
    assert present(docker_client, c["digest"]) and present(docker_client, operators.id)

    assert api.post(f"/result/{going}/", {"operation": "CANCEL"}).status_code in (200, 202)
