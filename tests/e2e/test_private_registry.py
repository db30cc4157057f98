"""Tasks from a private registry (htpasswd auth), on the real registry, runners and Docker."""
import io
import uuid

import docker
import pytest

from tests.support import ImageRegistry

pytestmark = pytest.mark.e2e

USER = "alice"
PASSWORD = f"s3cret-{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="module")
def private_registry():
    registry = ImageRegistry(users={USER: PASSWORD}).start()
    yield registry
    registry.stop()


@pytest.fixture(scope="module")
def private_image(docker_client, private_registry, test_images):
    """The busybox test image with a label of its own, so that its image id is its own: the runner test below
    removes it from the engine, which Docker refuses for an image other tests' images are built from (every
    test image of the "ok" behaviour is one image id)."""
    ref = f"{private_registry.address}/stevedore-test/private:ok"
    dockerfile = f"FROM {test_images['ok']}\nLABEL stevedore-test.private={uuid.uuid4().hex}\n"
    docker_client.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=ref, rm=True)
    pushed = list(docker_client.images.push(ref, stream=True, decode=True,
                                            auth_config={"username": USER, "password": PASSWORD}))
    assert not [line for line in pushed if "error" in line], pushed
    docker_client.images.remove(ref, noprune=True)
    return ref


def register(api, repository, **credentials):
    response = api.post("/task/", {"repository": repository, "name": f"private-{uuid.uuid4().hex[:8]}",
                                   **credentials})
    assert response.status_code == 201, response.text
    assert PASSWORD not in response.text
    return api.wait_task(response.json()["task_id"])


def test_a_task_with_the_right_password_becomes_ready_and_shows_only_that_it_is_private(
        api, private_image):
    task = register(api, private_image, username=USER, password=PASSWORD)
    assert task["status"] == "READY", task
    assert task["private"] is True
    assert "@sha256:" in task["digest"]
    assert "password" not in task and "username" not in task and "credentials" not in task

    one = api.get(f"/task/{task['task_id']}/")
    listing = api.get("/task/", params={"limit": 1000})
    for response in (one, listing):
        assert response.status_code == 200
        assert PASSWORD not in response.text
        assert "credentials" not in response.text
    assert [t["private"] for t in listing.json() if t["task_id"] == task["task_id"]] == [True]


def test_a_wrong_password_ends_the_task_in_error_saying_authentication_was_refused(api, private_image):
    task = register(api, private_image, username=USER, password="not-the-password")
    assert task["status"] == "ERROR"
    assert "authentication refused" in task["error"]
    assert task["private"] is True


def test_a_private_image_without_credentials_ends_in_error(api, private_image):
    task = register(api, private_image)
    assert task["status"] == "ERROR"
    assert "authentication refused" in task["error"]
    assert task["private"] is False


@pytest.mark.parametrize("body, field", [
    ({"username": USER}, "password"),
    ({"password": "x"}, "username"),
    ({"username": USER, "password": 12}, "password"),
    ({"username": "", "password": "x"}, "username"),
])
def test_credentials_come_in_pairs_of_strings_or_the_task_is_refused_with_400(api, private_image, body, field):
    response = api.post("/task/", {"repository": private_image, **body})
    assert response.status_code == 400, response.text
    assert response.json()["message"].startswith(f"{field}:")


def test_a_runner_pulls_a_private_image_with_the_tasks_credentials(api, private_image, docker_client):
    task = register(api, private_image, username=USER, password=PASSWORD)
    assert task["status"] == "READY", task
    # the registry's pull left the image on the engine the runners share: take it away
    docker_client.images.remove(task["image_id"], force=True)
    with pytest.raises(docker.errors.ImageNotFound):
        docker_client.images.get(task["digest"])

    result = api.wait_result(api.run(task["task_id"], times=1), timeout=120)
    assert result["status"] == "COMPLETE", (result, api.details(result["result_id"]))
    assert docker_client.images.get(task["digest"]).id == task["image_id"]


def test_the_password_is_in_no_service_log(system, private_image):
    # runs last in this module: after every test above has sent it
    for label in system.plan:
        assert PASSWORD not in system.log(label), f"password found in the {label} log"
