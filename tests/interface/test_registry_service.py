"""The registry service alone, on the real broker, database and Docker engine."""
import socket
import time

import pytest
from nameko.events import event_handler
from nameko.testing.services import entrypoint_hook, entrypoint_waiter

from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from services.registry import tasks
from services.registry.service import RegistryService
from shared.errors import ValidationError
from tests.support import ADMIN, wait_until


def test_create_task_imports_the_image_and_pins_its_digest(container_factory, service_config, test_images):
    container = container_factory(RegistryService, service_config)
    container.start()
    with entrypoint_waiter(container, "on_task_submitted", timeout=60):
        with entrypoint_hook(container, "create_task") as create_task:
            task = create_task({"repository": test_images["env"], "name": "interface-env"}, caller=ADMIN)
    assert task["status"] == "SUBMITTED"
    with entrypoint_hook(container, "get_task") as get_task:
        imported = get_task(task["task_id"], caller=ADMIN)
    assert imported["status"] == "READY"
    assert "@sha256:" in imported["digest"]
    assert imported["imported_at"] >= imported["created_at"]


def test_a_missing_image_ends_the_task_in_error(container_factory, service_config, image_registry):
    container = container_factory(RegistryService, service_config)
    container.start()
    with entrypoint_waiter(container, "on_task_submitted", timeout=60):
        with entrypoint_hook(container, "create_task") as create_task:
            task = create_task({"repository": f"{image_registry.address}/nothing/here:1"}, caller=ADMIN)
    with entrypoint_hook(container, "get_task") as get_task:
        failed = get_task(task["task_id"], caller=ADMIN)
    assert failed["status"] == "ERROR"
    assert failed["error"].startswith("image not found")


def test_a_pull_that_stalls_ends_the_task_in_error_at_pull_timeout(container_factory, service_config):
    # a "registry" whose connections are taken (the kernel's backlog) and never answered
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    try:
        container = container_factory(RegistryService, {**service_config, "PULL_TIMEOUT": 3})
        container.start()
        with entrypoint_waiter(container, "on_task_submitted", timeout=60):
            with entrypoint_hook(container, "create_task") as create_task:
                task = create_task({"repository": f"127.0.0.1:{silent.getsockname()[1]}/stalls/here:1"}, caller=ADMIN)
        with entrypoint_hook(container, "get_task") as get_task:
            failed = get_task(task["task_id"], caller=ADMIN)
    finally:
        silent.close()
    assert failed["status"] == "ERROR"
    assert "did not finish within PULL_TIMEOUT (3s)" in failed["error"], failed["error"]


def test_a_task_left_importing_by_a_stopped_registry_is_ended_by_the_sweep(
        container_factory, service_config, test_images):
    container = container_factory(RegistryService, {**service_config, "PULL_TIMEOUT": 30})
    container.start()
    made = []
    for name in ("abandoned", "still-pulling"):
        with entrypoint_waiter(container, "on_task_submitted", timeout=60):
            with entrypoint_hook(container, "create_task") as create_task:
                made.append(create_task({"repository": test_images["ok"], "name": name}, caller=ADMIN)["task_id"])
    abandoned, pulling = made
    engine = create_engine(service_config["DB_URIS"]["registry:Base"])
    try:
        with engine.begin() as connection:  # as a registry stopped mid-pull leaves them
            for task_id, since in ((abandoned, 30 + 61), (pulling, 30 + 50)):
                connection.execute(text("UPDATE tasks SET status = 'IMPORTING', updated_at = :at "
                                        "WHERE id = :id"), {"at": time.time() - since, "id": task_id})
    finally:
        engine.dispose()
    with entrypoint_hook(container, "sweep_imports") as sweep:
        sweep()
    with entrypoint_hook(container, "get_task") as get_task:
        ended, untouched = get_task(abandoned, caller=ADMIN), get_task(pulling, caller=ADMIN)
    assert ended["status"] == "ERROR" and ended["error"].startswith("import interrupted"), ended
    assert untouched["status"] == "IMPORTING"


