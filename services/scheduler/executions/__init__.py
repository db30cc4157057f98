"""The scheduler's rules for results and their executions (details), one concern a module.

``state``: rows, counters, status, the database's clock and the lock order every
rule keeps.  ``fanout``: a result's executions made in batches.  ``claims``: an
execution given to a runner under a lease.  ``cancel``: cancelling a run or one
execution.  ``logs``: an execution's output, stored and read.

Runner reports carry the attempt they are about; a report for an attempt that
is no longer current, or for a detail already finished, changes nothing, so a
report delivered twice is harmless.
"""
import logging
import math
import uuid
from collections import OrderedDict

from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError

from services.scheduler import output
from services.scheduler.executions.cancel import (  # noqa: F401
    cancel_detail, cancel_result, cancel_unstarted, finish_cancel, unfinished_cancels)
from services.scheduler.executions.claims import (  # noqa: F401
    CLAIM_SQL, claim, expired_leases, note_waiting, renew_leases, sized_active_results)
from services.scheduler.executions.fanout import (  # noqa: F401
    FAN_OUT_BATCH, FAN_OUT_INDICES, FAN_OUT_RANGE, RESULT_FAN_OUT_LOCK, fan_out_batch, unfinished_fan_outs)
from services.scheduler.executions.logs import get_log_bytes, get_logs, store_live_logs, store_logs  # noqa: F401
from services.scheduler.executions.state import (  # noqa: F401 -- the package's names
    COUNTER, DB_NOW, DB_NOW_SQL, UNSTARTED_REASON, counts, db_now, derive_status, get_detail, get_result,
    lock_pair)
from services.scheduler.models import Detail, DetailLog, Result
from services.scheduler.runnersizes import WAITING
from shared import statuses as st
from shared import validation
from shared.db import newest_first
from shared.errors import Conflict, NotFound, ValidationError
from shared.handlers import first_line, is_transient
from shared.timeutil import duration, now

log = logging.getLogger(__name__)

_results, _details = Result.__table__, Detail.__table__


# ---------------------------------------------------------------- reading


def result_as_dict(result):
    finished = result.status in st.TERMINAL
    end = result.end if finished else None
    return {
        "result_id": result.id,
        "id": result.id,
        "task_id": result.task_id,
        "task_name": result.task_name,
        "status": result.status,
        "submitted_at": result.submitted_at,
        "start": result.start,
        "end": end,
        "duration": duration(result.start, end),
        "times": result.times,
        "image": result.image,
        "params": result.params,
        "counts": counts(result),
        "cancel_requested": result.cancel_requested,
        "rerun_of": result.rerun_of,
        "reruns": result.reruns or [],
    }


def detail_as_dict(detail):
    return {
        "result_id": detail.result_id,
        "detail_id": detail.id,
        "id": detail.id,
        "task_id": detail.task_id,
        "index": detail.index,
        "status": detail.status,
        "submitted_at": detail.submitted_at,
        "start": detail.start,
        "end": detail.end,
        "duration": duration(detail.start, detail.end),
        "exit_code": detail.exit_code,
        "reason": detail.reason,
        "runner": detail.runner,
        "attempt": detail.attempt,
        "attempts": detail.attempts or [],
    }


DURATIONS_KEPT = 1000
_durations = OrderedDict()  # (result id, its finished counters) -> percentiles, newest last


def duration_percentiles(session, result_id, result=None):
    """p50 and p95 of the durations of the executions that ran, in seconds (None before any).

    With the result row at hand, answered from memory while its finished
    counters are unchanged: an execution gets both a start and an end only in
    the transaction that counts it finished, so the same counters mean the same
    durations (a finished run of 100,000 is read once, not at every GET).
    """
    key = None
    if result is not None:
        key = (result_id, result.n_complete, result.n_error, result.n_killed, result.n_cancelled)
        if key in _durations:
            _durations.move_to_end(key)
            return dict(_durations[key])
    took = Detail.end - Detail.start
    p50, p95 = session.execute(
        select(func.percentile_cont(0.5).within_group(took),
               func.percentile_cont(0.95).within_group(took))
        .where(Detail.result_id == result_id, Detail.start.is_not(None), Detail.end.is_not(None))).one()
    durations = {"p50": None if p50 is None else round(p50, 6), "p95": None if p95 is None else round(p95, 6)}
    if key is not None:
        _durations[key] = dict(durations)
        while len(_durations) > DURATIONS_KEPT:
            _durations.popitem(last=False)
    return durations


