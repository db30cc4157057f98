"""The audit log (issue 18): every change, who made it, from where, when, and how it ended.

One table, ``audit_log`` (migration 0021), append-only.  It is the one exception to "each
table is written by exactly one service": every service that makes a change appends that
change's row itself, with ``record`` below, in the SAME transaction as the change (before
the commit that makes it), so a change is never without its row and a change that failed
(rolled back, answered 4xx) has none.  Nobody updates a row; only the scheduler's retention
sweep deletes rows (``expired``), older than AUDIT_RETENTION_DAYS (services/scheduler/auditing.py).

How to record a change (a new service's or route's)::

    from shared import audit
    ...  # the change, in ``session``, not committed yet
    audit.record(session, caller, "secret.set", "secret", name, team=team, summary={"name": name})
    session.commit()

- ``caller``: the request's ``Caller`` (shared/principals.py), or its ``as_dict()`` as the
  gateway hands it on (the ``caller`` kwarg of an RPC; None is refused, as every RPC refuses it);
  ``audit.SYSTEM`` (``shared.principals.SYSTEM``) for what the system does by itself (a schedule's
  tick, a failure policy's stop, a deadline, a run cancelled for its dependencies, retention);
- ``action``: ``<target type>.<verb>``, lower case (``task.register``, ``result.cancel``,
  ``token.create``, ``secret.delete``...; the list in docs/api.md "Audit log");
- ``target_type``, ``target_id``: what was changed (a task, result, detail, schedule,
  session, token, principal, team, secret) and its id or name;
- ``team``: the team the target belongs to (default: the caller's);
- ``summary``: a small dict of plain values saying what changed: NEVER a secret's value, a
  token, a password, nor a RUN's ``env`` or params (keys that look like one are dropped
  here as a last guard); bounded (``SUMMARY_KEYS`` keys, each value ``VALUE_MAX`` characters);
- ``outcome``: where it applies, the state the change left (a cancel's status, ...).

The row's time is the database's clock (epoch seconds), the same for every service.
"""
import json
import uuid

from sqlalchemy import Float, Index, String, insert, literal_column
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.principals import SYSTEM, Caller  # noqa: F401 -- SYSTEM: ``audit.SYSTEM``, as the services name it
from shared.wire import wire
from stevedore_jobs import contract

DB_NOW = literal_column("extract(epoch FROM clock_timestamp())", Float)
SUMMARY_KEYS = 16
VALUE_MAX = 200
TARGET_ID_MAX = 200
# a summary key holding any of these is dropped: a secret never reaches the log, whoever calls
SECRET_WORDS = ("secret", "token", "password", "credential", "env", "params", "authorization")


class AuditBase(DeclarativeBase):
    pass


class AuditEntry(AuditBase):
    """One change (docs/api.md "Audit log")."""

    __tablename__ = "audit_log"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    at: Mapped[float] = mapped_column(Float)                 # epoch seconds, the database's clock
    principal: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))
    team: Mapped[str | None] = mapped_column(String(63))
    address: Mapped[str | None] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(61))
    target_type: Mapped[str] = mapped_column(String(30))
    target_id: Mapped[str | None] = mapped_column(String(TARGET_ID_MAX))
    summary: Mapped[dict] = mapped_column(JSONB, default=dict)
    outcome: Mapped[str | None] = mapped_column(String(VALUE_MAX))

    __table_args__ = (
        Index("ix_audit_log_at", "at", "id"),  # newest first, paging, and the retention sweep
        Index("ix_audit_log_principal", "principal", "at"),
        Index("ix_audit_log_team", "team", "at"),
        Index("ix_audit_log_action", "action", "at"),
        Index("ix_audit_log_target", "target_type", "target_id", "at"),
    )


def _cut(value, limit=VALUE_MAX):
    if value is None:
        return None
    text = value if isinstance(value, str) else str(value)
    return text[:limit]


SCALARS = (str, int, float, bool, type(None))


def _plain(value, nested=True):
    """A summary's value as kept: a number, bool or null as it is, text cut to VALUE_MAX, a list of
    those or (one level) an object of those; anything else as bounded JSON text."""
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, str):
        return _cut(value)
    if isinstance(value, (list, tuple)) and all(isinstance(v, SCALARS) for v in value):
        return [_plain(v) for v in list(value)[:SUMMARY_KEYS]]
    if nested and isinstance(value, dict) and all(isinstance(v, SCALARS) for v in value.values()):
        return bounded_summary(value, nested=False)
    return _cut(json.dumps(value, default=str, ensure_ascii=False, sort_keys=True))


def bounded_summary(summary, nested=True):
    """``summary`` as kept: at most SUMMARY_KEYS plain values, no key that could name a secret."""
    kept = {}
    for key, value in (summary or {}).items():
        key = _cut(key, 60)
        if any(word in key.lower() for word in SECRET_WORDS):
            continue
        kept[key] = _plain(value, nested)
        if len(kept) >= SUMMARY_KEYS:
            break
    return kept


def as_caller(caller):
    """A ``Caller`` from what an RPC was handed (a dict, None) or a ``Caller``."""
    return caller if isinstance(caller, Caller) else Caller.from_dict(caller)


def record(session, caller, action, target_type, target_id=None, team=None, summary=None, outcome=None):
    """Append one change's row in ``session``'s transaction (not committed: the change's commit does it)."""
    caller = as_caller(caller)
    session.execute(insert(AuditEntry).values(
        id=uuid.uuid4().hex, at=DB_NOW, principal=_cut(caller.principal) or "?", role=_cut(caller.role, 16) or "?",
        team=_cut(team or caller.team, 63), address=_cut(caller.address, 100), action=_cut(action, 61),
        target_type=_cut(target_type, 30), target_id=_cut(target_id, TARGET_ID_MAX),
        summary=bounded_summary(summary), outcome=_cut(outcome)))


def as_dict(entry):
    """A row as ``GET /audit/`` shows it (the contract's ``AuditEntry``)."""
    return wire(contract.AuditEntry(
        audit_id=entry.id, id=entry.id, at=entry.at, principal=entry.principal, role=entry.role, team=entry.team,
        address=entry.address, action=entry.action, target_type=entry.target_type, target_id=entry.target_id,
        summary=entry.summary or {}, outcome=entry.outcome))
