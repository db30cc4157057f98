"""Database access for the services that own tables (registry, scheduler).

nameko-sqlalchemy's ``Database`` with two changes: psycopg2 is made
cooperative under eventlet (psycogreen), so a slow query does not stall every
other greenthread of the service, and connections are checked before use, so a
restarted PostgreSQL costs one failed ping rather than a failed request.

The check before use is SQLAlchemy's ``pool_pre_ping``, made cheap: a pooled
connection whose socket has nothing to read is one the server has neither
closed nor sent an error on (a restarting or stopping PostgreSQL sends
"terminating connection" and closes), so it is used without the ``SELECT 1``
round trip; anything to read, or a closed connection, gets the real ping and
SQLAlchemy's invalidation as before.  That round trip was a quarter of the
scheduler's statements per execution.  A server that vanished without a word
(a host lost, a cable cut) is found by the statement itself, as it would be by
the ping: the statement fails with a disconnect, the pool is invalidated, and
the caller's retry (event handlers) or the client's (RPCs) meets a fresh
connection.

A worker's sessions are closed after it (``worker_teardown``); a session whose
connection the server ended mid-transaction (a restart, an administrator's
command) cannot roll back, and nameko kills the whole service for an error
raised there, so that session's connection is discarded instead.
"""
import logging

from nameko_sqlalchemy import Database as _Database
from nameko_sqlalchemy.database import DB_URIS_KEY, Session
from sqlalchemy import create_engine, or_, text
from sqlalchemy.exc import DBAPIError
from eventlet import patcher
from sqlalchemy.orm import sessionmaker

from shared.errors import ValidationError
from shared import pages, validation

log = logging.getLogger(__name__)

_patched = False


def make_cooperative():
    global _patched
    if not _patched:
        from psycogreen.eventlet import patch_psycopg

        patch_psycopg()
        _patched = True


def psycopg2_url(url):
    """Pin plain postgres:// and postgresql:// URLs to the psycopg2 driver.

    SQLAlchemy 2.1 maps a bare postgresql:// to psycopg 3; we ship psycopg2.
    """
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg2://" + url[len(prefix):]
    return url


_select = patcher.original("select")  # a poll that does not yield to the hub
_ATTENTION = _select.POLLIN | _select.POLLPRI | _select.POLLERR | _select.POLLHUP


def has_word_from_server(dbapi_connection):
    """Whether an idle psycopg2 connection is closed or its server has sent something unasked."""
    if dbapi_connection.closed:
        return True
    try:
        poller = _select.poll()
        poller.register(dbapi_connection.fileno(), _ATTENTION)
        return bool(poller.poll(0))
    except (OSError, ValueError):
        return True


def quiet_ping(real_ping):
    """A dialect ``do_ping`` that pings only a connection the server has said something on."""
    def do_ping(dbapi_connection):
        if not has_word_from_server(dbapi_connection):
            return True
        return real_ping(dbapi_connection)
    return do_ping


class Database(_Database):
    def __init__(self, declarative_base, **kwargs):
        engine_options = {"pool_pre_ping": True, "pool_size": 10, "max_overflow": 10}
        engine_options.update(kwargs.pop("engine_options", {}))
        session_options = {"expire_on_commit": False}
        session_options.update(kwargs.pop("session_options", {}))
        super().__init__(declarative_base, engine_options=engine_options,
                         session_options=session_options, **kwargs)

    def setup(self):
        make_cooperative()
        key = f"{self.container.service_name}:{self.declarative_base.__name__}"
        self.db_uri = psycopg2_url(self.container.config[DB_URIS_KEY][key])
        self.engine = create_engine(self.db_uri, **self.engine_options)
        self.engine.dialect.do_ping = quiet_ping(self.engine.dialect.do_ping)
        self.Session = sessionmaker(bind=self.engine, class_=Session, **self.session_options)

    def worker_teardown(self, worker_ctx):
        db = self.dbs.pop(worker_ctx, None)
        if db is None:
            return
        for session in filter(None, [db._worker_session, *db._context_sessions]):
            try:
                session.close()
            except DBAPIError as exc:  # its connection is gone: never back into the pool
                log.warning("a database connection ended under a worker; discarded: %s",
                            str(exc.orig or exc).strip().splitlines()[0])
                try:
                    session.invalidate()
                except DBAPIError:
                    pass


def ping(session):
    """'ok' when the database answers; for health checks."""
    session.execute(text("SELECT 1"))
    session.rollback()
    return "ok"


def newest_first(session, stmt, model, stamp, after, limit, caller=None, stream=False):
    """``stmt`` ordered newest first by (``stamp``, id), the page after the row whose id is ``after``
    (one of a team ``caller`` does not cover is no such row), or after the place ``(id, stamp)`` that
    ``after`` is (``pages.cursor``: whether or not a row is there now; ``(None, stamp)``: the rows older than
    ``stamp``).  ``stream``: an iterator reading
    ``pages.ROWS_AT_ONCE`` rows at a time (big items: shared/pages.py), to be read before the
    transaction ends; else a list."""
    stmt = stmt.order_by(stamp.desc(), model.id.desc()).limit(limit)
    if isinstance(after, tuple):
        anchor_id, anchor_stamp = after
        if isinstance(anchor_stamp, (str, bool)):
            raise ValidationError("must be the time of the item named by after (epoch seconds)", "after_key")
        stmt = stmt.where(stamp < anchor_stamp if anchor_id is None else
                          or_(stamp < anchor_stamp, (stamp == anchor_stamp) & (model.id < anchor_id)))
    elif after:
        anchor = session.get(model, after) if isinstance(after, str) and len(after) <= 32 else None
        if anchor is not None and caller is not None and not caller.covers(anchor.team):
            anchor = None
        if anchor is None:
            raise ValidationError("is not the id of a listed item", "after")
        anchor_stamp = getattr(anchor, stamp.key)
        stmt = stmt.where(or_(stamp < anchor_stamp, (stamp == anchor_stamp) & (model.id < anchor.id)))
    if stream:
        return session.scalars(stmt, execution_options={"yield_per": pages.ROWS_AT_ONCE})
    return list(session.scalars(stmt))


def labelled(stmt, column, filters):
    """``stmt`` keeping the rows whose ``column`` (JSONB labels) holds every ``?label=`` filter:
    ``key=value`` by containment (``@>``), ``key`` by ``?``; both answered by the column's GIN index."""
    equal, present = validation.label_filters(filters)
    for key, value in equal:
        stmt = stmt.where(column.contains({key: value}))
    for key in present:
        stmt = stmt.where(column.has_key(key))
    return stmt


def team_scoped(stmt, column, caller, team=None):
    """``stmt`` keeping the rows ``caller`` (shared/principals.py) may see: its own team's, unless its
    role covers every team; with ``team`` (a list's ``?team=``, or the team an admin picked), that
    team's alone."""
    if not caller.all_teams:
        stmt = stmt.where(column == caller.team)
    if team:
        stmt = stmt.where(column == team)
    return stmt