def list_results(session, status=None, task_id=None, limit=100, after=None):
    stmt = select(Result)
    if validation.status_filter(status, st.EXECUTION_STATUSES):
        stmt = stmt.where(Result.status == status)
    if task_id:
        stmt = stmt.where(Result.task_id == task_id)
    return newest_first(session, stmt, Result, Result.submitted_at, after, limit)


def list_details(session, result_id, status=None, limit=100, after=None):
    get_result(session, result_id)
    validation.status_filter(status, st.EXECUTION_STATUSES)
    stmt = select(Detail).where(Detail.result_id == result_id).order_by(Detail.index).limit(limit)
    if status:
        stmt = stmt.where(Detail.status == status)
    if after is not None:
        anchor = session.get(Detail, after) if isinstance(after, str) and len(after) <= 32 else None
        if anchor is None or anchor.result_id != result_id:
            raise ValidationError("is not the id of a listed detail", "after")
        stmt = stmt.where(Detail.index > anchor.index)
    return list(session.scalars(stmt))


# ---------------------------------------------------------------- result status


# ---------------------------------------------------------------- submitting

def find_by_key(session, key, task_id, params):
    """The result an earlier request with this Idempotency-Key made, or None."""
    result = session.scalars(select(Result).where(Result.idempotency_key == key)).first()
    if result is not None and (result.task_id != task_id or result.params != params):
        raise Conflict("this Idempotency-Key was used for a different RUN", "Idempotency-Key")
    return result


def create_result(session, task_id, task_name, image, params, idempotency_key=None, rerun_of=None,
                  with_details=False):
    """A new result; with an Idempotency-Key already used, the first one (returns (result, created)).

    ``with_details``: its executions are made in the same transaction (a small
    run: claimable the moment the RUN commits, and no fan-out to do).
    """
    if idempotency_key:
        earlier = find_by_key(session, idempotency_key, task_id, params)
        if earlier is not None:
            return earlier, False
    stamp = now()
    result = Result(
        id=uuid.uuid4().hex, task_id=task_id, task_name=task_name,
        image=image, status=st.QUEUED, times=params["times"], params=params,
        priority=params["priority"], parallelism=params["parallelism"], submitted_at=stamp,
        memory_bytes=validation.memory_bytes(params.get("memory")),
        cpus=float(params["cpus"]) if params.get("cpus") is not None else None,
        created=params["times"] if with_details else 0,
        active=0, n_running=0, n_complete=0, n_error=0, n_cancelled=0, n_killed=0,
        cancel_requested=False, finished_notified=False, idempotency_key=idempotency_key,
        rerun_of=rerun_of, reruns=[],
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


# ---------------------------------------------------------------- deleting

def delete_result(session, result_id):
    """Delete an ended result with its details and their output; returns its task's id.

    A result still QUEUED or RUNNING answers Conflict (cancel it first).  The
    result it reran, if any, forgets it from its ``reruns``.  Details go first,
    then the result row (the lock order every writer keeps); late reports of
    its executions then find nothing, and are dropped as stale.
    """
    result = get_result(session, result_id)
    if result.status not in st.TERMINAL:
        session.rollback()
        raise Conflict(f"result {result_id} is still {result.status}; cancel it or let it end first",
                       "result_id")
    task_id, rerun_of = result.task_id, result.rerun_of
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
    finish those first).
    """
    return session.scalars(select(Result.id).where(
        Result.status.in_(list(st.TERMINAL)), Result.end < ended_before,
        Result.finished_notified.is_(True),
        or_(Result.webhook_status.in_(["DELIVERED", "FAILED"]),
            and_(Result.webhook_status.is_(None), Result.params["callback_url"].as_string().is_(None))))
        .order_by(Result.end).limit(limit)).all()


def active_results(session, task_id):
    return session.scalar(select(func.count()).select_from(Result).where(
        Result.task_id == task_id, Result.status.in_([st.QUEUED, st.RUNNING])))


# ---------------------------------------------------------------- claiming


# ---------------------------------------------------------------- runner reports


def mark_started(session, report):
    """Fold a runner's report that an attempt started; returns (result, detail) or (None, None)."""
    detail, result = lock_pair(session, report["detail_id"])
    if detail is None or detail.attempt != report["attempt"] or detail.status != st.QUEUED \
            or detail.runner != report["runner"]:
        session.rollback()
        return None, None
    detail.status = st.RUNNING
    detail.start = report["start"]
    if detail.reason and detail.reason.startswith(WAITING):  # it found its runner
        detail.reason = None
    detail.container_id = report.get("container_id")
    result.n_running += 1
    if result.start is None or report["start"] < result.start:
        result.start = report["start"]
    result.status = derive_status(result)
    session.commit()
    return result, detail


