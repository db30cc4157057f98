"""Webhooks: POST a finished result to the RUN's ``callback_url``, signed, until it is taken.

Each attempt is claimed by a conditional update of the result row (so two
scheduler workers, or two schedulers, never send the same attempt, and nothing
is sent again once DELIVERED), recorded in ``webhook_deliveries`` and, when it
is not taken, scheduled again after an exponential backoff, up to
``WEBHOOK_ATTEMPTS`` attempts.  No worker sleeps through a backoff: the
scheduler's ``deliver_due_webhooks`` timer sends what is due.

The request itself is made by a pool of the sender's own
(``WEBHOOK_CONCURRENCY`` at once), never by a scheduler worker: the worker
takes the attempt and hands it over, so receivers that answer slowly, or not
at all, cannot hold the workers that claims and heartbeats need.  Where the
request may go and how it is bounded: ``services.scheduler.egress``.

Deliveries are signed the Standard Webhooks way (``webhook-id``, stable across
the attempts of one result; ``webhook-timestamp``; ``webhook-signature``); the
older ``X-Stevedore-Signature`` header is sent alongside while
``WEBHOOK_LEGACY_SIGNATURE`` is on.  ``webhook_lease`` is shared by every
scheduler, so, like the executions' leases, it is set and compared on the
database's clock (``DB_NOW``).  See ``docs/webhooks.md``.
"""
import hashlib
import hmac
import json
import logging
from datetime import datetime, timezone

import eventlet
from nameko.extensions import DependencyProvider
from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session
from standardwebhooks.webhooks import Webhook

from services.scheduler import egress
from services.scheduler.executions.state import DB_NOW
from services.scheduler.executions.views import duration_percentiles, result_as_dict
from services.scheduler.models import Result
from shared import statuses as st
from shared.errors import ValidationError
from shared.settings import settings_of
from shared.timeutil import now

log = logging.getLogger(__name__)

DELIVERING, PENDING, DELIVERED, FAILED = "DELIVERING", "PENDING", "DELIVERED", "FAILED"
SIGNATURE_HEADER = "X-Stevedore-Signature"
NO_SECRET = ("webhooks are disabled on this system: its operator has set no "
             "STEVEDORE_WEBHOOK_SECRET to sign them")
# an attempt in flight is taken back after its timeout plus this margin (the scheduler died)
IN_FLIGHT_MARGIN = 30


def signature(secret, body):
    """``sha256=<hex HMAC-SHA256 of body>`` as sent in X-Stevedore-Signature (the older header)."""
    return "sha256=" + hmac.new(signing_key(secret), body, hashlib.sha256).hexdigest()


def signing_key(secret):
    """The key bytes of ``WEBHOOK_SECRET``: a ``whsec_`` secret's base64 payload, else its UTF-8 bytes.

    Receivers verify with ``standardwebhooks.Webhook(secret)`` for a ``whsec_``
    secret and ``Webhook(secret.encode())`` for an older free-text one.
    """
    if secret.startswith("whsec_"):
        return Webhook(secret)._whsecret
    return secret.encode()


def message_id(result_id):
    """The ``webhook-id`` of a result's deliveries: one per result, the same at every attempt."""
    return f"msg_{result_id}"


def backoff(attempt, base, cap):
    return min(cap, base * 2 ** max(0, attempt - 1))


class Sender:
    """What a worker gets: the operator's webhook settings and the pool that makes the requests."""

    def __init__(self, pool, settings):
        self.pool = pool
        self.secret = settings["secret"]
        self.attempts = settings["attempts"]
        self.base = settings["backoff"]
        self.cap = settings["backoff_max"]
        self.timeout = settings["timeout"]
        self.allowed = settings.get("allowed", ())
        self.legacy = settings.get("legacy", True)

    def require_configured(self, params):
        """Refuse a RUN whose callback_url cannot be served here: no secret, or an address refused."""
        url = params.get("callback_url")
        if not url:
            return
        if not self.secret:
            raise ValidationError(NO_SECRET, "callback_url")
        try:
            egress.check_literal(url, self.allowed)
        except egress.Refused as exc:
            raise ValidationError(str(exc), "callback_url") from exc

    def headers(self, result_id, body, at=None):
        """The headers of one attempt: Standard Webhooks' three, and the older signature."""
        at = datetime.fromtimestamp(int(at if at is not None else now()), tz=timezone.utc)
        msg_id = message_id(result_id)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "stevedore-webhook/2",
            "webhook-id": msg_id,
            "webhook-timestamp": str(int(at.timestamp())),
            "webhook-signature": Webhook(signing_key(self.secret)).sign(msg_id, at, body.decode()),
            "X-Stevedore-Event": "result_finished",
            "X-Stevedore-Delivery": result_id,
        }
        if self.legacy:
            headers[SIGNATURE_HEADER] = signature(self.secret, body)
        return headers

    def post(self, url, result_id, body):
        """One attempt, made here and now: ``{"outcome": ...}`` (see egress)."""
        return egress.post(url, body, self.headers(result_id, body), self.allowed, self.timeout)

    def has_room(self):
        return self.pool.free() > 0

    def spawn(self, function, *args):
        self.pool.spawn_n(function, *args)


class WebhookSender(DependencyProvider):
    def setup(self):
        settings = settings_of(self.container)
        self.settings = {
            "secret": settings.webhook_secret,
            "attempts": settings.webhook_attempts,
            "backoff": settings.webhook_backoff,
            "backoff_max": settings.webhook_backoff_max,
            "timeout": settings.webhook_timeout,
            "allowed": settings.webhook_allow_networks,
            "legacy": settings.webhook_legacy_signature,
        }
        self.pool = eventlet.GreenPool(settings.webhook_concurrency)

    def stop(self):
        self.pool.waitall()

    def kill(self):
        for thread in list(self.pool.coroutines_running):
            thread.kill()

    def get_dependency(self, worker_ctx):
        return Sender(self.pool, self.settings)


