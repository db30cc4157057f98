"""Submitting: a RUN (or a rerun of a run's failures) becomes a result.

An Idempotency-Key makes a RUN sent twice one result.  A small run gets its
executions in the same transaction (``with_details``); a big one is fanned out
afterwards (``fanout``).
"""
import uuid

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from services.scheduler.executions.fanout import FAN_OUT_RANGE
from services.scheduler.executions.state import get_result
from services.scheduler.models import Detail, Result
from shared import statuses as st
from shared import validation
from shared.errors import Conflict
from shared.timeutil import now

def find_by_key(session, key, task_id, params):
    """The result an earlier request with this Idempotency-Key made, or None."""
    result = session.scalars(select(Result).where(Result.idempotency_key == key)).first()
    if result is not None and (result.task_id != task_id or result.params != params):
        raise Conflict("this Idempotency-Key was used for a different RUN", "Idempotency-Key")
    return result


def create_result(session, task_id, task_name, image, params, idempotency_key=None, rerun_of=None,
                  with_details=False, schedule_id=None, result_id=None):
    """A new result; with an Idempotency-Key already used, the first one (returns (result, created)).

    ``with_details``: its executions are made in the same transaction (a small
    run: claimable the moment the RUN commits, and no fan-out to do).
    ``schedule_id`` and ``result_id``: a schedule's fire names the result it makes, and commits its
    own rows (the fire, the schedule's next tick) with it (services/scheduler/schedules/fire.py).
    """
    if idempotency_key:
        earlier = find_by_key(session, idempotency_key, task_id, params)
        if earlier is not None:
            return earlier, False
    stamp = now()
    result = Result(
        id=result_id or uuid.uuid4().hex, task_id=task_id, task_name=task_name,
        image=image, status=st.QUEUED, times=params["times"], params=params,
        priority=params["priority"], parallelism=params["parallelism"], submitted_at=stamp,
        memory_bytes=validation.memory_bytes(params.get("memory")),
        cpus=float(params["cpus"]) if params.get("cpus") is not None else None,
        created=params["times"] if with_details else 0,
        active=0, n_running=0, n_complete=0, n_error=0, n_cancelled=0, n_killed=0,
        cancel_requested=False, finished_notified=False, idempotency_key=idempotency_key,
        rerun_of=rerun_of, reruns=[], schedule_id=schedule_id,
    )
    session.add(result)
    try:  # the flush too: a RUN sent twice at once meets the other's key there
        if with_details:
            session.flush()
            session.execute(FAN_OUT_RANGE, {
                "result_id": result.id, "task_id": task_id, "priority": result.priority,
                "status": st.QUEUED, "submitted_at": stamp, "end": None, "reason": None,
                "first": 0, "last": result.times})
        session.commit()
    except IntegrityError:
        session.rollback()
        earlier = find_by_key(session, idempotency_key, task_id, params) if idempotency_key else None
        if earlier is None:
            raise
        return earlier, False
    return result, True


def rerun_failed(session, result_id):
    """A new result running only the indices of ``result_id`` that ended ERROR or KILLED."""
    original = get_result(session, result_id)
    if original.status not in st.TERMINAL:
        raise Conflict(f"result {result_id} is still {original.status}; rerun it once it ended",
                       "result_id")
    failed = session.scalars(select(Detail.index).where(
        Detail.result_id == result_id, Detail.status.in_([st.ERROR, st.KILLED]))
        .order_by(Detail.index)).all()
    if not failed:
        raise Conflict(f"result {result_id} has no execution that ended ERROR or KILLED", "result_id")
    params = {**original.params, "times": len(failed), "indices": list(failed)}
    rerun, _ = create_result(session, original.task_id, original.task_name, original.image, params,
                             rerun_of=original.id)
    original = session.get(Result, result_id, with_for_update=True, populate_existing=True)
    if original is not None:  # None: deleted meanwhile; the rerun, made already, stands on its own
        original.reruns = list(original.reruns or []) + [rerun.id]
    session.commit()
    return rerun
