"""Runner reports folded into a detail and its result: an attempt started, an attempt ended.

Reports carry the attempt they are about; a report for an attempt that is no
longer current, or for a detail already finished, changes nothing, so a report
delivered twice is harmless.  A finished report's outcome is kept even when
what came with it (output, fields) cannot be.
"""
import logging
import math

from services.scheduler import output
from services.scheduler.executions import fairshare, policy
from services.scheduler.executions.logs import store_logs
from services.scheduler.executions.state import COUNTER, db_now, derive_status, lock_pair
from services.scheduler.runnersizes import WAITING
from shared import statuses as st
from shared.handlers import first_line, is_transient
from shared.timeutil import duration, now

log = logging.getLogger(__name__)

def mark_started(session, report):
    """Fold a runner's report that an attempt started; returns (result, detail) or (None, None).

    Its ``logs`` (the output so far, when the container printed before the runner first looked) are stored
    in the same transaction, as a live output report's would be; output that cannot be stored is skipped.
    """
    detail, result = lock_pair(session, report["detail_id"])
    if not fold_started(detail, result, report, lambda *logs: _store_final_logs(session, *logs)):
        session.rollback()
        return None, None
    session.commit()
    return result, detail


def fold_started(detail, result, report, store):
    """A start report folded into its locked ``detail`` and ``result`` (no commit); False when it changes
    nothing (not the current attempt, no longer QUEUED, or another runner's).  ``store(detail_id, attempt,
    logs)``: keeps its output, and says why it could not (or None)."""
    if detail is None or detail.attempt != report["attempt"] or detail.status != st.QUEUED \
            or detail.runner != report["runner"]:
        return False
    detail.status = st.RUNNING
    detail.start = report["start"]
    if detail.reason and detail.reason.startswith(WAITING):  # it found its runner
        detail.reason = None
    detail.container_id = report.get("container_id")
    result.n_running += 1
    if result.start is None or report["start"] < result.start:
        result.start = report["start"]
    result.status = derive_status(result)
    if report.get("logs"):
        store(detail.id, report["attempt"], report["logs"])
    return True


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


def mark_finished(session, report, retry_base=1.0, retry_cap=300.0, logs=None, on_start=None, tes_log=None):
    """Fold a runner's report of an attempt's end; returns (result, detail) or (None, None).

    An ERROR (non-zero exit, runner lost) is retried while the run's
    ``retries`` and exit-code rules allow, after an exponential backoff; the
    attempt is kept in the detail's history either way.  An execution's end
    is counted for the run's ``max_failures`` here (``policy.count_end``).

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
    if is_stale_end(detail, report, lambda: db_now(session)):
        session.rollback()
        if logs:  # the output of an attempt overtaken by events is still its output
            _store_final_logs(session, report["detail_id"], report["attempt"], logs)
            session.commit()
        return None, None
    unreported_wait = fold_finished(
        detail, result, report, logs=logs, tes_log=tes_log, retry_base=retry_base, retry_cap=retry_cap,
        store=lambda *args: _store_final_logs(session, *args), release=lambda team: fairshare.release(session, team))
    session.commit()
    if unreported_wait is not None and on_start is not None:
        on_start(unreported_wait)
    return result, detail


def is_stale_end(detail, report, clock):
    """Whether an end report changes nothing: no such detail, not its current attempt, already ended, or
    out of date (``_stale``; ``clock()``: the database's clock)."""
    return detail is None or detail.attempt != report["attempt"] or detail.status in st.TERMINAL \
        or _stale(detail, report, clock)


def fold_finished(detail, result, report, logs, tes_log, retry_base, retry_cap, store, release):
    """An end report folded into its locked ``detail`` and ``result`` (no commit; the caller checked
    ``is_stale_end``).  ``store(detail_id, attempt, logs)`` keeps the output and says why it could not (or
    None); ``release(team)``: one execution fewer held for the team.  Returns the queue wait of a start
    folded with this end (or None), for the caller to count once committed."""
    status, exit_code, reason, reported_start, reported_end, problems = readable(report)
    if problems:
        log.warning("report of execution %s (attempt %s) has fields that cannot be stored: %s",
                    detail.id, detail.attempt, "; ".join(problems))
        reason = _with_note(reason, f"the runner's report could not be read in full ({'; '.join(problems)})")
    reason = policy.stopped_reason(result, detail, status, reason)  # a stop of the policy's says so
    start = reported_start or detail.start
    end = reported_end or now()
    was_running = detail.status == st.RUNNING
    unreported_wait = None if was_running or not reported_start else queue_wait(detail, start)
    if logs:
        trouble = store(detail.id, report["attempt"], logs)
        if trouble:
            reason = _with_note(reason, f"its output could not be stored: {trouble}")
    detail.attempts = list(detail.attempts or []) + [{
        "attempt": detail.attempt, "runner": report.get("runner") or detail.runner,
        "status": status, "exit_code": exit_code, "reason": reason,
        "start": start, "end": end, "duration": duration(start, end),
    }]
    if result.active > 0:  # its claim ends: a slot of its run and of its team free again
        result.active -= 1
        release(detail.team)
    if was_running:
        result.n_running -= 1
    retries = (result.params or {}).get("retries") or 0
    if status == st.ERROR and detail.attempt <= retries and policy.may_retry(result, exit_code) and not (
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
        detail.reason = policy.final_reason(result, detail, status, exit_code, reason)
        detail.lease_expires_at = None
        if report.get("container_id"):
            detail.container_id = report["container_id"]
        if tes_log is not None:  # a TES task's executor logs and outputs (services/scheduler/tes_views.py)
            detail.tes_log = tes_log
        if start is not None and (result.start is None or start < result.start):
            result.start = start
        setattr(result, COUNTER[status], getattr(result, COUNTER[status]) + 1)
        result.end = max(result.end or 0, end)
        policy.count_end(result, detail, status)  # max_failures, exact: both rows are locked
    result.status = derive_status(result)
    return unreported_wait
