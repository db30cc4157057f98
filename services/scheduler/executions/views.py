"""Reading results and executions: as the API shows them, listed, and their duration percentiles."""
from collections import OrderedDict

from sqlalchemy import func, select

from services.scheduler.executions.state import counts, get_result, owner
from services.scheduler.models import Detail, Result
from shared import pages, validation
from shared import statuses as st
from shared.db import labelled, newest_first, team_scoped
from shared.errors import ValidationError
from shared.messages import ResultSubmitted, wire
from shared.principals import CONFIGURED
from shared.timeutil import duration
from stevedore_jobs import contract


def result_as_dict(result, **more):
    """The result as the API shows it (the contract's ``Result``), as sent; ``more``: the fields
    only ``GET /result/{id}/`` shows (``durations``, ``webhook``)."""
    finished = result.status in st.TERMINAL
    end = result.end if finished else None
    return wire(contract.Result(
        result_id=result.id, id=result.id, task_id=result.task_id, task_name=result.task_name,
        status=result.status, submitted_at=result.submitted_at, start=result.start, end=end,
        duration=duration(result.start, end), times=result.times, image=result.image, params=result.params,
        counts=counts(result), cancel_requested=result.cancel_requested, rerun_of=result.rerun_of,
        reruns=result.reruns or [], waiting_for=None if finished else result.waiting_for,
        reason=result.reason or result.ended_by, deadline_at=result.deadline_at,
        parallelism=getattr(result, "parallelism", None), priority=getattr(result, "priority", None),
        schedule_id=getattr(result, "schedule_id", None), labels=getattr(result, "labels", None) or {},
        unschedulable=None if finished else getattr(result, "unschedulable", None),
        team=getattr(result, "team", None), submitted_by=getattr(result, "submitted_by", None), **more),
        exclude_unset=True)


def submitted(result, fanned_out=False):
    """The ``result_submitted`` event of a new result, with its labels."""
    return wire(ResultSubmitted(result_id=result.id, fanned_out=fanned_out,
                                labels=getattr(result, "labels", None) or {}, **owner(result)))


def detail_as_dict(detail):
    """The execution as the API shows it (the contract's ``Detail``), as sent."""
    return wire(contract.Detail(
        result_id=detail.result_id, detail_id=detail.id, id=detail.id, task_id=detail.task_id,
        index=detail.index, status=detail.status, submitted_at=detail.submitted_at, start=detail.start,
        end=detail.end, duration=duration(detail.start, detail.end), exit_code=detail.exit_code,
        reason=detail.reason, runner=detail.runner, attempt=detail.attempt, attempts=detail.attempts or [],
        params=getattr(detail, "params", None), gpu_ids=getattr(detail, "gpu_ids", None)),
        exclude_unset=True)


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


def list_results(session, status=None, task_id=None, limit=100, after=None, schedule_id=None, label=None,
                 team=None, caller=CONFIGURED):
    stmt = team_scoped(labelled(select(Result), Result.labels, label), Result.team, caller, team)
    if schedule_id:
        stmt = stmt.where(Result.schedule_id == schedule_id)
    if validation.status_filter(status, st.EXECUTION_STATUSES):
        stmt = stmt.where(Result.status == status)
    if task_id:
        stmt = stmt.where(Result.task_id == task_id)
    return newest_first(session, stmt, Result, Result.submitted_at, after, limit, caller, stream=True)


def list_details(session, result_id, status=None, limit=100, after=None, caller=None, stream=False):
    get_result(session, result_id, caller=caller)
    validation.status_filter(status, st.EXECUTION_STATUSES)
    stmt = select(Detail).where(Detail.result_id == result_id).order_by(Detail.index).limit(limit)
    if status:
        stmt = stmt.where(Detail.status == status)
    if after is not None:
        anchor = session.get(Detail, after) if isinstance(after, str) and len(after) <= 32 else None
        if anchor is None or anchor.result_id != result_id:
            raise ValidationError("is not the id of a listed detail", "after")
        stmt = stmt.where(Detail.index > anchor.index)
    if stream:  # each with its item's params, up to ~1 MiB
        return session.scalars(stmt, execution_options={"yield_per": pages.ROWS_AT_ONCE})
    return list(session.scalars(stmt))


def active_results(session, task_id):
    return session.scalar(select(func.count()).select_from(Result).where(
        Result.task_id == task_id, Result.status.in_([st.QUEUED, st.RUNNING])))
