"""``stevedore-migrate``: create the database if missing, then ``alembic upgrade head``."""
import argparse
import os
import sys
import time

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from stevedore_jobs.settings import database_url

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


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


def upgrade(url):
    ensure_database(url)
    config = Config(os.path.join(ROOT, "alembic.ini"))
    config.set_main_option("script_location", os.path.join(ROOT, "migrations"))
    config.attributes["url"] = url
    command.upgrade(config, "head")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", default=database_url(), help="database URL (default: $DATABASE_URL)")
    args = parser.parse_args(argv)
    upgrade(args.url)
    print(f"database {make_url(args.url).database} is at the latest schema", file=sys.stderr)


if __name__ == "__main__":
    main()
