"""IMAGE_MAP on the real registry service: Docker Hub names pulled from the operator's loopback registry."""
import uuid

import pytest

from tests.conftest import mapped_system

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def hub_system(request, vhost_pipeline, docker_client, standin_registry):
    yield from mapped_system(request, vhost_pipeline, docker_client, standin_registry, "image-map")


@pytest.mark.parametrize("repository, pulled", [
    ("alpine", "library/alpine@sha256:"),
    ("ubuntu:20.04", "library/ubuntu@sha256:"),
    ("docker.io/library/alpine:latest", "library/alpine@sha256:"),
])
def test_a_docker_hub_name_is_pulled_from_the_operators_registry_and_runs(
        hub_system, standin_registry, repository, pulled):
    api = hub_system.api
    task = api.register(repository, name=f"hub-{uuid.uuid4().hex[:8]}")
    assert task["status"] == "READY", task
    assert task["repository"] == repository  # as registered
    assert task["digest"].startswith(f"{standin_registry.address}/{pulled}"), task
    result = api.wait_result(api.run(task["task_id"], command=["echo", "mapped"]))
    assert result["status"] == "COMPLETE", result
    detail = api.details(result["result_id"])[0]
    logs = api.get(f"/result/{result['result_id']}/detail/{detail['detail_id']}/logs/").json()
    assert logs["stdout"] == "mapped\n"


def test_a_name_the_operators_registry_lacks_ends_error_naming_the_mapped_name(hub_system, standin_registry):
    task = hub_system.api.register("python:3.12", name=f"hub-{uuid.uuid4().hex[:8]}")
    assert task["status"] == "ERROR"
    assert f"{standin_registry.address}/library/python:3.12" in task["error"]
