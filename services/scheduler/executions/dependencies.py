"""Dependencies between runs: a RUN's ``after``, held, released and cancelled.

A run with ``after`` is made as any other, but its executions wait
(``details.waiting``: the claim's index leaves them out) until its conditions
hold.  For the whole run (``per_index`` false) they hold when every run named
has ended (``when`` ENDED) or ended COMPLETE (``when`` COMPLETE); then all its
executions are released at once.  With ``per_index``, execution i is released
when execution i of every run named has ended (COMPLETE): pairs by index, for
runs of equal ``times``.  A condition that can no longer hold (a run waited for
COMPLETE ended otherwise, or was deleted before its end was seen) cancels what
waits on it: the whole run (CANCELLED, ``reason`` naming the run waited for),
or with ``per_index`` the one execution, its ``reason`` naming its pair.

What drives it: ``settle(session, result_id)`` re-checks one run that waits,
and is called when a run waited for (or one of its executions) ends, after a
fan-out batch of a run that waits, right after a RUN with ``after``, and by the
scheduler's sweep for every run still waiting -- so a scheduler stopped between
a run's end and its dependents' release leaves nothing waiting for ever.  It is
idempotent: two schedulers settling one run take turns on the run's fan-out
lock, and the second finds nothing left to do.

Lock order: the run's fan-out lock (advisory), then its details, then its
result row, as every writer keeps.  A RUN with ``after`` holds the runs it
names with ``FOR KEY SHARE`` until it commits: none of them is deleted, nor its
end folded unseen, in between.
"""
from dataclasses import dataclass

from sqlalchemy import select, text, update

from services.scheduler.executions.cancel import finish_cancel
from services.scheduler.executions.fanout import RESULT_FAN_OUT_LOCK, hold_waiting
from services.scheduler.executions.policy import arm_deadline
from services.scheduler.executions.state import derive_status
from services.scheduler.models import Detail, Result, ResultDependency
from shared import audit
from shared import statuses as st
from shared.errors import ValidationError
from shared.timeutil import now

_details = Detail.__table__

FAILED_ENDS = (st.ERROR, st.KILLED, st.CANCELLED)  # ends that fail a COMPLETE condition
_TERMINAL_SQL = "('COMPLETE', 'ERROR', 'CANCELLED', 'KILLED')"


def check(session, params, team=None):
    """Refuse an ``after`` that cannot be waited for; hold the runs it names until the caller commits.

    400 naming ``after[i].result_id`` for a run that does not exist or is not of ``team`` (the new
    run's: a run waits only for its own team's, and another team's is answered as an unknown one),
    and naming ``per_index`` for a run of other ``times`` or a rerun (its indices are not
    0..times-1).  A run cannot name itself: its id is made after this.
    """
    after = params.get("after") or []
    if not after:
        return
    ids = [c["result_id"] for c in after]
    query = select(Result.id, Result.times, Result.params).where(Result.id.in_(ids))
    if team is not None:
        query = query.where(Result.team == team)
    found = {row.id: row for row in session.execute(query.with_for_update(read=True, key_share=True)).all()}
    for i, condition in enumerate(after):
        row = found.get(condition["result_id"])
        if row is None:
            session.rollback()
            raise ValidationError(f"no result {condition['result_id']}", f"after[{i}].result_id")
        if params.get("per_index"):
            if row.times != params["times"]:
                session.rollback()
                raise ValidationError(
                    f"pairs executions by index: result {row.id} has times {row.times}, this run "
                    f"{params['times']}; they must be equal", "per_index")
            if (row.params or {}).get("indices"):
                session.rollback()
                raise ValidationError(f"pairs executions by index: result {row.id} is a rerun of some "
                                      "indices only; name its original run", "per_index")


def declare(session, result):
    """Inside the RUN's transaction: store its conditions; the executions made so far wait."""
    after = result.params.get("after") or []
    per_index = bool(result.params.get("per_index"))
    for position, condition in enumerate(after):
        session.add(ResultDependency(result_id=result.id, after_result_id=condition["result_id"],
                                     when=condition["when"], per_index=per_index, position=position))
    result.waiting_for = [dict(c) for c in after]
    session.flush()
    hold_waiting(session, result, 0, result.created)


def waiting_on(session, awaited_id):
    """Runs still waiting that name ``awaited_id`` in their ``after``."""
    rows = session.scalars(select(ResultDependency.result_id).join(
        Result, Result.id == ResultDependency.result_id).where(
        ResultDependency.after_result_id == awaited_id, Result.waiting_for.is_not(None))).all()
    session.commit()
    return rows


def waiting_on_any(session, awaited_ids):
    """``waiting_on`` of each of ``awaited_ids`` in one query, in the caller's transaction: {id: [runs]}
    (only those some run waits on)."""
    rows = session.execute(select(ResultDependency.after_result_id, ResultDependency.result_id).join(
        Result, Result.id == ResultDependency.result_id).where(
        ResultDependency.after_result_id.in_(awaited_ids), Result.waiting_for.is_not(None))).all()
    waiting = {}
    for awaited, waiter in rows:
        waiting.setdefault(awaited, []).append(waiter)
    return waiting


