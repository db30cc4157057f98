"""What every rule of results and executions (details) stands on: their rows, counters and status.

Leases are shared by every scheduler through the database, so their time is
the database's clock (``DB_NOW``), never a scheduler host's: a wall-clock step
on one host neither expires a live runner's leases nor keeps a lost one's.

Every change to a detail and the counters of its result happens in one
transaction, with the detail row locked before the result row (everywhere, so
two writers never deadlock: ``lock_pair``).
"""
from sqlalchemy import Float, literal_column, select

from services.scheduler.models import Detail, Result
from shared import statuses as st
from shared.errors import NotFound

# the database's clock, in epoch seconds: what lease deadlines are set from and compared with
DB_NOW_SQL = "extract(epoch FROM clock_timestamp())"

DB_NOW = literal_column(DB_NOW_SQL, Float)

UNSTARTED_REASON = "cancelled before it started"

# why a run's failure policy stopped it (``results.ended_by``), and the status the run then ends
# with whatever its executions ended with (services/scheduler/executions/policy.py)
MAX_FAILURES = "max_failures"
DEADLINE = "deadline"
ENDED_BY_STATUS = {MAX_FAILURES: st.ERROR, DEADLINE: st.KILLED}

COUNTER = {
    st.COMPLETE: "n_complete",
    st.ERROR: "n_error",
    st.CANCELLED: "n_cancelled",
    st.KILLED: "n_killed",
}


def counts(result):
    done = {status: getattr(result, column) for status, column in COUNTER.items()}
    running = result.n_running
    queued = result.times - running - sum(done.values())
    return {st.QUEUED: queued, st.RUNNING: running, **done}


def _check_id(value, field):
    if not isinstance(value, str) or not 0 < len(value) <= 32:
        raise NotFound(f"no {field.split('_')[0]} {value!r}", field)
    return value


def get_result(session, result_id, lock=False, caller=None):
    """The result; NotFound for no such result, or (``caller`` given) one of a team it does not cover."""
    _check_id(result_id, "result_id")
    result = session.get(Result, result_id, with_for_update=lock or None)
    if result is None or (caller is not None and not caller.covers(result.team)):
        raise NotFound(f"no result {result_id!r}", "result_id")
    return result


def owner(result):
    """The team and the maker of a run, for the events about it (shared/messages.py ``Owned``)."""
    return {"team": getattr(result, "team", None), "submitted_by": getattr(result, "submitted_by", None)}


def owner_of(session, result_id):
    """``owner`` of the result ``result_id`` read from its row (Nones for a result gone meanwhile)."""
    row = session.execute(select(Result.team, Result.submitted_by).where(Result.id == result_id)).first()
    session.commit()
    return {"team": row.team if row else None, "submitted_by": row.submitted_by if row else None}


def get_detail(session, result_id, detail_id, caller=None):
    get_result(session, result_id, caller=caller)
    _check_id(detail_id, "detail_id")
    detail = session.get(Detail, detail_id)
    if detail is None or detail.result_id != result_id:
        raise NotFound(f"no detail {detail_id!r} in result {result_id!r}", "detail_id")
    return detail


def derive_status(result):
    c = counts(result)
    finished = c[st.COMPLETE] + c[st.ERROR] + c[st.CANCELLED] + c[st.KILLED]
    if finished >= result.times:
        if getattr(result, "ended_by", None) in ENDED_BY_STATUS:
            return ENDED_BY_STATUS[result.ended_by]
        if result.cancel_requested and (c[st.CANCELLED] or c[st.KILLED]):
            return st.KILLED if c[st.KILLED] else st.CANCELLED
        return st.COMPLETE if c[st.COMPLETE] == result.times else st.ERROR
    return st.RUNNING if result.start is not None else st.QUEUED


def lock_pair(session, detail_id):
    """The detail row and then its result row, both locked (the order every writer keeps)."""
    detail = session.get(Detail, detail_id, with_for_update=True)
    if detail is None:
        return None, None
    return detail, session.get(Result, detail.result_id, with_for_update=True)


def db_now(session):
    """The database's clock now, in epoch seconds (the clock of every lease)."""
    return float(session.scalar(select(DB_NOW)))
