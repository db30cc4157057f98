"""Secrets by reference (issue 18): the ``secrets`` table, which this service alone writes, and how a claim
hands an execution its secrets.

A value arrives sealed: the gateway seals it with STEVEDORE_CREDENTIALS_KEY the moment it is PUT
(shared/sealing.py), so what crosses RabbitMQ to here is a Fernet token.  The scheduler holds the same
key because it answers claims: the only moment a value is opened is the claim of an execution whose
run names it (``secret_env``), and the opened value travels only in that claim's reply to the runner,
which puts it in the container's environment alone.  Opened at claim time, a rotation counts for every
execution not started yet; a secret deleted before an execution starts ends that attempt ERROR, its
reason naming the variable and the secret (``SecretsMixin._open_secrets``).

Nothing here logs a value, nor a sealed token.  Secrets belong to a team (the caller's: shared/principals.py);
``admin`` and ``member`` may change them, any role of the team may list their names.
"""
import logging

from sqlalchemy import delete, select, text
from sqlalchemy.dialects.postgresql import insert

from services.scheduler.executions.claims import SECRET_REFS
from services.scheduler.models import Secret
from shared import audit, pages
from shared import statuses as st
from shared.errors import Forbidden, NotFound, Unavailable, ValidationError
from shared.messages import wire
from shared.principals import Caller
from shared.rpc import rpc
from shared.sealing import Unopenable
from shared.timeutil import now
from stevedore_jobs.contract.checks import Invalid
from stevedore_jobs.contract.secrets import Secret as SecretAnswer, check_name

log = logging.getLogger(__name__)

WRITERS = frozenset({"admin", "member"})  # the roles that may create, rotate and delete a team's secrets
SEALED_MAX = 200000  # characters of a sealed value (a 64 KiB value seals to about 88,000)


def may_change(caller):
    if caller.role not in WRITERS:
        raise Forbidden(f"a principal with role {caller.role} may not change secrets (admin and member may)",
                        "role")


def _name(name):
    """``name`` if it is a secret's name, else a 404 (no secret can have it)."""
    try:
        return check_name(name)
    except Invalid:
        raise NotFound("no such secret", "name") from None


def as_dict(row):
    return wire(SecretAnswer(name=row.name, team=row.team, created_at=row.created_at, updated_at=row.updated_at,
                             created_by=row.created_by, updated_by=row.updated_by))


def put(session, team, name, sealed, principal, caller=None):
    """Create or rotate; answers (row, created).  Recorded in the audit log (``secret.set``), never the value."""
    stamp = now()
    statement = insert(Secret).values(team=team, name=name, sealed=sealed, created_at=stamp, updated_at=stamp,
                                      created_by=principal, updated_by=principal)
    statement = statement.on_conflict_do_update(
        index_elements=[Secret.team, Secret.name],
        set_={"sealed": statement.excluded.sealed, "updated_at": stamp, "updated_by": principal},
    ).returning(Secret, text("xmax = 0 AS created"))
    row = session.execute(statement).one()
    audit.record(session, caller, "secret.set", "secret", name, team, {"name": name, "created": bool(row[1])})
    session.commit()
    return row[0], bool(row[1])


def get(session, team, name):
    row = session.get(Secret, (team, _name(name)))
    session.rollback()
    if row is None:
        raise NotFound(f"no secret {name!r} in team {team!r}", "name")
    return row


def listed(session, team, limit=100, after=None):
    query = select(Secret).where(Secret.team == team).order_by(Secret.name).limit(limit)
    if isinstance(after, tuple):  # the name of the secret before (pages.cursor), whether or not it is still there
        if not isinstance(after[1], str):
            raise ValidationError("must be the name of the secret named by after", "after_key")
        query = query.where(Secret.name > after[1])
    elif after is not None:
        if session.get(Secret, (team, after)) is None:
            session.rollback()
            raise ValidationError("no such secret to list after", "after")
        query = query.where(Secret.name > after)
    rows = session.scalars(query).all()
    session.rollback()
    return rows


def remove(session, team, name, caller=None):
    gone = session.execute(delete(Secret).where(Secret.team == team, Secret.name == _name(name))).rowcount
    if not gone:
        session.rollback()
        raise NotFound(f"no secret {name!r} in team {team!r}", "name")
    audit.record(session, caller, "secret.delete", "secret", name, team, {"name": name})
    session.commit()