# runs still waiting that ``settle`` may change: one they wait for ended (or was deleted), or they were
# cancelled meanwhile (``ended``); or, for ``per_index``, one they wait for has executions that ended.  The
# rest (waiting for runs still going) are left alone: the sweep costs nothing per run that merely waits.
TO_SETTLE = text("""
    SELECT r.id, r.cancel_requested OR r.status IN {terminal} OR EXISTS (
               SELECT 1 FROM result_dependencies dep LEFT JOIN results a ON a.id = dep.after_result_id
               WHERE dep.result_id = r.id AND (a.id IS NULL OR a.status IN {terminal})) AS ended
    FROM results r
    WHERE r.waiting_for IS NOT NULL AND (
        r.cancel_requested OR r.status IN {terminal} OR EXISTS (
            SELECT 1 FROM result_dependencies dep LEFT JOIN results a ON a.id = dep.after_result_id
            WHERE dep.result_id = r.id
              AND (a.id IS NULL OR a.status IN {terminal}
                   OR (dep.per_index AND a.n_complete + a.n_error + a.n_cancelled + a.n_killed > 0))))
    LIMIT :limit
""".format(terminal=_TERMINAL_SQL))


def waiting_results(session, limit=500):
    """Runs still waiting that the sweep should settle (``TO_SETTLE``): (id, whether what it waits for
    ended), the latter false only for a ``per_index`` run some of whose pairs ended."""
    rows = [(row.id, row.ended) for row in session.execute(TO_SETTLE, {"limit": limit})]
    session.commit()
    return rows


@dataclass
class Settled:
    """What ``settle`` did to a run: executions released (``released``: how many, ``run_released``: the run
    released for the first time), ``cancelled`` (the run cancelled: its runners must stop), ``ended`` (it
    ended: announce it), ``stopped`` (executions ended CANCELLED)."""

    result_id: str
    released: int = 0
    run_released: bool = False
    cancelled: bool = False
    ended: bool = False
    stopped: int = 0
    sized: bool = False


def settle(session, result_id, index=None, at=None):
    """Re-check a waiting run's conditions; release, cancel or leave it (a ``Settled``).

    ``index``: only that execution of a ``per_index`` run (one of its pairs
    ended); None: all of them.
    """
    at = at or now()
    settled = Settled(result_id)
    session.execute(RESULT_FAN_OUT_LOCK, {"result_id": result_id})
    # read under the fan-out lock: cancel_requested, created and waiting_for change only under it
    result = session.get(Result, result_id, populate_existing=True)
    if result is None or result.waiting_for is None:
        session.rollback()
        return settled
    settled.sized = bool(result.params.get("memory") or result.params.get("cpus")
                         or result.params.get("constraints") or result.params.get("gpus"))
    if result.cancel_requested or result.status in st.TERMINAL:
        _stop_waiting(session, result_id)
        session.commit()
        return settled
    deps = session.scalars(select(ResultDependency).where(ResultDependency.result_id == result_id)
                           .order_by(ResultDependency.position)).all()
    awaited = dict(session.execute(select(Result.id, Result.status).where(
        Result.id.in_([d.after_result_id for d in deps]))).all())
    if deps and deps[0].per_index:
        return _settle_pairs(session, result, deps, awaited, index, at, settled)
    unmet = []
    for dep in deps:
        status = awaited.get(dep.after_result_id)
        if status is None:  # deleted: it had ended, but how is no longer known ...
            # ... unless this run saw it end as it waited for: a condition met leaves ``waiting_for``
            seen_met = {"result_id": dep.after_result_id, "when": dep.when} not in (result.waiting_for or [])
            if dep.when == "COMPLETE" and not seen_met:
                return _cancel(session, result, f"result {dep.after_result_id} was deleted before this run "
                                                f"saw it end COMPLETE", at, settled)
        elif status not in st.TERMINAL:
            unmet.append({"result_id": dep.after_result_id, "when": dep.when})
        elif dep.when == "COMPLETE" and status != st.COMPLETE:
            return _cancel(session, result, f"result {dep.after_result_id} ended {status}; this run waited "
                                            "for it to end COMPLETE", at, settled)
    if unmet:
        if unmet != result.waiting_for:
            _locked(session, result_id).waiting_for = unmet
        session.commit()
        return settled
    settled.released = session.execute(update(_details).where(
        _details.c.result_id == result_id, _details.c.waiting.is_(True), _details.c.status == st.QUEUED)
        .values(waiting=False, reason=None)).rowcount
    result = _locked(session, result_id)
    result.waiting_for = None
    settled.run_released = _first_release(session, result, at)
    session.commit()
    return settled