def backoff(attempt, base, cap):
    return min(cap, base * 2 ** max(0, attempt - 1))


def _stale(detail, report, clock):
    """Whether a report about the detail's current attempt is nonetheless out of date.

    It is when the runner it names no longer holds the detail (the attempt was
    already folded and put back in the queue for a retry, or taken back), or
    when it declares the runner lost but the lease was renewed since (by the
    database's clock, ``clock()``, asked only then).
    """
    if report.get("runner") is not None and detail.runner != report["runner"]:
        return True
    return bool(report.get("lease_expired")) and (detail.lease_expires_at or 0) >= clock()


def queue_wait(detail, start=None):
    """Seconds an attempt waited for a runner before ``start`` (default: the detail's), or None.

    From its submission for a first attempt; for a retry, from when its backoff
    ended (``not_before``), so the earlier attempts' run time is not counted.
    Never negative (the start is the runner's engine clock).
    """
    start = detail.start if start is None else start
    if start is None:
        return None
    since = detail.not_before if detail.attempt > 1 and detail.not_before else detail.submitted_at
    return max(0.0, start - since)


REASON_CHARS = 2000  # of a runner's reason, kept
INT32 = 2 ** 31


def clean_text(value, limit=REASON_CHARS):
    """Text PostgreSQL can hold: no NUL, no lone surrogate, at most ``limit`` characters."""
    text = value.encode("utf-8", "replace").decode("utf-8").replace("\x00", "\\x00")
    return text if len(text) <= limit else text[:limit - 1] + "…"


def readable(report):
    """A finished report's outcome fields as they can be stored, and what was wrong with them.

    Returns (status, exit_code, reason, start, end, problems).  A field that
    cannot be stored as sent is left out and named in ``problems``; an
    unknown status is taken as ERROR (the outcome is then not known).
    """
    problems = []
    status = report.get("status")
    if status not in COUNTER:
        problems.append(f"status {status!r:.40} is not one an execution ends with")
        status = st.ERROR
    exit_code = report.get("exit_code")
    if exit_code is not None and (isinstance(exit_code, bool) or not isinstance(exit_code, int)
                                  or not -INT32 <= exit_code < INT32):
        problems.append(f"exit_code {exit_code!r:.40} is not a 32-bit integer")
        exit_code = None
    reason = report.get("reason")
    if reason is not None and not isinstance(reason, str):
        problems.append(f"reason is a {type(reason).__name__}, not text")
        reason = None
    times = []
    for field in ("start", "end"):
        value = report.get(field)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                  or not math.isfinite(value)):
            problems.append(f"{field} {value!r:.40} is not a time")
            value = None
        times.append(value)
    return (status, exit_code, None if reason is None else clean_text(reason), *times, problems)


def _with_note(reason, note):
    return note if not reason else f"{reason}; {note}"


def _store_final_logs(session, detail_id, attempt, logs):
    """Store an attempt's final output inside the caller's transaction; None, or why it could not be.

    In a savepoint: a non-transient failure (an unreadable report, a value
    PostgreSQL refuses) is undone alone, so the outcome is folded all the same.
    A transient one (the database away) raises, and the whole report is retried.
    """
    try:
        row = output.from_report(logs)
        with session.begin_nested():
            store_logs(session, detail_id, attempt, row, commit=False)
    except Exception as exc:  # noqa: BLE001 -- whatever it is, the outcome must still be kept
        if is_transient(exc):
            raise
        trouble = clean_text(first_line(exc) or exc.__class__.__name__, 200)
        log.warning("the output of execution %s (attempt %s) could not be stored: %s",
                    detail_id, attempt, trouble)
        return trouble
    return None


