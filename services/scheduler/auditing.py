"""The scheduler's side of the audit log (shared/audit.py): its one reader and its one deleter.

Every service appends its own changes' rows (the exception to "one writer per table" that
shared/audit.py states); the scheduler alone lists them (``list_audit``, for the gateway's
``GET /audit/``) and deletes the rows older than AUDIT_RETENTION_DAYS (0: kept for ever), every
AUDIT_SWEEP_INTERVAL seconds, at most ``SWEEP_BATCH`` rows a transaction and ``SWEEP_BATCHES``
transactions a pass, oldest first, through the index on ``at``.  Several schedulers sweeping at
once delete each row once (a row another deleted is simply not there).
"""
import logging

from sqlalchemy import delete, select

from shared import audit, pages
from shared.db import newest_first
from shared.principals import ALL_TEAMS_ROLES, require_role
from shared.extensions import config_timer
from shared.rpc import rpc
from shared.timeutil import now

log = logging.getLogger(__name__)

SWEEP_BATCH = 5000
SWEEP_BATCHES = 20  # at most 100,000 rows a pass; the rest at the next


def listed(session, principal=None, team=None, action=None, target_type=None, target_id=None, since=None,
           until=None, limit=100, after=None):
    """A page of the audit log, newest first, every filter given holding."""
    entry = audit.AuditEntry
    stmt = select(entry)
    for column, value in ((entry.principal, principal), (entry.team, team), (entry.action, action),
                          (entry.target_type, target_type), (entry.target_id, target_id)):
        if value is not None:
            stmt = stmt.where(column == value)
    if since is not None:
        stmt = stmt.where(entry.at >= since)
    if until is not None:
        stmt = stmt.where(entry.at < until)
    rows = newest_first(session, stmt, entry, entry.at, after, limit)
    session.rollback()  # a read: keep no snapshot open
    return rows


def expire(session, before, batch=SWEEP_BATCH, batches=SWEEP_BATCHES):
    """Delete the rows recorded before ``before`` (epoch seconds), a bounded pass; how many."""
    entry = audit.AuditEntry
    deleted = 0
    for _ in range(batches):
        oldest = select(entry.id).where(entry.at < before).order_by(entry.at).limit(batch).scalar_subquery()
        count = session.execute(delete(entry).where(entry.id.in_(oldest))
                                .execution_options(synchronize_session=False)).rowcount
        session.commit()
        deleted += count
        if count < batch:
            break
    return deleted


class AuditMixin:
    """Mixed into ``SchedulerService`` (which provides ``db`` and ``settings``)."""

    @rpc
    def list_audit(self, principal=None, team=None, action=None, target_type=None, target_id=None, since=None,
                   until=None, limit=100, after=None, caller=None, paged=False, after_key=None):
        """``GET /audit/``'s page (the gateway lets only admins and operators ask, whose roles cover every team)."""
        require_role(caller, ALL_TEAMS_ROLES, "the audit log")  # whatever the gateway let through
        rows = listed(self.db.session, principal, team, action, target_type, target_id, since, until,
                      pages.fetch_limit(limit, paged), pages.cursor(after, after_key))
        return pages.reply(map(audit.as_dict, rows), limit, self.settings.list_page_bytes, paged)

    @config_timer("audit_sweep_interval")
    def delete_expired_audit(self):
        """Delete the audit log's rows older than AUDIT_RETENTION_DAYS (0: keep them all)."""
        days = self.settings.audit_retention_days
        if days <= 0:
            return
        deleted = expire(self.db.session, now() - days * 86400)
        if deleted:
            log.info("deleted %d audit log entries older than %g days", deleted, days)
