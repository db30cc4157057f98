"""Claims and leases: which execution a runner is given, and how long it may hold it.

A claim is one SQL statement (``FOR UPDATE SKIP LOCKED``): every runner woken by
a RUN asks at once.  A claimed execution is held under a lease that its runner
renews by heartbeat; one whose lease runs out (by the database's clock) is taken
back by the sweep (``expired_leases``).
"""
import json

from sqlalchemy import JSON, or_, select, text, update

from services.scheduler.executions import fairshare
from services.scheduler.executions.state import DB_NOW
from services.scheduler.models import Detail, Result
from shared import statuses as st
from shared.messages import WorkItem, wire
from shared.timeutil import now

_details = Detail.__table__
SECRET_REFS = "_secret_refs"  # services/scheduler/secrets.py takes them off (never sent to a runner)
GPU_IDS_MAX = 64  # a runner names at most this many devices (RUNNER_GPUS: contract.fleet.parse_gpus)

# One statement per claim, of up to :k executions (a runner's free slots): pick them by fair share across
# teams (fairshare.PICK, skipping rows other claims hold), take as many slots of each result as it gets
# (parallelism and cancel re-checked on the latest row) and of each team (max_running re-checked likewise),
# take the details.  A row ``picked`` without ``taken`` means a slot was lost to a race: try again.
CLAIM_SQL = text(f"""
    WITH {fairshare.PICK}, wanted AS (
        SELECT result_id, count(*) AS n FROM pick GROUP BY result_id
    ), slot AS (
        UPDATE results r SET active = r.active + wanted.n, unschedulable = NULL
        FROM wanted
        WHERE r.id = wanted.result_id AND NOT r.cancel_requested AND r.ended_by IS NULL
          AND (r.parallelism IS NULL OR r.active + wanted.n <= r.parallelism)
        RETURNING r.id, r.task_id, r.image, r.params, coalesce(r.gpus, 0) AS gpus, r.tes, r.team,
                  r.submitted_by
    ), {fairshare.TAKE_TEAM_SLOT}, taken AS (
        UPDATE details d SET runner = :runner, attempt = d.attempt + 1,
                             lease_expires_at = extract(epoch FROM clock_timestamp()) + :lease_seconds,
                             gpu_ids = CASE WHEN slot.gpus > 0
                                            THEN to_json((CAST(:gpu_ids AS text[]))[1:slot.gpus]) END
        FROM pick, slot, team_slot
        WHERE d.id = pick.id AND slot.id = pick.result_id AND team_slot.name = pick.team
        RETURNING d.id, d.index, d.attempt, d.params AS own, d.gpu_ids
    )
    SELECT pick.id AS picked, pick.result_id, taken.id AS taken, taken.index, taken.attempt,
           slot.task_id, slot.image, slot.params, taken.own, taken.gpu_ids, slot.tes, slot.team,
           slot.submitted_by
    FROM pick LEFT JOIN taken ON taken.id = pick.id LEFT JOIN slot ON slot.id = pick.result_id
    ORDER BY pick.turn
""").columns(params=JSON, own=JSON, gpu_ids=JSON, tes=JSON)

CLAIM_MAX = 256  # executions one claim may ask for (a runner's free slots; more are asked for as this many)
RACE_TRIES = 10  # statements tried when a race lost a slot; the later ones for one execution at a time


def claim(session, runner, lease_seconds, max_memory=None, max_cpus=None, labels=None, gpu_ids=None, held=None):
    """Give ``runner`` the next execution to run (a ``WorkItem``, sent as a dict), or None (``claim_batch``
    of one: the reply of ``claim_execution``, which a runner from before batch claims still calls)."""
    works = claim_batch(session, runner, lease_seconds, 1, max_memory, max_cpus, labels, gpu_ids, held)
    return works[0] if works else None


def claim_batch(session, runner, lease_seconds, count, max_memory=None, max_cpus=None, labels=None,
                gpu_ids=None, held=None):
    """Give ``runner`` up to ``count`` executions to run (``WorkItem``s, sent as dicts; none: an empty list).

    The team furthest below its fair share first, then highest priority, then
    oldest (fairshare.py), as ``count`` claims in turn would take them; never
    more than a result's ``parallelism`` held at once, nor more than its
    team's ``max_running``; with ``max_memory`` (bytes) or ``max_cpus``, only
    executions whose run asks for no more (the runner's ceilings).  Only
    those whose run's ``constraints`` ``labels`` contain (no labels: only runs without
    constraints), and whose ``gpus`` are among the runner's free ``gpu_ids`` (the first
    of them are given it: ``gpu_ids`` in the work); a runner that sends free
    GPU ids is given one execution a claim, so that two never get the same
    device.  ``held``: the ids of the executions the runner runs now, as it
    says (fair share's ``ended``).  The runner holds each under a lease it
    must renew by heartbeat.  One statement and a commit: every runner woken
    by a RUN asks at once, and the scheduler answers them all in turn.
    """
    count = claim_count(count)
    gpus = _gpus(gpu_ids)
    if gpus:
        count = 1
    for attempt in range(RACE_TRIES):
        if attempt >= RACE_TRIES // 2:  # lost races again and again (a parallelism or max_running at its edge)
            count = 1
        stamp = now()
        rows = session.execute(CLAIM_SQL, {"now": stamp, "runner": runner, "k": count,
                                           "lease_seconds": float(lease_seconds),
                                           "max_memory": _ceiling(max_memory, int),
                                           "max_cpus": _ceiling(max_cpus, float),
                                           "labels": json.dumps(_labels(labels)), "gpu_ids": gpus,
                                           "free_gpus": len(gpus), "held": _held(held)}).all()
        if not rows:
            session.rollback()
            return []
        if any(row.taken is None for row in rows):  # a result's or team's last slot, or a cancel, came first
            session.rollback()
            continue
        session.commit()
        return [_work(row, lease_seconds) for row in rows]
    session.rollback()
    return []


