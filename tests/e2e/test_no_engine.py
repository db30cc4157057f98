"""A system whose Docker engine address leads nowhere: tasks fail clearly, runners wait.

(The fuzz of every endpoint that used to live here is tests/fuzz: a stock
schemathesis run against a system whose engine is real but isolated.)"""
import pytest

from tests.support import own_system

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def engineless_system(vhost_pipeline, request):
    """A system of its own whose DOCKER_HOST names a socket that is not there."""
    yield from own_system(request, vhost_pipeline, "no-engine", {"DOCKER_HOST": "unix:///nonexistent/docker.sock"})


def test_without_a_docker_engine_tasks_fail_clearly_and_runners_take_no_work(engineless_system):
    api = engineless_system.api
    task = api.register("127.0.0.1:1/nothing/here:1")
    assert task["status"] == "ERROR"
    assert "Docker engine unreachable" in task["error"]
    assert engineless_system.procs["runner-1"].poll() is None  # it stays up, waiting for its engine
    assert "does not answer" in wait_for_log(engineless_system, "runner-1", "does not answer")


def wait_for_log(system, label, text):
    from tests.support import wait_until

    return wait_until(lambda: text in system.log(label) and system.log(label), timeout=15,
                      what=f"{text!r} in the {label} log")
