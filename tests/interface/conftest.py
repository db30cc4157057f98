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
    }
