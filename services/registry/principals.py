"""Principals and their API tokens (issue 18): the rules the registry applies to ``principals`` and
``api_tokens``.

A token is made by the gateway (``secrets.token_urlsafe``), shown once to the admin who asked for it,
and only its sha256 crosses the broker and is stored here.  A principal is made with its first token
(its name, kind, role and team); a later token for the same name must say the same team, role and
kind (else 409).  A token is refused once revoked or expired (the database's clock, ``DB_NOW``), or
when its principal is disabled.

Teams: the team a token names must exist (``POST /team/``; the gateway asks the scheduler, which owns
``teams``, before it asks here); nothing here writes ``teams``.  A team is not deleted while principals
of it have live tokens (``live_in_team``, asked by the gateway before a team's DELETE).
"""
import re
import uuid

from sqlalchemy import select, text

from services.registry.models import ApiToken, Principal
from shared import audit
from shared.db import newest_first
from shared.errors import Conflict, NotFound, ValidationError
from shared.principals import CONFIGURED_ADMIN, ROLES, Caller

DB_NOW = "extract(epoch FROM clock_timestamp())"
HASH = re.compile(r"[0-9a-f]{64}")
TEAM = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
KINDS = ("person", "service")
LAST_USED_EVERY = 60  # seconds: last_used_at is written at most this often per token


def _hash(value, field="token_hash"):
    if not isinstance(value, str) or not HASH.fullmatch(value):
        raise ValidationError("must be 64 lower-case hex digits (a sha256)", field)
    return value


def status(token, now):
    if token.revoked_at is not None:
        return "REVOKED"
    if token.expires_at is not None and token.expires_at <= now:
        return "EXPIRED"
    return "ACTIVE"


def as_dict(token, principal, now):
    """A token as ``GET /token/`` lists it (the contract's ``Token``): never the token, nor its hash."""
    return {"token_id": token.id, "id": token.id, "principal": principal.name, "kind": principal.kind,
            "team": principal.team, "role": principal.role, "status": status(token, now),
            "created_at": token.created_at, "created_by": token.created_by, "expires_at": token.expires_at,
            "revoked_at": token.revoked_at, "last_used_at": token.last_used_at}


def db_now(session):
    return float(session.scalar(text(f"SELECT {DB_NOW}")))


def live_in_team(session, team):
    """How many principals of ``team`` have a live token (neither revoked nor expired; not disabled)."""
    count = session.scalar(text(
        "SELECT count(DISTINCT p.name) FROM principals p JOIN api_tokens t ON t.principal = p.name "
        f"WHERE p.team = :team AND NOT p.disabled AND t.revoked_at IS NULL "
        f"AND (t.expires_at IS NULL OR t.expires_at > {DB_NOW})"), {"team": str(team)[:63]})
    session.rollback()
    return int(count)


def create(session, token_hash, new, caller=None):
    """A token for ``new`` (the contract's ``NewToken``, as a dict), its principal made if new, made by
    ``caller`` (shared/principals.py; its ``token.create`` row in the audit log written with it).

    ``token_hash``: the sha256 of the token the gateway made.  The same request delivered twice (a broker
    restart) finds its token made: the same answer again (and no second audit row).  Returns the token as
    listed.
    """
    caller = audit.as_caller(caller)
    created_by = caller.principal
    _hash(token_hash)
    name, team, role, kind = new["name"], new["team"], new["role"], new.get("kind") or "service"
    if role not in ROLES:
        raise ValidationError(f"must be one of {', '.join(ROLES)}", "role")
    if kind not in KINDS:
        raise ValidationError("must be person or service", "kind")
    if name == CONFIGURED_ADMIN:
        raise ValidationError(f"{CONFIGURED_ADMIN!r} is the principal of the STEVEDORE_TOKENS tokens; "
                              "choose another name", "name")
    if not isinstance(team, str) or not TEAM.fullmatch(team):
        raise ValidationError("must be a team's name (a DNS label)", "team")
    now = db_now(session)
    new_principal = session.execute(text(
        "INSERT INTO principals (name, kind, role, team, created_at, created_by, disabled) "
        "VALUES (:name, :kind, :role, :team, :now, :by, false) ON CONFLICT (name) DO NOTHING"),
        {"name": name, "kind": kind, "role": role, "team": team, "now": now, "by": created_by}).rowcount
    principal = session.execute(select(Principal).where(Principal.name == name).with_for_update()).scalar_one()
    for field, value in (("team", team), ("role", role), ("kind", kind)):
        if getattr(principal, field) != value:
            session.rollback()
            raise Conflict(f"principal {name!r} exists with {field} {getattr(principal, field)!r}; a new token "
                           f"of it must say the same", field)
    expires = new.get("expires")
    made = session.execute(text(
        "INSERT INTO api_tokens (id, principal, token_hash, created_at, created_by, expires_at) "
        "VALUES (:id, :principal, :hash, :now, :by, :expires) ON CONFLICT (token_hash) DO NOTHING"),
        {"id": uuid.uuid4().hex, "principal": name, "hash": token_hash, "now": now, "by": created_by,
         "expires": now + expires if expires else None}).rowcount
    token = session.execute(select(ApiToken).where(ApiToken.token_hash == token_hash)).scalar_one()
    if token.principal != name:
        session.rollback()
        raise Conflict("a token with this hash exists already", "token_hash")
    if made:
        audit.record(session, caller, "token.create", "token", token.id, team,
                     {"principal": name, "role": role, "kind": kind, "new_principal": bool(new_principal),
                      "expires_at": token.expires_at})
    session.commit()
    return as_dict(token, principal, now)


