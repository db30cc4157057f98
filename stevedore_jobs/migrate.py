"""``stevedore-migrate``: create the database if missing, then ``alembic upgrade head``.

The migrations are package data of ``services`` (``services/migrations``), found
through the installed package, so a wheel installed anywhere migrates as a
checkout does.
"""
import argparse
import sys
import time
from importlib.resources import files

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from stevedore_jobs.settings import database_url

# a directory on disk: alembic reads env.py and versions/ from a path
MIGRATIONS = str(files("services") / "migrations")


def ensure_database(url, wait=60):
    """Create the database named in ``url`` if it does not exist yet."""
    target = make_url(url)
    admin = create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    deadline = time.monotonic() + wait
    while True:
        try:
            with admin.connect() as conn:
                exists = conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"),
                                      {"n": target.database}).scalar()
                if not exists:
                    conn.execute(text(f'CREATE DATABASE "{target.database}"'))
            break
        except OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)
    admin.dispose()


def alembic_config(url=None):
    """Alembic's configuration for our migrations (the database from ``url``, else DATABASE_URL)."""
    config = Config()
    config.set_main_option("script_location", MIGRATIONS)
    if url:
        config.attributes["url"] = url
    return config


def upgrade(url):
    ensure_database(url)
    command.upgrade(alembic_config(url), "head")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", default=database_url(), help="database URL (default: $DATABASE_URL)")
    args = parser.parse_args(argv)
    upgrade(args.url)
    print(f"database {make_url(args.url).database} is at the latest schema", file=sys.stderr)


if __name__ == "__main__":
    main()
