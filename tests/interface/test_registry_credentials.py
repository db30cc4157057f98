"""Private-registry credentials in the registry alone: sealed at rest, opened for runners only."""
import pytest
from cryptography.fernet import Fernet
from nameko.testing.services import entrypoint_waiter
from sqlalchemy import create_engine, text

from services.registry.service import RegistryService
from shared.errors import Unavailable
from tests.support import call


def test_credentials_are_refused_when_the_operator_set_no_key(container_factory, service_config, test_images):
    container = container_factory(RegistryService, service_config)
    container.start()
    with pytest.raises(Unavailable) as caught:
        call(container, "create_task", {"repository": test_images["ok"], "username": "u", "password": "p"})
    assert "STEVEDORE_CREDENTIALS_KEY" in str(caught.value)
    assert call(container, "list_tasks") == []


def test_pull_credentials_open_what_create_task_sealed(container_factory, service_config, own_database_url,
                                                       test_images):
    config = {**service_config, "CREDENTIALS_KEY": Fernet.generate_key().decode()}
    container = container_factory(RegistryService, config)
    container.start()
    login = {"username": "bob", "password": "pa55-w0rd-at-rest"}
    with entrypoint_waiter(container, "on_task_submitted", timeout=60):
        private = call(container, "create_task", {"repository": test_images["ok"], "name": "p", **login})
    with entrypoint_waiter(container, "on_task_submitted", timeout=60):
        public = call(container, "create_task", {"repository": test_images["ok"], "name": "q"})
    assert private["private"] is True and public["private"] is False
    assert "pa55" not in repr(call(container, "get_task", private["task_id"]))

    assert call(container, "pull_credentials", private["task_id"]) == login
    assert call(container, "pull_credentials", public["task_id"]) is None

    engine = create_engine(own_database_url)
    with engine.connect() as conn:
        stored = conn.execute(text("SELECT credentials FROM tasks WHERE id = :id"),
                              {"id": private["task_id"]}).scalar_one()
    engine.dispose()
    assert stored and "pa55" not in stored and "bob" not in stored