def mark_finished(session, report, retry_base=1.0, retry_cap=300.0, logs=None, on_start=None):
    """Fold a runner's report of an attempt's end; returns (result, detail) or (None, None).

    An ERROR (non-zero exit, runner lost) is retried while the run's
    ``retries`` allow, after an exponential backoff; the attempt is kept in the
    detail's history either way.

    ``logs`` (the attempt's final output, as the runner sent it) are stored in
    the same transaction, so whoever sees the execution ended sees its output.
    Output that cannot be stored does not stop the outcome from being folded:
    the execution ends as reported, its reason saying that its output could
    not be stored and why; so do fields of the report that cannot be stored
    (see ``readable``).  A runner reports the start of a container that ended
    within its first second with the end alone: then ``on_start(queue wait
    seconds)`` is called once it is folded.
    """
    detail, result = lock_pair(session, report["detail_id"])
    if detail is None or detail.attempt != report["attempt"] or detail.status in st.TERMINAL \
            or _stale(detail, report, lambda: db_now(session)):
        session.rollback()
        if logs:  # the output of an attempt overtaken by events is still its output
            _store_final_logs(session, report["detail_id"], report["attempt"], logs)
            session.commit()
        return None, None
    status, exit_code, reason, reported_start, reported_end, problems = readable(report)
    if problems:
        log.warning("report of execution %s (attempt %s) has fields that cannot be stored: %s",
                    detail.id, detail.attempt, "; ".join(problems))
        reason = _with_note(reason, f"the runner's report could not be read in full ({'; '.join(problems)})")
    start = reported_start or detail.start
    end = reported_end or now()
    was_running = detail.status == st.RUNNING
    unreported_wait = None if was_running or not reported_start else queue_wait(detail, start)
    if logs:
        trouble = _store_final_logs(session, detail.id, report["attempt"], logs)
        if trouble:
            reason = _with_note(reason, f"its output could not be stored: {trouble}")
    detail.attempts = list(detail.attempts or []) + [{
        "attempt": detail.attempt, "runner": report.get("runner") or detail.runner,
        "status": status, "exit_code": exit_code, "reason": reason,
        "start": start, "end": end, "duration": duration(start, end),
    }]
    result.active = max(0, result.active - 1)
    if was_running:
        result.n_running -= 1
    retries = (result.params or {}).get("retries") or 0
    if status == st.ERROR and detail.attempt <= retries and not (
            result.cancel_requested or detail.cancel_requested):
        wait = backoff(detail.attempt, retry_base, retry_cap)
        detail.status = st.QUEUED
        detail.runner = None
        detail.lease_expires_at = None
        detail.container_id = None
        detail.not_before = now() + wait
        detail.start = detail.end = detail.exit_code = None
        detail.reason = (f"attempt {detail.attempt} failed ({reason or status}); "
                         f"retrying in {wait:g}s")
    else:
        detail.status = status
        detail.start = start
        detail.end = end
        detail.exit_code = exit_code
        detail.reason = reason
        detail.lease_expires_at = None
        if report.get("container_id"):
            detail.container_id = report["container_id"]
        if start is not None and (result.start is None or start < result.start):
            result.start = start
        setattr(result, COUNTER[status], getattr(result, COUNTER[status]) + 1)
        result.end = max(result.end or 0, end)
    result.status = derive_status(result)
    session.commit()
    if unreported_wait is not None and on_start is not None:
        on_start(unreported_wait)
    return result, detail


# ---------------------------------------------------------------- cancelling


def unnotified_finished(session, limit=100):
    return session.scalars(select(Result).where(
        Result.status.in_(list(st.TERMINAL)), Result.finished_notified.is_(False)).limit(limit)).all()


def mark_notified(session, result_id):
    session.execute(update(Result).where(Result.id == result_id).values(finished_notified=True))
    session.commit()