def resolve(session, token_hash):
    """The principal of a live token: ``{"token_id", "principal", "role", "team", "kind", "seconds_left"}``
    (``seconds_left`` None: it never expires), or None (unknown, revoked, expired, principal disabled)."""
    if not isinstance(token_hash, str) or not HASH.fullmatch(token_hash):
        return None
    row = session.execute(text(
        f"SELECT t.id, t.expires_at - {DB_NOW} AS seconds_left, t.last_used_at, {DB_NOW} AS now, "
        "p.name, p.role, p.team, p.kind FROM api_tokens t JOIN principals p ON p.name = t.principal "
        f"WHERE t.token_hash = :hash AND t.revoked_at IS NULL AND NOT p.disabled "
        f"AND (t.expires_at IS NULL OR t.expires_at > {DB_NOW})"), {"hash": token_hash}).one_or_none()
    if row is None:
        session.rollback()
        return None
    if row.last_used_at is None or row.last_used_at < row.now - LAST_USED_EVERY:
        session.execute(text("UPDATE api_tokens SET last_used_at = :now WHERE id = :id"),
                        {"now": row.now, "id": row.id})
    session.commit()
    return {"token_id": row.id, "principal": row.name, "role": row.role, "team": row.team, "kind": row.kind,
            "seconds_left": row.seconds_left}


def owner(session, token_hash, caller):
    """``caller`` as the principal of the token whose sha256 is ``token_hash`` (live or not; its address
    kept), or ``caller`` itself when no principal's token has that hash (one of STEVEDORE_TOKENS)."""
    row = session.execute(text(
        "SELECT p.name, p.role, p.team FROM api_tokens t JOIN principals p ON p.name = t.principal "
        "WHERE t.token_hash = :hash"), {"hash": token_hash}).one_or_none()
    return caller if row is None else Caller(row.name, row.role, row.team, caller.address)


def revoke(session, token_id, caller=None):
    """Revoke a token (again: nothing changes) for ``caller`` (its ``token.revoke`` row in the audit log
    written with it); the token as listed.  404 for no such token."""
    if not isinstance(token_id, str) or len(token_id) > 32:
        raise NotFound(f"no token {token_id!r}", "token_id")
    now = db_now(session)
    token = session.get(ApiToken, token_id, with_for_update=True)
    if token is None:
        session.rollback()
        raise NotFound(f"no token {token_id!r}", "token_id")
    principal = session.get(Principal, token.principal)
    if token.revoked_at is None:
        token.revoked_at = now
        audit.record(session, caller, "token.revoke", "token", token.id, principal.team,
                     {"principal": principal.name, "role": principal.role})
    session.commit()
    return as_dict(token, principal, now)


def listing(session, limit=100, after=None, team=None):
    stmt = select(ApiToken)
    if team:
        stmt = stmt.join(Principal, Principal.name == ApiToken.principal).where(Principal.team == team)
    tokens = newest_first(session, stmt, ApiToken, ApiToken.created_at, after, limit)
    names = {token.principal for token in tokens}
    principals = {p.name: p for p in session.scalars(select(Principal).where(Principal.name.in_(names)))} \
        if names else {}
    now = db_now(session)
    session.rollback()
    return [as_dict(token, principals[token.principal], now) for token in tokens]


def team_names(session, limit=1000):
    """The teams' names, in order (the teams an admin or operator may pick)."""
    names = list(session.scalars(text("SELECT name FROM teams ORDER BY name LIMIT :limit"), {"limit": limit}))
    session.rollback()
    return names
