"""Fair share: which team's execution a claim takes, and each team's count of executions held.

The rule (docs/guarantees.md "Fair share"): among the teams that have an execution this runner may
claim and are under their ``max_running``, the team furthest below its share first -- the least
``active / weight``, ``active`` being its executions runners hold now (``teams.active``, less those
the claiming runner says have ended: ``ended`` below) -- then,
between teams at the same share, the highest priority, then the oldest (``details.seq``); within a
team, highest priority first, then oldest.

``PICK`` is that rule as CTEs of the claim's one statement (claims.py), for up to ``k`` executions at
once (a runner claims for all its free slots in one call): ``shares`` finds each team's first claimable
execution (one probe of ``ix_details_claimable`` per team, which starts with ``team``; no lock) and ranks
the teams; ``locked`` then walks the ranked teams and locks what it can of theirs (``FOR UPDATE SKIP
LOCKED``), so a team whose only queued execution another claim holds is passed over for the next team, not
answered "nothing"; ``pick`` orders them as ``k`` claims in turn would have taken them.  Teams are few (hundreds at
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
#
# ``pick``: (id, result_id, team, turn) of up to :k executions to claim at once (a runner's free slots), in the order
# :k claims one after the other would take them: the n-th execution a team gets counts n - 1 more held for
# its share, ``(held + n - 1) / weight``.  ``shares`` ranks the teams by their first claimable execution;
# only the first 2k teams can give one of the k (each team ahead of it gives at least its first: the rest of
# 2k is for teams whose first executions other claims hold).  Each gives at most k, and at most its room under
# ``max_running``, locked (``FOR UPDATE SKIP LOCKED``); ``fitting`` keeps a run's at most its room under
# ``parallelism``.  What a claim locks but does not take is free again at its commit, at once.
PICK = f"""
    ended AS (
        SELECT d.team, count(*) AS n FROM details d
        WHERE d.runner = :runner AND d.status IN ('QUEUED', 'RUNNING')
          AND CAST(:held AS text[]) IS NOT NULL AND d.id <> ALL(CAST(:held AS text[]))
        GROUP BY d.team
    ), shares AS MATERIALIZED (
        SELECT t.name AS team, greatest(t.active - coalesce(ended.n, 0), 0) AS base, t.weight,
               CASE WHEN t.max_running IS NULL THEN :k ELSE least(:k, t.max_running - t.active) END AS room,
               head.priority, head.seq
        FROM teams t LEFT JOIN ended ON ended.team = t.name
        CROSS JOIN LATERAL ({_first_of("t.name", lock=False)}) head
        WHERE t.max_running IS NULL OR t.active < t.max_running
    ), locked AS (
        SELECT next.id, next.result_id, ranked.team, ranked.base, ranked.weight, next.priority, next.seq,
               next.active, next.parallelism
        FROM (SELECT team, base, weight, room FROM shares
              ORDER BY base / weight, priority DESC, seq LIMIT 2 * :k) ranked
        CROSS JOIN LATERAL (
            SELECT d.id, d.result_id, d.priority, d.seq, r.active, r.parallelism
            FROM details d JOIN results r ON r.id = d.result_id
            WHERE d.team = ranked.team AND {CLAIMABLE}
            ORDER BY d.priority DESC, d.seq
            LIMIT ranked.room FOR UPDATE OF d SKIP LOCKED) next
    ), fitting AS (
        SELECT * FROM (
            SELECT locked.*, row_number() OVER (PARTITION BY result_id ORDER BY priority DESC, seq) AS nth_of_run
            FROM locked) numbered
        WHERE parallelism IS NULL OR active + nth_of_run <= parallelism
    ), pick AS (
        SELECT id, result_id, team, row_number() OVER (ORDER BY (base + nth - 1) / weight, priority DESC, seq)
                                    AS turn
        FROM (SELECT fitting.*, row_number() OVER (PARTITION BY team ORDER BY priority DESC, seq) AS nth
              FROM fitting) numbered
        ORDER BY turn
        LIMIT :k
    )"""

# one more held execution of each picked team per execution picked, unless that would pass its max_running
# (checked on the latest row: a concurrent claim's +n is waited for, then counted)
TAKE_TEAM_SLOT = """
    team_wanted AS (
        SELECT pick.team, count(*) AS n FROM pick JOIN slot ON slot.id = pick.result_id GROUP BY pick.team
    ), team_slot AS (
        UPDATE teams t SET active = t.active + team_wanted.n
        FROM team_wanted
        WHERE t.name = team_wanted.team
          AND (t.max_running IS NULL OR t.active + team_wanted.n <= t.max_running)
        RETURNING t.name
    )"""

RELEASE_SQL = text("UPDATE teams SET active = greatest(active - 1, 0) WHERE name = :team")


def release(session, team):
    """One execution fewer held for ``team`` (in the caller's transaction, after its detail and result
    rows were locked)."""
    session.execute(RELEASE_SQL, {"team": team})
