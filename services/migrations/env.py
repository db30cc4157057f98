"""Alembic environment: both services' tables live in one database.

Each migration runs in a transaction of its own (``transaction_per_migration``): one that must not hold its
locks to the end (0025: a backfill in small transactions, an index built CONCURRENTLY) commits its first part
with ``op.get_context().autocommit_block()``, and that commits only the migrations before it, each whole.
"""
from alembic import context
from sqlalchemy import create_engine, pool

from services.registry.models import Base as RegistryBase
from services.scheduler.models import Base as SchedulerBase
from stevedore_jobs.settings import database_url

target_metadata = [RegistryBase.metadata, SchedulerBase.metadata]


def run_migrations_offline():
    context.configure(url=database_url(), target_metadata=target_metadata, literal_binds=True,
                      transaction_per_migration=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online():
    url = context.config.attributes.get("url") or database_url()
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata,
                          transaction_per_migration=True)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
