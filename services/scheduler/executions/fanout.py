"""Fan-out: a result's executions (details) made in PostgreSQL, in resumable batches.

A small run gets its executions with the result itself (``submit``); a big one
is fanned out a batch at a time, from ``results.created``, by the scheduler's
``result_submitted`` handler and, should that be cut short, by its sweep.
"""
import json

from sqlalchemy import select, text, update

from services.scheduler.executions.state import UNSTARTED_REASON
from services.scheduler.models import Detail, Result
from shared import statuses as st
from shared.settings import SchedulerSettings
from shared.timeutil import now
from stevedore_jobs.contract import items as per_execution

_results = Result.__table__
_details = Detail.__table__

FAN_OUT_BATCH = SchedulerSettings.model_fields["fan_out_batch"].default  # FAN_OUT_BATCH's one default

FAN_OUT_SQL = """
    INSERT INTO details (id, result_id, task_id, "index", priority, status, submitted_at,
                         attempt, attempts, "end", reason, cancel_requested, params, team)
    SELECT left(:result_id, 24) || lpad(to_hex(i), 8, '0'), :result_id, :task_id, i, :priority, :status,
           :submitted_at, 0, '[]'::json, :end, :reason, false, {params}, :team
    FROM {source}
    ON CONFLICT (result_id, "index") DO NOTHING
"""

# the rows are made by PostgreSQL itself: nothing per row is built in Python or sent over the wire.
# A detail's id is the first 24 hex digits of its result's (random) id and its index in 8, so
# a batch's ids are consecutive keys of the primary key's B-tree: appended to a few pages, not
# scattered over the whole index as random ids were (a fan-out's insert ~30% cheaper, and the
# gap grows with the table).  Ids stay 32 hex digits; two results sharing 24 digits (92 random
# bits) is not a practical concern.
FAN_OUT_RANGE = text(FAN_OUT_SQL.format(source="generate_series(:first, :last - 1) AS i", params="NULL"))

FAN_OUT_INDICES = text(FAN_OUT_SQL.format(source="unnest(CAST(:indices AS integer[])) AS i", params="NULL"))

# a run with items or a matrix (or a rerun of one): each index with its own parameters, as JSON text
FAN_OUT_PARAMS = text(FAN_OUT_SQL.format(
    source="unnest(CAST(:indices AS integer[]), CAST(:params AS text[])) AS s(i, p)", params="CAST(p AS json)"))


def insert_batch(session, values, first, last, indices=None, spread=None):
    """Insert the details of positions ``first`` to ``last - 1`` (``indices``: a rerun's, by position;
    ``spread``: the result's ``execution_params``)."""
    if spread:
        own = per_execution.execution_params(spread, first, last)
        session.execute(FAN_OUT_PARAMS, {
            **values, "indices": list(indices[first:last]) if indices else list(range(first, last)),
            "params": [json.dumps(p, separators=(",", ":")) if p else None for p in own]})
    elif indices:
        session.execute(FAN_OUT_INDICES, {**values, "indices": list(indices[first:last])})
    else:
        session.execute(FAN_OUT_RANGE, {**values, "first": first, "last": last})

# Fan-out drivers of a result and its CANCEL take turns on this lock (held to the end of
# the transaction), not on the result row: a batch inserts thousands of rows, and the row
# is what every claim and report of the result updates; it is locked only to write ``created``.
RESULT_FAN_OUT_LOCK = text("SELECT pg_advisory_xact_lock(hashtextextended('stevedore.fan_out:' || :result_id, 0))")


def fan_out_batch(session, result_id, batch=FAN_OUT_BATCH):
    """Create the next batch of a result's details; return how many were made.

    Resumable: it starts from ``result.created``, committed with each batch,
    and the (result_id, index) key makes a repeated batch insert nothing.
    """
    session.execute(RESULT_FAN_OUT_LOCK, {"result_id": result_id})
    # read after the lock: another driver's batch or a cancel committed before it are seen
    result = session.get(Result, result_id, populate_existing=True)
    if result is None or result.created >= result.times:
        session.rollback()
        return 0
    first, last = result.created, min(result.created + batch, result.times)
    cancelled = result.cancel_requested
    indices = (result.params or {}).get("indices")  # a rerun runs the failed indices again
    # a cancelled result counted these as CANCELLED when it was cancelled
    values = {"result_id": result.id, "task_id": result.task_id, "priority": result.priority, "team": result.team,
              "status": st.CANCELLED if cancelled else st.QUEUED, "submitted_at": result.submitted_at,
              "end": now() if cancelled else None,
              "reason": (result.ended_by or UNSTARTED_REASON) if cancelled else None}
    insert_batch(session, values, first, last, indices, result.execution_params)
    if result.waiting_for is not None and not cancelled:  # its run's ``after`` does not hold yet
        hold_waiting(session, result, first, last)
    # the row lock only now, until the commit right after
    session.execute(update(_results).where(_results.c.id == result_id).values(created=last))
    session.commit()
    return last - first


def waiting_reason(conditions, per_index):
    """What an execution held by its run's ``after`` says (at most 20 conditions: bounded)."""
    named = ", ".join(f"{c['result_id']} ({c['when']})" for c in conditions)
    if per_index:
        return f"waiting for the execution of the same index of result {named}"
    return f"waiting for result {named}"


def hold_waiting(session, result, first, last):
    """Executions ``first``..``last - 1`` (by position) of a run that waits (``after``): out of the claim
    until released (services/scheduler/executions/dependencies.py).

    Called in the transaction that makes them (the RUN, a fan-out batch), so no
    claim ever sees them free.
    """
    if last <= first:
        return
    session.execute(update(_details).where(
        _details.c.result_id == result.id, _details.c.status == st.QUEUED, _details.c.runner.is_(None),
        _details.c.index >= first, _details.c.index < last)
        .values(waiting=True, reason=waiting_reason(result.waiting_for or [], result.params.get("per_index"))))


def unfinished_fan_outs(session, older_than):
    return session.scalars(select(Result.id).where(
        Result.created < Result.times, Result.submitted_at < older_than)).all()
