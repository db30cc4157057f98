"""Fair share: which team's execution a claim takes, and each team's count of executions held.

The rule (docs/guarantees.md "Fair share"): among the teams that have an execution this runner may
claim and are under their ``max_running``, the team furthest below its share first -- the least
``active / weight``, ``active`` being its executions runners hold now (``teams.active``, less those
the claiming runner says have ended: ``ended`` below) -- then,
between teams at the same share, the highest priority, then the oldest (``details.seq``); within a
team, highest priority first, then oldest.

``PICK`` is that rule as two CTEs of the claim's one statement (claims.py): ``shares`` finds each
team's first claimable execution (one probe of ``ix_details_claimable`` per team, which starts with
``team``; no lock) and ranks the teams; ``pick`` then walks the ranked teams and takes the first
execution it can lock (``FOR UPDATE SKIP LOCKED``), so a team whose only queued execution another
claim holds is passed over for the next team, not answered "nothing".  Teams are few (hundreds at
most): the ranking is cheap whatever the queue's length.

``teams.active`` changes with ``results.active``, in the same transactions: +1 by the claim (the
``UPDATE teams`` there re-checks ``max_running`` on the latest row, so concurrent claims never start
more than it), -1 where a claim ends (``release``: an attempt's end, a claim handed back).  Lock
order: the detail, its result, then its team (the order every writer keeps: state.lock_pair).
"""
from sqlalchemy import text

# the conditions on a detail ``d`` of run ``r`` for this runner to claim it now (the claim's parameters:
# :now, :max_memory, :max_cpus, :labels, :free_gpus; and :runner, :held for ``ended`` below)
CLAIMABLE = """
        d.status = 'QUEUED' AND d.runner IS NULL AND NOT d.waiting
          AND (d.not_before IS NULL OR d.not_before <= :now)
          AND (r.parallelism IS NULL OR r.active < r.parallelism)
          AND NOT r.cancel_requested AND r.ended_by IS NULL
          AND (CAST(:max_memory AS bigint) IS NULL OR coalesce(r.memory_bytes, 0) <= CAST(:max_memory AS bigint))
          AND (CAST(:max_cpus AS double precision) IS NULL
               OR coalesce(r.cpus, 0) <= CAST(:max_cpus AS double precision))
          AND (r.constraints IS NULL OR r.constraints <@ CAST(:labels AS jsonb))
          AND coalesce(r.gpus, 0) <= :free_gpus"""


def _first_of(team, lock):
    """The first claimable execution of ``team`` (an SQL expression), by priority then age."""
    return f"""
        SELECT d.id, d.result_id, d.priority, d.seq FROM details d JOIN results r ON r.id = d.result_id
        WHERE d.team = {team} AND {CLAIMABLE}
        ORDER BY d.priority DESC, d.seq
        LIMIT 1{" FOR UPDATE OF d SKIP LOCKED" if lock else ""}"""


# ``ended``: per team, the executions the claiming runner (:runner) still holds in the database but no longer
# runs (:held, the ids it says it runs; None: not told): they have ended and their reports are not folded yet
# (a slot claims again the moment its container ended, while its end report is still on its way), or were
# claims it never heard of.  Not counted in the ranking: else a team would look one execution fuller than it
# is at each turnover of its own slots, and the team with the older work would win the ties (weights 1:3
# measured 0.38:0.62, not 0.25:0.75).  ``max_running`` still counts them (``teams.active``) until folded.
# ``pick``: (id, result_id, team) of the execution to claim, or no row.  The ranked teams are walked in
# order by a nested loop that stops at the first execution locked (LIMIT 1).
PICK = f"""
    ended AS (
        SELECT d.team, count(*) AS n FROM details d
        WHERE d.runner = :runner AND d.status IN ('QUEUED', 'RUNNING')
          AND CAST(:held AS text[]) IS NOT NULL AND d.id <> ALL(CAST(:held AS text[]))
        GROUP BY d.team
    ), shares AS MATERIALIZED (
        SELECT t.name AS team, greatest(t.active - coalesce(ended.n, 0), 0) / t.weight AS share,
               head.priority, head.seq
        FROM teams t LEFT JOIN ended ON ended.team = t.name
        CROSS JOIN LATERAL ({_first_of("t.name", lock=False)}) head
        WHERE t.max_running IS NULL OR t.active < t.max_running
    ), pick AS (
        SELECT next.id, next.result_id, ranked.team
        FROM (SELECT team, share, priority, seq FROM shares ORDER BY share, priority DESC, seq) ranked
        CROSS JOIN LATERAL ({_first_of("ranked.team", lock=True)}) next
        LIMIT 1
    )"""

# one more held execution of the picked team, unless that would pass its max_running (checked on the
# latest row: a concurrent claim's +1 is waited for, then counted)
TAKE_TEAM_SLOT = """
    team_slot AS (
        UPDATE teams t SET active = t.active + 1
        FROM pick, slot
        WHERE t.name = pick.team AND slot.id = pick.result_id
          AND (t.max_running IS NULL OR t.active < t.max_running)
        RETURNING t.name
    )"""

RELEASE_SQL = text("UPDATE teams SET active = greatest(active - 1, 0) WHERE name = :team")


def release(session, team):
    """One execution fewer held for ``team`` (in the caller's transaction, after its detail and result
    rows were locked)."""
    session.execute(RELEASE_SQL, {"team": team})
