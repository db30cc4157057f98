"""The registry service alone, on the real broker, database and Docker engine."""
from nameko.testing.services import entrypoint_hook, entrypoint_waiter

from services.registry.service import RegistryService


def test_create_task_imports_the_image_and_pins_its_digest(container_factory, service_config, test_images):
    container = container_factory(RegistryService, service_config)
    container.start()
    with entrypoint_waiter(container, "on_task_submitted", timeout=60):
        with entrypoint_hook(container, "create_task") as create_task:
            task = create_task({"repository": test_images["env"], "name": "interface-env"})
    assert task["status"] == "SUBMITTED"
    with entrypoint_hook(container, "get_task") as get_task:
        imported = get_task(task["task_id"])
    assert imported["status"] == "READY"
    assert "@sha256:" in imported["digest"]
    assert imported["imported_at"] >= imported["created_at"]


def test_a_missing_image_ends_the_task_in_error(container_factory, service_config, image_registry):
    container = container_factory(RegistryService, service_config)
    container.start()
    with entrypoint_waiter(container, "on_task_submitted", timeout=60):
        with entrypoint_hook(container, "create_task") as create_task:
            task = create_task({"repository": f"{image_registry.address}/nothing/here:1"})
    with entrypoint_hook(container, "get_task") as get_task:
        failed = get_task(task["task_id"])
    assert failed["status"] == "ERROR"
    assert failed["error"].startswith("image not found")
