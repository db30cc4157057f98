"""A team's queue quota (``max_queued``), checked by every new run: a RUN, a RERUN_FAILED, a schedule's fire.

A team's queued executions are those its QUEUED or RUNNING runs have not started or ended yet
(``counts.QUEUED`` summed: claimed but not started, waiting for another run, or not made yet by the
fan-out, as a result's counts show them).  A new run is admitted when they and its ``times`` are at
most ``max_queued``; else 429 with a ``Retry-After``.  Exact under concurrency: the runs of one team
are admitted one at a time (a transaction-scoped advisory lock per team, held until the run is
committed), and the count is read after the lock, so two RUNs never both take the last places.  Claims
never take that lock.  A retry of an admitted execution (queued again after an ERROR) is not refused:
the quota is a door, not a ceiling.

The team's row is held ``FOR KEY SHARE`` until the run is committed: a DELETE of the team (``FOR
UPDATE``) waits, then finds the run; claims (which change ``teams.active``, a no-key update) do not.

Retry-After: the seconds the team's running runs need, at the pace they have kept so far (executions
ended per second since each started, summed), to take the excess off the queue; 1 to 3600, and
RETRY_AFTER_IDLE (30) when none of its runs has started, so no pace is known.
"""
import math

from sqlalchemy import select, text

from services.scheduler.models import Team
from shared.errors import Conflict, TooManyRequests
from shared.timeutil import now

RETRY_AFTER_IDLE = 30
RETRY_AFTER_MAX = 3600

TEAM_QUEUE_LOCK = text("SELECT pg_advisory_xact_lock(hashtextextended('stevedore.team_queue:' || :team, 0))")

# a team's queued executions: its active runs' counts.QUEUED summed (through ix_results_team_active)
QUEUED_SUM = "coalesce(sum(times - n_running - n_complete - n_error - n_cancelled - n_killed), 0)"
ACTIVE_RUNS = "status IN ('QUEUED', 'RUNNING')"

# the team's queued executions, and the pace its started runs keep
QUEUED_SQL = text(f"""
    SELECT {QUEUED_SUM} AS queued,
           coalesce(sum(CASE WHEN start IS NOT NULL AND :now - start > 1
                             THEN (n_complete + n_error + n_killed) / (:now - start) END), 0) AS pace
    FROM results WHERE team = :team AND {ACTIVE_RUNS}
""")


def queued(session, team):
    """(executions the team has queued, executions per second its started runs end)."""
    row = session.execute(QUEUED_SQL, {"team": team, "now": now()}).one()
    return int(row.queued), float(row.pace)


def retry_after(excess, pace):
    """Seconds until ``excess`` executions leave a queue that drains at ``pace`` per second."""
    if pace <= 0:
        return RETRY_AFTER_IDLE
    return int(min(RETRY_AFTER_MAX, max(1, math.ceil(excess / pace))))


def admit(session, team, times):
    """Admit a new run of ``times`` executions for ``team`` (in the caller's transaction, which must
    commit the run): Conflict when the team does not exist or the run can never fit its quota,
    TooManyRequests when it does not fit now (the caller's transaction left as it was: a schedule's
    fire records the refusal in it)."""
    row = session.execute(select(Team.name, Team.max_queued).where(Team.name == team)
                          .with_for_update(read=True, key_share=True)).first()
    if row is None:
        raise Conflict(f"team {team!r} does not exist (it was deleted); an admin can create it again", "team")
    limit = row.max_queued
    if limit is None:
        return
    if times > limit:
        raise Conflict(f"{times} executions are more than team {team}'s max_queued ({limit}): this run can "
                       "never be queued; split it, or have an admin raise the quota", "times")
    session.execute(TEAM_QUEUE_LOCK, {"team": team})
    count, pace = queued(session, team)
    if count + times > limit:
        excess = count + times - limit
        wait = retry_after(excess, pace)
        raise TooManyRequests(f"team {team} has {count} executions queued and its quota is {limit}; this run "
                              f"adds {times}; try again in {wait}s, as the queue drains", "max_queued", wait)
