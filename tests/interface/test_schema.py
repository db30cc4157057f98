"""The alembic migrations create exactly the tables the models describe."""
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from services.registry.models import Base as RegistryBase
from services.scheduler.models import Base as SchedulerBase
from shared.audit import AuditBase  # audit_log: appended by every service (shared/audit.py)


def test_migrated_schema_matches_the_models(database_url):
    engine = create_engine(database_url)
    with engine.connect() as conn:
        context = MigrationContext.configure(conn)
        diff = compare_metadata(context, [RegistryBase.metadata, SchedulerBase.metadata, AuditBase.metadata])
    engine.dispose()
    assert diff == []
