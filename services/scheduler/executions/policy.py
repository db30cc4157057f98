"""A run's failure policy: ``max_failures``, the exit-code rules of ``retries``, and ``deadline``.

* Exit-code rules (``may_retry``): an attempt that ended ERROR with an exit code
  uses the run's retries only as ``retry_on_exit_codes`` (only these) or
  ``no_retry_on_exit_codes`` (all but these) allow; one with no exit code (its
  runner lost, an engine error) is retried as without rules.
* ``max_failures`` (``count_end``): folded where an execution's end is folded
  (``reports.mark_finished``), with its detail and result rows locked, so the
  count is exact however many reports arrive at once.  An execution counts once
  it ended ERROR, or KILLED by its own timeout, after its retries.  Reaching the
  limit marks the run (``ended_by = "max_failures"``, in that transaction: no
  failed attempt of it is queued again from then on); the stop itself
  (``stop_result``) follows right after, and the sweep finishes one that a
  crash cut short (``unfinished_stops``).
* ``deadline``: ``deadline_at`` is set when the run may start (its submission,
  or ``arm_deadline`` when it is released from a wait); the deadline timer
  stops the runs past it (``past_deadline``, ``stop_result``).

A stop is a cancel with a reason: the run is marked cancelled under the
fan-out's lock and its row's (no claim takes its work from then on; executions
not made yet are made CANCELLED), its queued executions end CANCELLED, and its
runners stop what they hold (told by ``result_cancelled``, or by their next
heartbeat), which end KILLED -- each with the reason ``ended_by``.  The run
then ends ERROR (max_failures) or KILLED (deadline) whatever its executions
ended with (``state.derive_status``).  Lock order: the fan-out lock, then the
result row, as ``cancel.cancel_result``.
"""
from sqlalchemy import select

from services.scheduler.executions.cancel import finish_cancel
from services.scheduler.executions.fanout import RESULT_FAN_OUT_LOCK
from services.scheduler.executions.state import DEADLINE, MAX_FAILURES, UNSTARTED_REASON, derive_status
from services.scheduler.models import Result
from shared import audit
from shared import statuses as st
from shared.timeutil import now

REASONS = (MAX_FAILURES, DEADLINE)

# what a runner reports of an execution it stopped because its run was cancelled
RUNNER_STOP_REASONS = ("cancelled", UNSTARTED_REASON)


def may_retry(result, exit_code):
    """Whether an attempt of ``result`` that ended ERROR with ``exit_code`` may use its retries."""
    if result.ended_by is not None:  # the policy stopped the run: nothing is queued again
        return False
    if exit_code is None:
        return True
    params = result.params or {}
    only = params.get("retry_on_exit_codes")
    if only is not None:
        return exit_code in only
    never = params.get("no_retry_on_exit_codes")
    if never is not None:
        return exit_code not in never
    return True


def final_reason(result, detail, status, exit_code, reason):
    """The reason of an ERROR that ends an execution: with a note when its run's exit-code rules
    kept it from its remaining retries."""
    retries = (result.params or {}).get("retries") or 0
    if status != st.ERROR or detail.attempt > retries or result.ended_by is not None \
            or result.cancel_requested or detail.cancel_requested or may_retry(result, exit_code):
        return reason
    rule = "retry_on_exit_codes" if (result.params or {}).get("retry_on_exit_codes") is not None \
        else "no_retry_on_exit_codes"
    note = f"not retried: exit code {exit_code} and {rule}"
    return f"{reason}; {note}" if reason else note


def is_failure(result, detail, status):
    """Whether an execution that ended ``status`` (after its retries) counts against ``max_failures``.

    ERROR, or KILLED by its own timeout: an execution is KILLED otherwise only
    when it was cancelled (the run, or this execution), which is no failure.
    """
    if status == st.ERROR:
        return True
    return status == st.KILLED and not (detail.cancel_requested or result.cancel_requested)


