"""Changing a run while it goes on: its ``parallelism`` and ``priority`` (PATCH /result/{id}/).

What changes is what its executions not yet started are held to, like ``kubectl patch job`` or
``scontrol update``: a claim reads the result's parallelism at the moment it claims, and the queued,
unclaimed executions take the new priority (the claim orders by each detail's).  Running ones go on.

Locks, in the order every writer keeps: the run's fan-out lock (so a fan-out batch made meanwhile
takes the new priority: it reads the result after that lock), then its queued details, then its
result row, in one transaction.  A claim skips detail rows locked here (SKIP LOCKED) and waits at
most for this transaction to end.
"""
from sqlalchemy import update

from services.scheduler.executions.fanout import RESULT_FAN_OUT_LOCK
from services.scheduler.executions.state import counts, get_result
from services.scheduler.models import Detail, Result
from shared import audit
from shared import statuses as st
from shared.errors import Conflict

_details = Detail.__table__


def change_result(session, result_id, changes, caller=None):
    """Apply ``changes`` ({"parallelism"?: int or None, "priority"?: int}) to an active run.

    Returns (result, before, woken): ``before`` the values changed as they were, ``woken`` how many
    more of its queued executions may now be claimed at once (runners to wake).
    """
    result = get_result(session, result_id)
    if result.status in st.TERMINAL:
        session.rollback()
        raise Conflict(f"result {result_id} already ended {result.status}; nothing to change", "result_id")
    session.execute(RESULT_FAN_OUT_LOCK, {"result_id": result_id})
    if "priority" in changes:
        session.execute(update(_details).where(
            _details.c.result_id == result_id, _details.c.status == st.QUEUED, _details.c.runner.is_(None))
            .values(priority=changes["priority"]))
    result = session.get(Result, result_id, with_for_update=True, populate_existing=True)
    if result.status in st.TERMINAL or result.cancel_requested:
        session.rollback()
        raise Conflict(f"result {result_id} {'already ended ' + result.status if result.status in st.TERMINAL else 'is being cancelled'}; "
                       "nothing to change", "result_id")
    before = {name: getattr(result, name) for name in changes}
    for name, value in changes.items():
        setattr(result, name, value)
    queued = counts(result)[st.QUEUED]
    if "parallelism" not in changes:
        woken = 0
    elif result.parallelism is None:
        woken = queued
    else:
        woken = max(0, min(queued, result.parallelism - result.active))
    audit.record(session, caller, "result.change", "result", result_id, result.team,
                 {"before": before, "after": changes})
    session.commit()
    return result, before, woken
