"""Where the backbone is, from the environment (the same variables config.yml reads)."""
import os

from shared.db import psycopg2_url

DEFAULT_DATABASE_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/stevedore"
DEFAULT_AMQP_URI = "pyamqp://guest:guest@127.0.0.1:5672/"


def database_url():
    return psycopg2_url(os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL))

