"""A property-based fuzz of every endpoint against /openapi.json: no 5xx, answers that fit the schema."""
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (content_type_conformance, response_schema_conformance,
                                              status_code_conformance)

pytestmark = pytest.mark.e2e

EXAMPLES = 20
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture(scope="module")
def fuzzed_system(vhost_pipeline, request):
    """A system of its own whose Docker engine address leads nowhere.

    Generated task registrations name arbitrary image references; with no
    engine behind DOCKER_HOST none of them can make a pull leave this machine.
    """
    from urllib.parse import urlparse

    from tests.support import System, create_database, drop_database

    uri = urlparse(request.config.getoption("RABBIT_AMQP_URI"))
    database = create_database()
    with vhost_pipeline.get() as vhost:
        running = System(f"{uri.scheme}://{uri.netloc}/{vhost}", database, runners=1, name="fuzz",
                         env={"DOCKER_HOST": "unix:///nonexistent/docker.sock"}).start().wait_healthy()
        yield running
        running.stop()
    drop_database(database)


def test_every_endpoint_survives_generated_requests(fuzzed_system):
    system = fuzzed_system
    schema = schemathesis.openapi.from_url(system.url + "/openapi.json")
    headers = {"Authorization": f"Bearer {system.token}"}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 12
    for operation in operations:
        @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy())
        def fuzz(case):
            case.call_and_validate(base_url=system.url, headers=headers, checks=CHECKS, timeout=30)

        fuzz()
    assert system.api.get("/health/").status_code == 200


def test_without_a_docker_engine_tasks_fail_clearly_and_runners_take_no_work(fuzzed_system):
    api = fuzzed_system.api
    task = api.register("127.0.0.1:1/nothing/here:1")
    assert task["status"] == "ERROR"
    assert "Docker engine unreachable" in task["error"]
    assert fuzzed_system.procs["runner-1"].poll() is None  # it stays up, waiting for its engine
    assert "does not answer" in wait_for_log(fuzzed_system, "runner-1", "does not answer")


def wait_for_log(system, label, text):
    from tests.support import wait_until

    return wait_until(lambda: text in system.log(label) and system.log(label), timeout=15,
                      what=f"{text!r} in the {label} log")