def _work(row, lease_seconds):
    """A claimed row as the runner's work (its secrets' references apart: ``SECRET_REFS``)."""
    work = wire(WorkItem.of(row.taken, row.result_id, row.task_id, row.index, row.attempt, row.image,
                            row.params, lease_seconds, own=row.own, gpu_ids=row.gpu_ids,
                            team=row.team, submitted_by=row.submitted_by,  # for the runner's events
                            **({"tes": _tes_work(row.tes)} if row.tes else {})))
    refs = (row.params or {}).get("secret_env")
    if refs:  # the run's references: opened, or the attempt ended, before the claim is answered
        work[SECRET_REFS] = {"team": row.team, "env": refs}
    return work


def claim_count(count):
    """How many executions a claim asks for, as sent: 1 to ``CLAIM_MAX`` (anything else: 1)."""
    if isinstance(count, bool) or not isinstance(count, int):
        return 1
    return min(max(count, 1), CLAIM_MAX)


def _tes_work(tes):
    """What a runner needs of a TES task (services/runner/tes.py): its document and each executor's image."""
    return {"task": tes["task"], "images": tes["images"]}


def sized_active_results(session):
    """(id, params) of the queued or running runs that ask for memory or cpus."""
    rows = session.execute(select(Result.id, Result.params).where(
        Result.status.in_([st.QUEUED, st.RUNNING]), Result.cancel_requested.is_(False),
        or_(Result.memory_bytes.is_not(None), Result.cpus.is_not(None)))).all()
    session.commit()
    return [(row.id, row.params) for row in rows]


def note_waiting(session, result_id, reason):
    """Say why a run's queued, unclaimed executions wait (those that say nothing else yet)."""
    session.execute(update(_details).where(
        _details.c.result_id == result_id, _details.c.status == st.QUEUED, _details.c.runner.is_(None),
        _details.c.reason.is_(None)).values(reason=reason))
    session.commit()


def _labels(labels):
    """A runner's labels as sent, strings only (anything else: none)."""
    if not isinstance(labels, dict):
        return {}
    return {key: value for key, value in labels.items() if isinstance(key, str) and isinstance(value, str)}


HELD_MAX = 10000  # ids a runner may say it runs, read (more: not told)


def _held(held):
    """The detail ids a runner says it runs, as sent (None: not told, or not a list of ids)."""
    if not isinstance(held, (list, tuple)) or len(held) > HELD_MAX:
        return None
    return [i for i in held if isinstance(i, str) and 0 < len(i) <= 32]


def _gpus(gpu_ids):
    """A runner's free GPU ids as sent, strings, each once (anything else: none)."""
    if not isinstance(gpu_ids, (list, tuple)):
        return []
    ids = dict.fromkeys(str(gpu) for gpu in gpu_ids[:GPU_IDS_MAX]
                        if isinstance(gpu, (str, int)) and not isinstance(gpu, bool))
    return list(ids)


def _ceiling(value, kind):
    """A runner's ceiling as sent (None: none), as a number; anything else is ignored."""
    if value is None or isinstance(value, bool):
        return None
    try:
        value = kind(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return min(max(value, 0), 2 ** 62) if value == value else None  # bigint-sized; NaN: none


def renew_leases(session, runner, detail_ids, lease_seconds):
    """Extend ``runner``'s leases; return the ids it must stop (no longer its to run)."""
    if not detail_ids:
        return []
    cancelled_results = select(Result.id).where(Result.cancel_requested.is_(True))
    held = session.scalars(
        update(Detail).where(
            Detail.id.in_(detail_ids), Detail.runner == runner,
            Detail.status.in_([st.QUEUED, st.RUNNING]),
            Detail.cancel_requested.is_(False), Detail.result_id.not_in(cancelled_results))
        .values(lease_expires_at=DB_NOW + float(lease_seconds)).returning(Detail.id)).all()
    session.commit()
    return sorted(set(detail_ids) - set(held))


def expired_leases(session, limit=500):
    return session.execute(
        select(Detail.id, Detail.attempt, Detail.runner).where(
            Detail.runner.is_not(None), Detail.status.in_([st.QUEUED, st.RUNNING]),
            Detail.lease_expires_at < DB_NOW).limit(limit)).all()