# per execution: whether every pair holds (met), or one can no longer (failed, with why)
_PAIRS_SQL = """
    WITH verdict AS (
        SELECT b.id,
               bool_and(coalesce(CASE WHEN dep."when" = 'COMPLETE' THEN a.status = 'COMPLETE'
                                      ELSE a.status IN {terminal} OR (a.id IS NULL AND
                                           (ar.id IS NULL OR ar.status IN {terminal})) END, false)) AS met,
               min(CASE WHEN dep."when" = 'COMPLETE' AND (a.status IN ('ERROR', 'KILLED', 'CANCELLED')
                             OR (a.id IS NULL AND (ar.id IS NULL OR ar.status IN {terminal})))
                        THEN 'cancelled: execution ' || b."index" || ' of result ' || dep.after_result_id
                             || CASE WHEN ar.id IS NULL THEN ' was deleted' ELSE ' ended '
                                     || coalesce(a.status, 'CANCELLED') END
                             || '; this one waited for it to end COMPLETE' END) AS failed
        FROM details b
        JOIN result_dependencies dep ON dep.result_id = b.result_id
        LEFT JOIN results ar ON ar.id = dep.after_result_id
        LEFT JOIN details a ON a.result_id = dep.after_result_id AND a."index" = b."index"
        WHERE b.result_id = :result_id AND b.waiting AND b.status = 'QUEUED' AND b.runner IS NULL
              AND (CAST(:index AS integer) IS NULL OR b."index" = CAST(:index AS integer))
        GROUP BY b.id
    )
""".format(terminal=_TERMINAL_SQL)

CANCEL_PAIRS = text(_PAIRS_SQL + """
    UPDATE details d SET status = 'CANCELLED', "end" = :at, waiting = false, not_before = NULL,
                         reason = v.failed
    FROM verdict v WHERE d.id = v.id AND v.failed IS NOT NULL
    RETURNING d.reason
""")

RELEASE_PAIRS = text(_PAIRS_SQL + """
    UPDATE details d SET waiting = false, reason = NULL
    FROM verdict v WHERE d.id = v.id AND v.failed IS NULL AND v.met
""")

STILL_WAITING = text("SELECT 1 FROM details WHERE result_id = :result_id AND waiting AND status = 'QUEUED' LIMIT 1")


def _settle_pairs(session, result, deps, awaited, index, at, settled):
    """``per_index``: release each execution whose pairs all ended COMPLETE (or ENDED), cancel each
    whose pair can no longer; the run stops waiting once no execution is left to settle."""
    values = {"result_id": result.id, "index": index, "at": at}
    reasons = session.execute(CANCEL_PAIRS, values).scalars().all()
    settled.released = session.execute(RELEASE_PAIRS, values).rowcount
    unmet = [{"result_id": d.after_result_id, "when": d.when} for d in deps
             if awaited.get(d.after_result_id, st.COMPLETE) not in st.TERMINAL]
    if not unmet and (result.created < result.times
                      or session.execute(STILL_WAITING, {"result_id": result.id}).first()):
        unmet = [{"result_id": d.after_result_id, "when": d.when} for d in deps]  # some still to settle
    if not reasons and not settled.released and unmet == result.waiting_for:
        session.commit()
        return settled
    result = _locked(session, result.id)
    result.waiting_for = unmet or None
    if reasons:
        settled.stopped = len(reasons)
        result.n_cancelled += len(reasons)
        result.end = max(result.end or 0, at)
        if result.reason is None:
            more = f" (and {len(reasons) - 1} more)" if len(reasons) > 1 else ""
            result.reason = reasons[0] + more
        result.status = derive_status(result)
        settled.ended = result.status in st.TERMINAL
    if settled.released:
        settled.run_released = _first_release(session, result, at)
    session.commit()
    return settled


def _cancel(session, result, reason, at, settled):
    """End a waiting run CANCELLED, ``reason`` naming the condition that can no longer hold."""
    result = _locked(session, result.id)
    stopped = result.times - result.created  # not made yet: the fan-out makes them CANCELLED
    result.cancel_requested = True
    result.reason = reason
    result.waiting_for = None
    result.n_cancelled += stopped
    if stopped:
        result.end = max(result.end or 0, at)
    result.status = derive_status(result)
    audit.record(session, audit.SYSTEM, "result.cancel", "result", result.id, result.team,
                 {"task_id": result.task_id, "reason": reason}, outcome=result.status)
    session.commit()
    settled.cancelled = True
    settled.stopped = stopped + finish_cancel(session, result.id, at, reason=f"cancelled: {reason}")
    settled.ended = session.get(Result, result.id, populate_existing=True).status in st.TERMINAL
    session.commit()
    return settled


def _stop_waiting(session, result_id):
    _locked(session, result_id).waiting_for = None


def _locked(session, result_id):
    return session.get(Result, result_id, with_for_update=True, populate_existing=True)


def _first_release(session, result, at):
    """Mark the run released (once); True the first time.  The hook every rule that counts from a run's
    release (not its submission) is called from: ``released``."""
    if result.released_at is not None:
        return False
    result.released_at = at
    released(session, result, at)
    return True


def released(session, result, at):
    """A waiting run was released at ``at`` (its first executions became claimable; the result row is
    locked, in the releasing transaction): its ``deadline`` counts from now (``policy.arm_deadline``)."""
    arm_deadline(result, at)