def count_end(result, detail, status):
    """Count an execution's end (both rows locked); True when it makes the run reach ``max_failures``."""
    if not is_failure(result, detail, status):
        return False
    result.n_failed = (result.n_failed or 0) + 1
    limit = (result.params or {}).get("max_failures")
    if limit and result.n_failed >= limit and result.ended_by is None and not result.cancel_requested:
        result.ended_by = MAX_FAILURES
        return True
    return False


def stopped_reason(result, detail, status, reason):
    """The reason an execution is kept with: ``ended_by`` for one the policy's stop ended.

    A runner tells a stop of a cancelled run as KILLED "cancelled" (or CANCELLED
    "cancelled before it started"); when the policy stopped the run and not its
    user this execution, the reason is the policy's.  A timeout's own reason stays.
    """
    if result.ended_by and status in (st.KILLED, st.CANCELLED) and not detail.cancel_requested \
            and (reason is None or reason in RUNNER_STOP_REASONS):
        return result.ended_by
    return reason


def needs_stop(result):
    """Whether ``result`` was marked stopped by its policy but not yet stopped (``stop_result``)."""
    return result.ended_by is not None and not result.cancel_requested and result.status not in st.TERMINAL


def stop_result(session, result_id, why, stamp=None):
    """Stop a run for its failure policy (``why``: "max_failures" or "deadline"), like a cancel.

    Returns (result, how many executions this call ended CANCELLED, whether this
    call stopped it); (None, 0, False) when there is nothing to do: the run ended,
    or its user cancelled it first (that cancel stands, without a reason).
    Idempotent: the sweep calls it again for a stop cut short.
    """
    stamp = stamp or now()
    session.execute(RESULT_FAN_OUT_LOCK, {"result_id": result_id})
    result = session.get(Result, result_id, with_for_update=True, populate_existing=True)
    if result is None or result.status in st.TERMINAL or (result.ended_by is None and result.cancel_requested):
        session.rollback()
        return None, 0, False
    if result.ended_by is None:
        result.ended_by = why
    stopped, first = 0, not result.cancel_requested
    if first:
        # executions the fan-out has not made yet end now; it makes them CANCELLED
        stopped = result.times - result.created
        result.cancel_requested = True
        result.n_cancelled += stopped
        if stopped:
            result.end = max(result.end or 0, stamp)
        result.status = derive_status(result)
        audit.record(session, audit.SYSTEM, "result.stop", "result", result_id, result.team,
                     {"task_id": result.task_id, "ended_by": result.ended_by}, outcome=result.status)
    session.commit()
    stopped += finish_cancel(session, result_id, stamp)
    return session.get(Result, result_id), stopped, first


def unfinished_stops(session):
    """Runs the policy marked stopped whose stop was cut short (the scheduler stopped in between)."""
    return session.scalars(select(Result.id).where(
        Result.ended_by.is_not(None), Result.cancel_requested.is_(False),
        Result.status.in_([st.QUEUED, st.RUNNING]))).all()


def deadline_at(params, start_at):
    """When a run with ``params`` that may start at ``start_at`` meets its deadline (None: none)."""
    deadline = (params or {}).get("deadline")
    return None if not deadline else start_at + deadline


def arm_deadline(result, start_at):
    """Start the clock of ``result``'s deadline at ``start_at`` (a waiting run, when released).

    The caller holds the result row and commits.  A run without a deadline is unchanged.
    """
    result.deadline_at = deadline_at(result.params, start_at)
    return result.deadline_at


def past_deadline(session, at=None, limit=100):
    """Ids of active runs whose deadline has passed and that the policy has not stopped yet."""
    at = now() if at is None else at
    ids = session.scalars(select(Result.id).where(
        Result.deadline_at.is_not(None), Result.ended_by.is_(None), Result.cancel_requested.is_(False),
        Result.status.in_([st.QUEUED, st.RUNNING]), Result.deadline_at <= at)
        .order_by(Result.deadline_at).limit(limit)).all()
    session.rollback()
    return ids