def require(session, team, secret_env):
    """Refuse (400 naming ``secret_env.VAR``) a run whose ``secret_env`` names a secret ``team`` lacks."""
    if not secret_env:
        return
    found = set(session.scalars(select(Secret.name).where(
        Secret.team == team, Secret.name.in_(sorted(set(secret_env.values()))))).all())
    for variable, name in secret_env.items():
        if name not in found:
            raise ValidationError(f"no secret {name!r} in team {team!r} (PUT /secret/{name}/ first)",
                                  f"secret_env.{variable}")


def unseal(session, sealer, team, secret_env):
    """({variable: value}, None), or (None, why not): the reason an attempt ends with."""
    rows = dict(session.execute(select(Secret.name, Secret.sealed).where(
        Secret.team == team, Secret.name.in_(sorted(set(secret_env.values()))))).all())
    session.rollback()
    values = {}
    for variable, name in sorted(secret_env.items()):
        if name not in rows:
            return None, (f"secret_env.{variable}: secret {name!r} of team {team!r} does not exist "
                          "(deleted before this execution started)")
        try:
            values[variable] = sealer.open(rows[name]).decode("utf-8")
        except (Unopenable, UnicodeDecodeError) as exc:
            return None, f"secret_env.{variable}: secret {name!r} of team {team!r} cannot be opened: {exc}"
    return values, None


class SecretsMixin:
    """Mixed into ``SchedulerService`` (which provides ``db``, ``sealer`` and ``_finish``)."""

    @rpc
    def put_secret(self, name, sealed, caller=None):
        """Create or rotate ``name`` of the caller's team with ``sealed`` (the gateway's token):
        ``{"created": bool, "secret": ...}``."""
        caller = Caller.from_dict(caller)
        may_change(caller)
        try:
            check_name(name)
        except Invalid as exc:
            raise ValidationError(exc.message, exc.field) from None
        if not isinstance(sealed, str) or not 0 < len(sealed) <= SEALED_MAX:
            raise ValidationError("is not a sealed value", "value")
        try:  # what this scheduler cannot open now no claim could: said at once, not when a run starts
            self.sealer.open(sealed)
        except Unopenable as exc:
            raise Unavailable(f"the scheduler cannot open values the gateway seals: {exc}", "value") from None
        row, created = put(self.db.session, caller.team, name, sealed, caller.principal, caller)
        return {"created": created, "secret": as_dict(row)}

    @rpc
    def get_secret(self, name, caller=None):
        return as_dict(get(self.db.session, Caller.from_dict(caller).team, name))

    @rpc
    def list_secrets(self, limit=100, after=None, caller=None, paged=False, after_key=None):
        rows = listed(self.db.session, Caller.from_dict(caller).team, pages.fetch_limit(limit, paged),
                      pages.cursor(after, after_key))
        return pages.reply(map(as_dict, rows), limit, self.settings.list_page_bytes, paged)

    @rpc
    def delete_secret(self, name, caller=None):
        caller = Caller.from_dict(caller)
        may_change(caller)
        remove(self.db.session, caller.team, name, caller)

    def _require_secrets(self, team, params):
        """A RUN's (or a schedule's run's) ``secret_env``: each secret exists in ``team``, and this scheduler
        can open secrets at all."""
        if not params.get("secret_env"):
            return
        if not self.sealer.usable:
            raise Unavailable(f"secrets cannot be opened: {self.sealer.problem}", "secret_env")
        require(self.db.session, team, params["secret_env"])

    def _open_secrets(self, runner, work):
        """Put the values of a claimed execution's secrets in ``work["secret_env"]``: True.  When one cannot
        be (deleted, unopenable), the attempt ends ERROR saying which: False."""
        refs = work.pop(SECRET_REFS, None)
        if not refs:
            return True
        values, problem = unseal(self.db.session, self.sealer, refs["team"], refs["env"])
        if problem is None:
            work["secret_env"] = values
            return True
        log.warning("execution %s (attempt %s) cannot start: %s", work["detail_id"], work["attempt"], problem)
        self._finish({"detail_id": work["detail_id"], "attempt": work["attempt"], "runner": runner,
                      "status": st.ERROR, "exit_code": None, "reason": problem, "start": None, "end": now()})
        return False
