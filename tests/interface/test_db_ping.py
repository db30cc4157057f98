"""The pooled connection check of shared/db.py against the real PostgreSQL.

A quiet connection is used without a round trip; one the server ended (as a
restart does) is found before use and replaced, so the statement succeeds.
"""
import time

import psycopg2
from sqlalchemy import create_engine, text

from shared.db import has_word_from_server, psycopg2_url, quiet_ping
from tests.support import wait_until


def _terminate(url, pid):
    admin = psycopg2.connect(url.replace("postgresql+psycopg2://", "postgresql://"))
    admin.autocommit = True
    try:
        with admin.cursor() as cur:
            cur.execute("SELECT pg_terminate_backend(%s)", (pid,))
            assert cur.fetchone()[0] is True
    finally:
        admin.close()


def test_a_quiet_connection_has_no_word_and_an_ended_one_has(own_database_url):
    conn = psycopg2.connect(own_database_url.replace("postgresql+psycopg2://", "postgresql://"))
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1")
        conn.rollback()
        assert has_word_from_server(conn) is False
        _terminate(own_database_url, conn.get_backend_pid())
        wait_until(lambda: has_word_from_server(conn), timeout=5)
    finally:
        conn.close()
    assert has_word_from_server(conn) is True  # closed by us


def test_pool_skips_the_round_trip_when_quiet_and_replaces_an_ended_connection(own_database_url):
    engine = create_engine(psycopg2_url(own_database_url), pool_pre_ping=True, pool_size=1,
                           max_overflow=0)
    pings = []
    real = engine.dialect.do_ping

    def counted(dbapi_connection):
        pings.append(dbapi_connection)
        return real(dbapi_connection)

    engine.dialect.do_ping = quiet_ping(counted)
    try:
        with engine.connect() as conn:
            first_pid = conn.execute(text("SELECT pg_backend_pid()")).scalar()
        for _ in range(5):
            with engine.connect() as conn:
                assert conn.execute(text("SELECT pg_backend_pid()")).scalar() == first_pid
        assert pings == []  # five check-outs of a quiet connection, no SELECT 1

        _terminate(own_database_url, first_pid)
        time.sleep(0.2)
        with engine.connect() as conn:  # the ping runs, fails, the pool reconnects
            second_pid = conn.execute(text("SELECT pg_backend_pid()")).scalar()
        assert len(pings) == 1
        assert second_pid != first_pid
    finally:
        engine.dispose()
