"""IMAGE_REGISTRIES on the real registry service: images only from the registries the operator lists.

Every reference here names the loopback test registry (or Docker Hub, refused before any pull): no test
sends traffic off loopback; the address rule itself is tested in tests/unit/test_image_sources.py.
"""
import uuid

import pytest

from tests.support import own_system

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def listed_system(request, vhost_pipeline, image_registry, test_images):
    """A system whose IMAGE_REGISTRIES lists the loopback test registry by its address alone."""
    yield from own_system(request, vhost_pipeline, "image-sources",
                          {"IMAGE_REGISTRIES": image_registry.address, "IMAGE_REGISTRY_PRIVATE": "allow"})


def other_name(reference, image_registry):
    """``reference`` of the loopback test registry, named by a host the list does not hold."""
    return reference.replace(image_registry.address, f"localhost:{image_registry.port}", 1)


def test_an_image_of_a_listed_registry_is_registered_and_imported(listed_system, test_images):
    task = listed_system.api.register(test_images["ok"])
    assert task["status"] == "READY", task
    result = listed_system.api.wait_result(listed_system.api.run(task["task_id"]))
    assert result["status"] == "COMPLETE", result


@pytest.mark.parametrize("name", ["unlisted host", "docker hub"])
def test_an_image_of_a_registry_the_list_does_not_hold_is_a_400_naming_repository(
        listed_system, image_registry, test_images, name):
    repository = other_name(test_images["ok"], image_registry) if name == "unlisted host" else "busybox"
    host = f"localhost:{image_registry.port}" if name == "unlisted host" else "docker.io"
    task_name = f"refused-{uuid.uuid4().hex[:8]}"
    response = listed_system.api.post("/task/", {"repository": repository, "name": task_name})
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["error"] == "VALIDATION_ERROR"
    assert body["message"].startswith(f"repository: registry {host}")
    assert f"IMAGE_REGISTRIES allows {image_registry.address}" in body["message"]
    names = [task["name"] for task in listed_system.api.get("/task/").json()]
    assert task_name not in names


def test_a_tes_executor_image_of_an_unlisted_registry_is_a_400_naming_it(listed_system, image_registry,
                                                                        test_images):
    executors = [{"image": test_images["ok"], "command": ["true"]},
                 {"image": other_name(test_images["ok"], image_registry), "command": ["true"]}]
    response = listed_system.api.post("/ga4gh/tes/v1/tasks", {"executors": executors})
    assert response.status_code == 400, response.text
    assert response.json()["message"].startswith(f"executors[1].image: registry localhost:{image_registry.port} ")
