"""The scheduler's rules for results and their executions (details), one concern a module.

``state``: rows, counters, status, the database's clock and the lock order every
rule keeps.  ``submit``: a RUN made a result.  ``fanout``: a result's executions made in batches.  ``claims``: an
execution given to a runner under a lease.  ``cancel``: cancelling a run or one
execution.  ``logs``: an execution's output, stored and read.
``reports``: a runner's reports of an attempt's start and end, folded.  ``retention``:
a result's end announced, and the result deleted.
"""
import logging
from collections import OrderedDict

from sqlalchemy import and_, delete, func, or_, select, update

from services.scheduler.executions.cancel import (  # noqa: F401
    cancel_detail, cancel_result, cancel_unstarted, finish_cancel, unfinished_cancels)
from services.scheduler.executions.claims import (  # noqa: F401
    CLAIM_SQL, claim, expired_leases, note_waiting, renew_leases, sized_active_results)
from services.scheduler.executions.fanout import (  # noqa: F401
    FAN_OUT_BATCH, FAN_OUT_INDICES, FAN_OUT_RANGE, RESULT_FAN_OUT_LOCK, fan_out_batch, unfinished_fan_outs)
from services.scheduler.executions.logs import get_log_bytes, get_logs, store_live_logs, store_logs  # noqa: F401
from services.scheduler.executions.reports import (  # noqa: F401
    backoff, clean_text, mark_finished, mark_started, queue_wait, readable)
from services.scheduler.executions.submit import create_result, find_by_key, rerun_failed  # noqa: F401
from services.scheduler.executions.retention import (  # noqa: F401
    RETENTION_BATCH, delete_result, expired_results, mark_notified, unnotified_finished)
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


# ---------------------------------------------------------------- deleting


def active_results(session, task_id):
    return session.scalar(select(func.count()).select_from(Result).where(
        Result.task_id == task_id, Result.status.in_([st.QUEUED, st.RUNNING])))


# ---------------------------------------------------------------- claiming


# ---------------------------------------------------------------- runner reports


# ---------------------------------------------------------------- cancelling


