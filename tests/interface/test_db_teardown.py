"""A worker whose database connection PostgreSQL ended mid-transaction does not take its service down.

nameko runs each dependency's ``worker_teardown`` after the worker, and kills
the whole service container for an error raised there.  nameko-sqlalchemy
closes the worker's session in it, which rolls back; on a connection the
server terminated (a restart, an administrator's command) that rollback
raised, and the service (the registry, in the fuzz, while another test
restarted PostgreSQL) stopped.
"""
from nameko.rpc import rpc
from nameko.testing.services import entrypoint_hook
from sqlalchemy import text
from sqlalchemy.orm import DeclarativeBase

from shared.db import Database
from tests.interface.test_db_ping import _terminate


class Base(DeclarativeBase):
    pass


class Holder:
    name = "holder"
    db = Database(Base)

    @rpc
    def ended_mid_transaction(self, url):
        """Open a transaction, have PostgreSQL end this very connection, return before rolling back."""
        pid = self.db.session.execute(text("SELECT pg_backend_pid()")).scalar()
        _terminate(url, pid)
        return pid

    @rpc
    def backend(self):
        return self.db.session.execute(text("SELECT pg_backend_pid()")).scalar()


def test_a_worker_whose_connection_was_ended_mid_transaction_leaves_the_service_up(
        container_factory, rabbit_config, own_database_url):
    container = container_factory(Holder, {**rabbit_config, "DB_URIS": {"holder:Base": own_database_url}})
    container.start()
    with entrypoint_hook(container, "ended_mid_transaction") as ended:
        ended_pid = ended(own_database_url)
    with entrypoint_hook(container, "backend") as backend:
        assert backend() != ended_pid  # a fresh connection, from a service still running
    assert container.started
