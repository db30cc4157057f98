"""Cancelling a run or one execution.

A queued execution that no runner holds ends CANCELLED at once; one a runner
holds is stopped by that runner (told by event, or by its next heartbeat) and
ends KILLED when it reports.
"""
from sqlalchemy import select, update

from services.scheduler.executions.fanout import RESULT_FAN_OUT_LOCK
from services.scheduler.executions.state import UNSTARTED_REASON, derive_status, get_detail, get_result, lock_pair
from services.scheduler.models import Detail, Result
from shared import audit
from shared import statuses as st
from shared.errors import Conflict
from shared.timeutil import now

_details = Detail.__table__

def cancel_result(session, result_id, caller=None, summary=None):
    """Cancel a run: queued executions end CANCELLED now; held ones are stopped by their runner.

    Idempotent while the run is active; a finished run answers Conflict.
    Executions not yet created by the fan-out are created CANCELLED.
    Returns (result, how many executions this call ended CANCELLED).

    Two steps, so that no lock is held while the queued executions are
    changed (100,000 rows take seconds): first the run is marked cancelled,
    under the fan-out's lock and the result row's, briefly -- from then on no
    claim takes its work, no failed attempt is queued again, and fan-out
    batches make their rows CANCELLED -- then the executions queued at that
    moment, all of them, end CANCELLED (``finish_cancel``).  Should the
    scheduler stop between the two, its sweep finishes the second.
    """
    result = get_result(session, result_id)
    if result.status in st.TERMINAL:
        session.rollback()
        raise Conflict(f"result {result_id} already ended {result.status}; nothing to cancel", "result_id")
    stamp = now()
    marked, stopped = mark_cancelled(session, result_id, stamp)
    audit.record(session, caller, "result.cancel", "result", result_id, marked.team,
                 {"task_id": marked.task_id, **(summary or {})}, outcome=marked.status)
    session.commit()
    stopped += finish_cancel(session, result_id, stamp)
    return session.get(Result, result_id), stopped


def mark_cancelled(session, result_id, stamp):
    """A cancel's first step, in the caller's transaction (not committed): the run marked cancelled
    under the fan-out's lock and its row's.  Returns (result, executions not made yet, now CANCELLED).
    ``finish_cancel`` (or the sweep) ends its queued executions once the caller committed."""
    session.execute(RESULT_FAN_OUT_LOCK, {"result_id": result_id})
    result = session.get(Result, result_id, with_for_update=True, populate_existing=True)
    stopped = 0
    if not result.cancel_requested:
        # executions the fan-out has not made yet are cancelled now; it makes them CANCELLED
        stopped = result.times - result.created
        result.cancel_requested = True
        result.n_cancelled += stopped
        if stopped:
            result.end = max(result.end or 0, stamp)
        result.status = derive_status(result)
    return result, stopped


def finish_cancel(session, result_id, stamp=None, reason=None):
    """End a cancelled run's queued, unclaimed executions CANCELLED and count them; how many.

    Their reason: ``reason`` (a run cancelled by a dependency names it), else why the failure
    policy stopped the run (``ended_by``), else UNSTARTED_REASON.
    """
    stamp = stamp or now()
    reason = reason or session.scalar(select(Result.ended_by).where(Result.id == result_id)) or UNSTARTED_REASON
    # details first, then the result row (the lock order every writer keeps); a count,
    # not RETURNING: a run of 100,000 would send every id back only to be counted
    ended = session.execute(
        update(_details)
        .where(_details.c.result_id == result_id, _details.c.status == st.QUEUED,
               _details.c.runner.is_(None))
        .values(status=st.CANCELLED, end=stamp, not_before=None, reason=reason)).rowcount
    if ended:
        result = session.get(Result, result_id, with_for_update=True, populate_existing=True)
        result.n_cancelled += ended
        result.end = max(result.end or 0, stamp)
        result.status = derive_status(result)
    session.commit()
    return ended


def unfinished_cancels(session):
    """Cancelled runs that still have queued, unclaimed executions (a cancel cut short)."""
    queued = select(_details.c.id).where(
        _details.c.result_id == Result.id, _details.c.status == st.QUEUED, _details.c.runner.is_(None))
    return session.scalars(select(Result.id).where(
        Result.cancel_requested.is_(True), Result.status.not_in(list(st.TERMINAL)),
        queued.exists())).all()


def cancel_detail(session, result_id, detail_id, caller=None):
    """Cancel one execution: CANCELLED now if queued, else its runner stops it (KILLED)."""
    get_detail(session, result_id, detail_id)
    detail, result = lock_pair(session, detail_id)
    if detail.status in st.TERMINAL:
        session.rollback()
        raise Conflict(f"execution {detail_id} already ended {detail.status}; nothing to cancel",
                       "detail_id")
    detail.cancel_requested = True
    if detail.status == st.QUEUED and detail.runner is None:
        cancel_unstarted(result, detail)
    audit.record(session, caller, "detail.cancel", "detail", detail_id, result.team,
                 {"result_id": result_id, "index": detail.index}, outcome=detail.status)
    session.commit()
    return result, detail


def cancel_unstarted(result, detail):
    """End a queued execution that no runner holds as CANCELLED, and count it (both rows locked)."""
    stamp = now()
    detail.status = st.CANCELLED
    detail.end = stamp
    detail.not_before = None
    # a run the failure policy stopped: its reason (policy.py)
    detail.reason = (None if detail.cancel_requested else result.ended_by) or UNSTARTED_REASON
    result.n_cancelled += 1
    result.end = max(result.end or 0, stamp)
    result.status = derive_status(result)