# ---------------------------------------------------------------- reading

def describe(result):
    """The ``webhook`` block of a result, or None when its RUN had no callback_url."""
    url = (result.params or {}).get("callback_url")
    if not url:
        return None
    return {
        "url": url,
        "status": result.webhook_status or PENDING,
        "delivered": result.webhook_status == DELIVERED,
        "deliveries": list(result.webhook_deliveries or []),
        "next_attempt_at": result.webhook_lease if result.webhook_status == PENDING else None,
    }


def body_of(session, result):
    """The raw JSON sent: the result as GET /result/{id}/ shows it, less its ``webhook`` block."""
    payload = result_as_dict(result, durations=duration_percentiles(session, result.id))
    return json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()


# a column set when the result is made (migration 0025), not ``params ->> 'callback_url'``: params is JSON,
# parsed by PostgreSQL at each read, and one stored row it cannot parse would fail the query for every result
_HAS_CALLBACK = Result.has_callback


def due(session, limit=50):
    """Ids of results whose next attempt is due (a backoff ended, or an attempt was abandoned)."""
    return session.scalars(select(Result.id).where(
        Result.webhook_status.in_([PENDING, DELIVERING]), Result.webhook_lease <= DB_NOW)
        .order_by(Result.webhook_lease).limit(limit)).all()


def forgotten(session, older_than, limit=50):
    """Ids of finished results with a callback_url never tried (their event was lost)."""
    return session.scalars(select(Result.id).where(
        Result.status.in_(list(st.TERMINAL)), Result.webhook_status.is_(None),
        Result.finished_notified.is_(True), Result.end < older_than, _HAS_CALLBACK).limit(limit)).all()


# ---------------------------------------------------------------- delivering

def claim(session, result_id, hold_for):
    """Take the next attempt of ``result_id``'s webhook; False if none is due or another has it."""
    taken = session.execute(
        update(Result).where(
            Result.id == result_id, Result.status.in_(list(st.TERMINAL)), _HAS_CALLBACK,
            or_(Result.webhook_status.is_(None),
                Result.webhook_status.in_([PENDING, DELIVERING]) & (Result.webhook_lease <= DB_NOW)))
        .values(webhook_status=DELIVERING, webhook_lease=DB_NOW + float(hold_for))
        .returning(Result.id)).first()
    session.commit()
    return taken is not None


def attempt(session, sender, result_id, wait=False):
    """Take the next due attempt for ``result_id`` and hand it to the sender's pool.

    True when it was taken.  Nothing is taken while the pool is full: the attempt
    stays due and the next tick of ``deliver_due_webhooks`` tries again.  With
    ``wait`` the attempt is made in this thread (tests).
    """
    if not sender.has_room():
        return False
    if not claim(session, result_id, sender.timeout + IN_FLIGHT_MARGIN):
        return False
    result = session.get(Result, result_id, populate_existing=True)
    if result is None:  # deleted (DELETE /result/{id}/) since it was taken
        session.rollback()
        return False
    url = result.params["callback_url"]
    number = len(result.webhook_deliveries or []) + 1
    body = body_of(session, result) if sender.secret else None
    session.commit()  # no transaction stays open while the receiver answers
    job = (session.get_bind(), sender, result_id, url, body, number)
    if wait:
        deliver(*job)
    else:
        sender.spawn(deliver, *job)
    return True


def defer(session, result_id):
    """A first attempt that found the pool full: due now, for ``deliver_due_webhooks``."""
    session.execute(update(Result).where(Result.id == result_id, Result.webhook_status.is_(None), _HAS_CALLBACK)
                    .values(webhook_status=PENDING, webhook_lease=DB_NOW))
    session.commit()


def deliver(engine, sender, result_id, url, body, number):
    """Make attempt ``number`` and record its outcome (in the sender's pool, with a session of its own)."""
    outcome = {"outcome": egress.REFUSED, "error": NO_SECRET} if body is None \
        else sender.post(url, result_id, body)
    delivery = {"attempt": number, "at": now(), **outcome}
    if outcome["outcome"] == egress.DELIVERED:
        state, lease = DELIVERED, None
    elif number >= sender.attempts or body is None:
        state, lease = FAILED, None
    else:
        state, lease = PENDING, DB_NOW + float(backoff(number, sender.base, sender.cap))
    try:
        with Session(engine) as session:
            deliveries = session.scalar(select(Result.webhook_deliveries).where(Result.id == result_id))
            session.execute(update(Result).where(Result.id == result_id, Result.webhook_status == DELIVERING)
                            .values(webhook_status=state, webhook_lease=lease,
                                    webhook_deliveries=list(deliveries or []) + [delivery]))
            session.commit()
    except Exception as exc:  # the database away: the lease runs out and the attempt is made again
        log.warning("could not record webhook attempt %s of result %s (%s): %s", number, result_id,
                    outcome["outcome"], exc)
        return
    what = outcome["outcome"]
    if state == DELIVERED:
        log.info("webhook of result %s delivered to %s (attempt %s)", result_id, url, number)
    elif state == FAILED:
        log.warning("webhook of result %s to %s failed for good after %s attempts (%s)",
                    result_id, url, number, what)
    else:
        log.info("webhook of result %s to %s not taken (%s); attempt %s in %gs",
                 result_id, url, what, number + 1, backoff(number, sender.base, sender.cap))