def test_an_import_whose_last_write_fails_on_a_database_outage_is_done_again(
        container_factory, service_config, test_images, monkeypatch):
    real, failed = tasks.set_status, []

    def set_status(session, task, status, **fields):
        if status == "READY" and not failed:  # the database goes away just then, once
            failed.append(task.id)
            session.rollback()
            raise OperationalError("UPDATE tasks", {}, Exception("server closed the connection"))
        return real(session, task, status, **fields)

    monkeypatch.setattr(tasks, "set_status", set_status)
    container = container_factory(RegistryService, service_config)
    container.start()
    with entrypoint_hook(container, "create_task") as create_task:
        task_id = create_task({"repository": test_images["ok"], "name": "last-write"}, caller=ADMIN)["task_id"]

    def status():
        with entrypoint_hook(container, "get_task") as get_task:
            return get_task(task_id, caller=ADMIN)["status"]

    wait_until(lambda: status() == "READY", timeout=30, what="the import to be done again")
    assert failed == [task_id]


class TaskEvents:
    """What the registry announces of its tasks, as a subscriber hears it."""
    name = "interface_task_events"
    heard = []

    @event_handler("registry", "task_submitted")
    def on_task_submitted(self, payload):
        self.heard.append(("task_submitted", payload))

    @event_handler("registry", "task_imported")
    def on_task_imported(self, payload):
        self.heard.append(("task_imported", payload))

    @event_handler("registry", "task_deleted")
    def on_task_deleted(self, payload):
        self.heard.append(("task_deleted", payload))


def test_task_events_carry_a_version_that_rises_and_task_facts_tell_the_latest(
        container_factory, service_config, test_images):
    TaskEvents.heard = []
    listener = container_factory(TaskEvents, service_config)
    listener.start()
    container = container_factory(RegistryService, service_config)
    container.start()
    with entrypoint_waiter(listener, "on_task_imported", timeout=60):
        with entrypoint_hook(container, "create_task") as create_task:
            task = create_task({"repository": test_images["ok"], "name": "interface-versions"}, caller=ADMIN)
    with entrypoint_waiter(listener, "on_task_imported", timeout=60):
        with entrypoint_hook(container, "import_task") as import_task:
            import_task(task["task_id"], caller=ADMIN)
    with entrypoint_hook(container, "task_facts") as task_facts:
        facts = task_facts(task["task_id"], caller=ADMIN)
    assert facts["status"] == "READY" and "@sha256:" in facts["digest"]
    versions = [(event, payload["version"]) for event, payload in TaskEvents.heard]
    # created 1, IMPORTING 2, READY 3; re-import SUBMITTED 4, IMPORTING 5, READY 6
    assert versions == [("task_submitted", 1), ("task_imported", 3), ("task_submitted", 4),
                        ("task_imported", 6)]
    assert facts["version"] == 6
    with entrypoint_waiter(listener, "on_task_deleted"):
        with entrypoint_hook(container, "delete_task") as delete_task:
            delete_task(task["task_id"], caller=ADMIN)
    # with its team and maker (the configured admin, of the default team)
    assert TaskEvents.heard[-1] == ("task_deleted", {"task_id": task["task_id"], "name": "interface-versions",
                                                     "team": "default", "submitted_by": "admin"})


def test_a_task_whose_registry_is_no_longer_listed_is_not_pulled_again(container_factory, service_config,
                                                                        test_images, image_registry):
    before = container_factory(RegistryService, service_config)
    before.start()
    with entrypoint_waiter(before, "on_task_submitted", timeout=60):
        with entrypoint_hook(before, "create_task") as create_task:
            task = create_task({"repository": test_images["ok"], "name": "listed-before"}, caller=ADMIN)
    with entrypoint_hook(before, "get_task") as get_task:
        ready = get_task(task["task_id"], caller=ADMIN)
    assert ready["status"] == "READY", ready
    before.stop()
    # the operator lists only another registry: the task's, named as before, is refused at the door, and
    # its IMPORT ends ERROR without a pull, its digest kept
    container = container_factory(RegistryService, {**service_config, "IMAGE_REGISTRIES": "registry.example.com"})
    container.start()
    with entrypoint_hook(container, "create_task") as create_task:
        with pytest.raises(ValidationError) as caught:
            create_task({"repository": test_images["ok"], "name": "refused-now"}, caller=ADMIN)
    assert caught.value.field == "repository"
    assert str(caught.value).startswith(f"repository: registry {image_registry.address} is not one")
    with entrypoint_waiter(container, "on_task_submitted", timeout=60):
        with entrypoint_hook(container, "import_task") as import_task:
            import_task(task["task_id"], caller=ADMIN)
    with entrypoint_hook(container, "get_task") as get_task:
        refused = get_task(task["task_id"], caller=ADMIN)
    assert refused["status"] == "ERROR"
    assert refused["error"].startswith(f"not pulled: registry {image_registry.address} is not one"), refused
    assert refused["digest"] == ready["digest"]
