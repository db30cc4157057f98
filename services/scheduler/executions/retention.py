"""A result's end and after: its ``result_finished`` notice sent once, and the result deleted
(by DELETE, or when RESULT_RETENTION_DAYS have passed since it ended and its end was announced).
"""
from sqlalchemy import and_, delete, or_, select, update

from services.scheduler.executions.state import get_result
from services.scheduler.models import Detail, DetailLog, Result
from shared import audit
from shared import statuses as st
from shared.errors import Conflict, NotFound

def delete_result(session, result_id, caller=None, expired=False):
    """Delete an ended result with its details and their output; returns its task's id.

    A result still QUEUED or RUNNING answers Conflict (cancel it first).  The
    result it reran, if any, forgets it from its ``reruns``.  Details go first,
    then the result row (the lock order every writer keeps); late reports of
    its executions then find nothing, and are dropped as stale.  In the audit log as
    ``result.delete`` by ``caller`` (``expired``: by the retention sweep, as ``audit.SYSTEM``).
    """
    result = get_result(session, result_id)
    if result.status not in st.TERMINAL:
        session.rollback()
        raise Conflict(f"result {result_id} is still {result.status}; cancel it or let it end first",
                       "result_id")
    task_id, rerun_of = result.task_id, result.rerun_of
    audit.record(session, audit.SYSTEM if expired else caller, "result.delete", "result", result_id, result.team,
                 {"task_id": task_id, "status": result.status, "expired": expired})
    session.execute(delete(DetailLog).where(DetailLog.detail_id.in_(
        select(Detail.id).where(Detail.result_id == result_id))))
    session.execute(delete(Detail).where(Detail.result_id == result_id))
    if not session.execute(delete(Result).where(Result.id == result_id)).rowcount:
        session.rollback()  # deleted meanwhile (another scheduler's sweep)
        raise NotFound(f"no result {result_id!r}", "result_id")
    if rerun_of:
        original = session.get(Result, rerun_of, with_for_update=True, populate_existing=True)
        if original is not None and result_id in (original.reruns or []):
            original.reruns = [r for r in original.reruns if r != result_id]
    session.commit()
    session.expunge_all()
    return task_id


RETENTION_BATCH = 100  # results the retention sweep deletes per query


def expired_results(session, ended_before, limit=RETENTION_BATCH):
    """Ids of results that ended before ``ended_before``, oldest first, whose end was announced.

    A result whose ``result_finished`` event is not yet sent, or whose webhook is
    still being delivered, is kept until it is (the sweep and the webhook timers
    finish those first).  It never parses ``params`` (``has_callback``, migration 0025): a stored row
    PostgreSQL's JSON parser refuses would otherwise stop every deletion.
    """
    return session.scalars(select(Result.id).where(
        Result.status.in_(list(st.TERMINAL)), Result.end < ended_before,
        Result.finished_notified.is_(True),
        or_(Result.webhook_status.in_(["DELIVERED", "FAILED"]),
            and_(Result.webhook_status.is_(None), ~Result.has_callback)))
        .order_by(Result.end).limit(limit)).all()


def unnotified_finished(session, limit=100):
    return session.scalars(select(Result).where(
        Result.status.in_(list(st.TERMINAL)), Result.finished_notified.is_(False)).limit(limit)).all()


def mark_notified(session, result_id):
    session.execute(update(Result).where(Result.id == result_id).values(finished_notified=True))
    session.commit()
