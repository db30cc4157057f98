"""Submitting: a RUN (or a rerun of a run's failures) becomes a result.

An Idempotency-Key makes a RUN sent twice one result.  A small run gets its
executions in the same transaction (``with_details``); a big one is fanned out
afterwards (``fanout``).
"""
import json
import uuid

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from services.scheduler.executions import quotas
from services.scheduler.executions.fanout import insert_batch
from services.scheduler.executions.policy import deadline_at
from services.scheduler.models import Detail, Result
from shared import audit
from shared import statuses as st
from shared import validation
from shared.errors import Conflict, NotFound
from shared.principals import DEFAULT_TEAM, Caller
from shared.timeutil import now


def find_by_key(session, key, task_id, params, spread=None, team=DEFAULT_TEAM):
    """The result an earlier request with this Idempotency-Key made in ``team``, or None (keys are per team)."""
    result = session.scalars(select(Result).where(Result.team == team, Result.idempotency_key == key)).first()
    if result is not None and (result.task_id != task_id or result.params != params
                               or _in_order(result.execution_params) != _in_order(spread)):
        raise Conflict("this Idempotency-Key was used for a different RUN", "Idempotency-Key")
    return result


def _in_order(spread):
    """A spread as compared: its matrix's key order counts (it fixes which index runs what)."""
    return json.dumps(spread or None, separators=(",", ":"))


def create_result(session, task_id, task_name, image, params, idempotency_key=None, rerun_of=None,
                  with_details=False, spread=None, prepare=None, schedule_id=None, result_id=None, record=None,
                  team=DEFAULT_TEAM, submitted_by=None):
    """A new result; with an Idempotency-Key already used, the first one (returns (result, created)).

    ``with_details``: its executions are made in the same transaction (a small
    run: claimable the moment the RUN commits, and no fan-out to do).  ``spread``:
    what each execution is given by position (``{"items": [...]}`` or ``{"matrix": {...}}``).
    ``prepare(session, result)``: called in that transaction before its commit
    (a RUN's ``after`` stored, its executions held: ``dependencies.declare``).
    ``schedule_id`` and ``result_id``: a schedule's fire names the result it makes, and commits its
    own rows (the fire, the schedule's next tick) with it (services/scheduler/schedules/fire.py).
    ``record(session, result)``: its row in the audit log (shared/audit.py), written in that transaction
    (never for an Idempotency-Key's earlier result: nothing new was made).
    ``team`` and ``submitted_by``: whose run it is (shared/principals.py); it must fit the team's
    ``max_queued`` (quotas.py: 429).
    """
    if idempotency_key:
        earlier = find_by_key(session, idempotency_key, task_id, params, spread, team)
        if earlier is not None:
            return earlier, False
    quotas.admit(session, team, params["times"])  # held until the commit below
    stamp = now()
    result = Result(
        id=result_id or uuid.uuid4().hex, task_id=task_id, task_name=task_name,
        image=image, status=st.QUEUED, times=params["times"], params=params,
        priority=params["priority"], parallelism=params["parallelism"], submitted_at=stamp,
        memory_bytes=validation.memory_bytes(params.get("memory")),
        cpus=float(params["cpus"]) if params.get("cpus") is not None else None,
        # where it may run (services/scheduler/fleet.py): compared by the claim without reading params
        constraints=params.get("constraints") or None, gpus=params.get("gpus") or None,
        created=params["times"] if with_details else 0,
        active=0, n_running=0, n_complete=0, n_error=0, n_cancelled=0, n_killed=0,
        cancel_requested=False, finished_notified=False, idempotency_key=idempotency_key,
        # the webhook and retention sweeps filter on it without reading params (migration 0025)
        has_callback=bool(params.get("callback_url")),
        rerun_of=rerun_of, reruns=[], n_failed=0, execution_params=spread or None, schedule_id=schedule_id,
        labels=params.get("labels") or {}, team=team, submitted_by=submitted_by,
        # a run that waits for others (``after``) gets its deadline when it is released (policy.arm_deadline)
        deadline_at=None if params.get("after") else deadline_at(params, stamp),
    )
    session.add(result)
    try:  # the flush too: a RUN sent twice at once meets the other's key there
        if with_details:
            session.flush()
            insert_batch(session, {
                "result_id": result.id, "task_id": task_id, "priority": result.priority, "team": team,
                "status": st.QUEUED, "submitted_at": stamp, "end": None, "reason": None},
                0, result.times, params.get("indices"), spread)
        if prepare is not None:
            session.flush()
            prepare(session, result)
        if record is not None:
            record(session, result)
        session.commit()
    except IntegrityError:
        session.rollback()
        earlier = find_by_key(session, idempotency_key, task_id, params, spread, team) if idempotency_key else None
        if earlier is None:
            raise
        return earlier, False
    return result, True


def audited(caller, action, **summary):
    """A ``create_result`` ``record``: the new run in the audit log as ``action`` by ``caller``."""
    def record(session, result):
        audit.record(session, caller, action, "result", result.id, result.team,
                     {"task_id": result.task_id, "task_name": result.task_name, "times": result.times, **summary},
                     outcome=result.status)
    return record


def rerun_failed(session, result_id, caller=None, most=100):
    """A new result running only the indices of ``result_id`` that ended ERROR or KILLED: of the same team
    (it is that run again), made by ``caller``; named in the original's ``reruns`` in the same transaction,
    at most ``most`` of them (RERUN_MAX; past it a 409 naming ``reruns``).  The original is locked until then,
    so that two at once count one after the other."""
    original = session.get(Result, result_id, with_for_update=True, populate_existing=True)
    if original is None:
        raise NotFound(f"no result {result_id!r}", "result_id")
    if len(original.reruns or []) >= most:
        raise Conflict(f"result {result_id} was rerun {most} times already (RERUN_MAX); rerun its latest rerun "
                       "instead", "reruns")
    if original.status not in st.TERMINAL:
        raise Conflict(f"result {result_id} is still {original.status}; rerun it once it ended",
                       "result_id")
    rows = session.execute(select(Detail.index, Detail.params).where(
        Detail.result_id == result_id, Detail.status.in_([st.ERROR, st.KILLED]))
        .order_by(Detail.index)).all()
    if not rows:
        raise Conflict(f"result {result_id} has no execution that ended ERROR or KILLED", "result_id")
    failed = [row.index for row in rows]
    # STEVEDORE_TIMES stays the first run's, as STEVEDORE_EXECUTION_INDEX stays each one's index in it
    params = {**original.params, "times": len(failed), "indices": failed,
              "run_times": original.params.get("run_times") or original.times}
    # each execution runs again with its own parameters (items, a matrix's combination), by position
    spread = {"items": [row.params or {} for row in rows]} if any(row.params for row in rows) else None
    params.pop("after", None)  # what the original waited for has held (or it would not have run)
    params.pop("per_index", None)
    def named(session, rerun):  # in the rerun's own transaction, the original still locked
        original.reruns = list(original.reruns or []) + [rerun.id]

    rerun, _ = create_result(session, original.task_id, original.task_name, original.image, params,
                             rerun_of=original.id, spread=spread, team=original.team, prepare=named,
                             submitted_by=Caller.from_dict(caller).principal,
                             record=audited(caller, "result.rerun", rerun_of=original.id))
    return rerun
