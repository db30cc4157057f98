"""Webhooks: POST a finished result to the RUN's ``callback_url``, signed, until it is taken.

Each attempt is claimed by a conditional update of the result row (so two
scheduler workers, or two schedulers, never send the same attempt, and nothing
is sent again once DELIVERED), recorded in ``webhook_deliveries`` and, on a
non-2xx answer or a connection error, scheduled again after an exponential
backoff, up to ``WEBHOOK_ATTEMPTS`` attempts.  No worker sleeps through a
backoff: the scheduler's ``deliver_due_webhooks`` timer sends what is due.
``webhook_lease`` is shared by every scheduler, so, like the executions'
leases, it is set and compared on the database's clock (``ex.DB_NOW``).
See ``docs/webhooks.md``.
"""
import hashlib
import hmac
import json
import logging

import requests
from nameko.extensions import DependencyProvider
from sqlalchemy import or_, select, update

from services.scheduler import executions as ex
from services.scheduler.models import Result
from shared import statuses as st
from shared.errors import Unavailable
from shared.timeutil import now

log = logging.getLogger(__name__)

DELIVERING, PENDING, DELIVERED, FAILED = "DELIVERING", "PENDING", "DELIVERED", "FAILED"
SIGNATURE_HEADER = "X-Stevedore-Signature"
NO_SECRET = "webhooks are disabled: the operator must set STEVEDORE_WEBHOOK_SECRET"
# an attempt in flight is taken back after its timeout plus this margin (the scheduler died)
IN_FLIGHT_MARGIN = 30


def signature(secret, body):
    """``sha256=<hex HMAC-SHA256 of body>`` as sent in X-Stevedore-Signature."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def backoff(attempt, base, cap):
    return min(cap, base * 2 ** max(0, attempt - 1))


class Sender:
    """What a worker gets: the operator's webhook settings and an HTTP session."""

    def __init__(self, http, settings):
        self.http = http
        self.secret = settings["secret"]
        self.attempts = settings["attempts"]
        self.base = settings["backoff"]
        self.cap = settings["backoff_max"]
        self.timeout = settings["timeout"]

    def require_configured(self, params):
        """Refuse a RUN with a callback_url while no secret is set to sign its deliveries."""
        if params.get("callback_url") and not self.secret:
            raise Unavailable(NO_SECRET, "callback_url")

    def post(self, url, result_id, body):
        """One attempt: ``{"status_code": n}`` or ``{"error": "..."}``."""
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "stevedore-webhook/1",
            "X-Stevedore-Event": "result_finished",
            "X-Stevedore-Delivery": result_id,
            SIGNATURE_HEADER: signature(self.secret, body),
        }
        try:
            response = self.http.post(url, data=body, headers=headers, timeout=self.timeout,
                                      allow_redirects=False)
            response.close()
        except requests.RequestException as exc:
            return {"error": f"{exc.__class__.__name__}: {exc}"[:500]}
        return {"status_code": response.status_code}


class WebhookSender(DependencyProvider):
    def setup(self):
        config = self.container.config
        self.settings = {
            "secret": str(config.get("WEBHOOK_SECRET") or ""),
            "attempts": max(1, int(config.get("WEBHOOK_ATTEMPTS") or 5)),
            "backoff": float(config.get("WEBHOOK_BACKOFF") or 2),
            "backoff_max": float(config.get("WEBHOOK_BACKOFF_MAX") or 300),
            "timeout": float(config.get("WEBHOOK_TIMEOUT") or 10),
        }
        self.http = requests.Session()

    def stop(self):
        self.http.close()

    kill = stop

    def get_dependency(self, worker_ctx):
        return Sender(self.http, self.settings)


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
    payload = ex.result_as_dict(result)
    payload["durations"] = ex.duration_percentiles(session, result.id)
    return json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()


_HAS_CALLBACK = Result.params["callback_url"].as_string().is_not(None)


def due(session, limit=50):
    """Ids of results whose next attempt is due (a backoff ended, or an attempt was abandoned)."""
    return session.scalars(select(Result.id).where(
        Result.webhook_status.in_([PENDING, DELIVERING]), Result.webhook_lease <= ex.DB_NOW)
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
                Result.webhook_status.in_([PENDING, DELIVERING]) & (Result.webhook_lease <= ex.DB_NOW)))
        .values(webhook_status=DELIVERING, webhook_lease=ex.DB_NOW + float(hold_for))
        .returning(Result.id)).first()
    session.commit()
    return taken is not None


def attempt(session, sender, result_id):
    """Send the next due attempt for ``result_id``; returns its delivery record or None."""
    if not claim(session, result_id, sender.timeout + IN_FLIGHT_MARGIN):
        return None
    result = session.get(Result, result_id, populate_existing=True)
    if result is None:  # deleted (DELETE /result/{id}/) since it was taken
        session.rollback()
        return None
    url = result.params["callback_url"]
    deliveries = list(result.webhook_deliveries or [])
    number = len(deliveries) + 1
    if not sender.secret:
        outcome = {"error": NO_SECRET}
    else:
        body = body_of(session, result)
        session.commit()  # no transaction stays open while the receiver answers
        outcome = sender.post(url, result_id, body)
    delivery = {"attempt": number, "at": now(), **outcome}
    deliveries.append(delivery)
    code = outcome.get("status_code")
    if code is not None and 200 <= code < 300:
        state, lease = DELIVERED, None
    elif number >= sender.attempts or not sender.secret:
        state, lease = FAILED, None
    else:
        state, lease = PENDING, ex.DB_NOW + float(backoff(number, sender.base, sender.cap))
    session.execute(update(Result).where(Result.id == result_id, Result.webhook_status == DELIVERING)
                    .values(webhook_status=state, webhook_lease=lease, webhook_deliveries=deliveries))
    session.commit()
    what = f"HTTP {code}" if code is not None else outcome["error"]
    if state == DELIVERED:
        log.info("webhook of result %s delivered to %s (attempt %s)", result_id, url, number)
    elif state == FAILED:
        log.warning("webhook of result %s to %s failed for good after %s attempts (%s)",
                    result_id, url, number, what)
    else:
        log.info("webhook of result %s to %s failed (%s); attempt %s in %gs",
                 result_id, url, what, number + 1, backoff(number, sender.base, sender.cap))
    return delivery
