import pytest

from tests.support import create_database, drop_database


@pytest.fixture
def own_database_url():
    """A fresh migrated database for one test, so claims see only that test's work."""
    url = create_database()
    yield url
    drop_database(url)


@pytest.fixture
def service_config(rabbit_config, own_database_url):
    """nameko config for one service under test: its own vhost and database."""
    return {
        **rabbit_config,
        "DB_URIS": {"registry:Base": own_database_url, "scheduler:Base": own_database_url},
        "LEASE_SECONDS": 30,
        "API_TOKENS": "t",
        "IMAGE_GC": "off",  # the test sessions share one engine and its images
    }


@pytest.fixture
def registry(container_factory, service_config):
    """The registry service alone, started, on its own vhost and database."""
    from services.registry.service import RegistryService

    container = container_factory(RegistryService, service_config)
    container.start()
    return container


@pytest.fixture
def sql(own_database_url):
    """Run one statement on the test's database, in a transaction of its own."""
    from sqlalchemy import create_engine, text

    engine = create_engine(own_database_url)

    def run(statement, **params):
        with engine.begin() as conn:
            return conn.execute(text(statement), params)

    yield run
    engine.dispose()
