"""Web UI sessions: the rules the registry applies to the ui_sessions table.

The gateway signs a person in (services/gateway/sessions.py): it makes a random
secret for the browser's cookie and hands the registry only its sha256, with a
fingerprint of the API token the person signed in with.  A session lives until
it expires or is revoked (signing out deletes its row); the gateway refuses it
as well once its token is no longer one of STEVEDORE_TOKENS.  Every time is
the database's clock (``DB_NOW``), so no host's clock decides an expiry.
"""
import re

from sqlalchemy import text

from services.registry import principals
from shared import audit
from shared.errors import Conflict, ValidationError

DB_NOW = "extract(epoch FROM clock_timestamp())"
HASH = re.compile(r"[0-9a-f]{64}")
SECONDS_MAX = 366 * 24 * 3600
# sign-ins kept per API token; beyond it the oldest session of that token ends
PER_TOKEN_MAX = 1000


def _hash(value, field):
    if not isinstance(value, str) or not HASH.fullmatch(value):
        raise ValidationError("must be 64 lower-case hex digits (a sha256)", field)
    return value


def target(secret_hash):
    """What the audit log names a session by: the first 16 hex digits of its secret's hash (which
    neither is nor leads to the cookie's secret)."""
    return secret_hash[:16]


def create(session, secret_hash, token_fingerprint, seconds, caller=None):
    """Store a new session for ``seconds``; answer its times (database clock, epoch seconds).
    The sign-in is in the audit log (``session.sign_in``, by ``caller``)."""
    _hash(secret_hash, "secret_hash")
    _hash(token_fingerprint, "token_fingerprint")
    if isinstance(seconds, bool) or not isinstance(seconds, int) or not 1 <= seconds <= SECONDS_MAX:
        raise ValidationError(f"must be an integer from 1 to {SECONDS_MAX}", "seconds")
    # a request delivered twice (a broker restart) finds its row made: the same answer again
    session.execute(text(
        f"INSERT INTO ui_sessions (id, token_fingerprint, created_at, expires_at) "
        f"VALUES (:id, :fp, {DB_NOW}, {DB_NOW} + :seconds) ON CONFLICT (id) DO NOTHING"),
        {"id": secret_hash, "fp": token_fingerprint, "seconds": seconds})
    row = session.execute(text(
        "SELECT created_at, expires_at FROM ui_sessions WHERE id = :id AND token_fingerprint = :fp"),
        {"id": secret_hash, "fp": token_fingerprint}).one_or_none()
    if row is None:
        session.rollback()
        raise Conflict("a session with this secret exists already", "secret_hash")
    session.execute(text(
        "DELETE FROM ui_sessions WHERE id IN (SELECT id FROM ui_sessions WHERE token_fingerprint = :fp "
        "ORDER BY created_at DESC, id OFFSET :keep)"), {"fp": token_fingerprint, "keep": PER_TOKEN_MAX})
    audit.record(session, caller, "session.sign_in", "session", target(secret_hash),
                 summary={"expires_at": row.expires_at})
    session.commit()
    return {"created_at": row.created_at, "expires_at": row.expires_at}


def check(session, secret_hash):
    """The live session with this hash: its token fingerprint, expiry and seconds left; else None."""
    if not isinstance(secret_hash, str) or not HASH.fullmatch(secret_hash):
        return None  # a cookie that was never ours
    row = session.execute(text(
        f"SELECT token_fingerprint, expires_at, expires_at - {DB_NOW} AS seconds_left "
        f"FROM ui_sessions WHERE id = :id AND expires_at > {DB_NOW}"), {"id": secret_hash}).one_or_none()
    session.rollback()  # a read: end the transaction, keep no snapshot open
    if row is None:
        return None
    return {"token_fingerprint": row.token_fingerprint, "expires_at": row.expires_at,
            "seconds_left": row.seconds_left}


def revoke(session, secret_hash, caller=None):
    """End a session (sign-out); True if there was one to end.  Then in the audit log: ``session.sign_out``
    by the session's own principal, that of the token it was made with (revoked or expired since as it may
    be), from ``caller``'s address; ``caller`` itself for a session of a STEVEDORE_TOKENS token."""
    _hash(secret_hash, "secret_hash")
    ended = session.execute(text("DELETE FROM ui_sessions WHERE id = :id RETURNING token_fingerprint"),
                            {"id": secret_hash}).one_or_none()
    if ended is not None:
        caller = principals.owner(session, ended.token_fingerprint, audit.as_caller(caller))
        audit.record(session, caller, "session.sign_out", "session", target(secret_hash))
    session.commit()
    return ended is not None


def sweep(session):
    """Delete the expired sessions (they are refused already); answer how many."""
    deleted = session.execute(text(f"DELETE FROM ui_sessions WHERE expires_at <= {DB_NOW}")).rowcount
    session.commit()
    return deleted
