"""The runners: who is live with which labels and GPUs, ``GET /runner/``, and runs no live runner can take.

A runner sends what it is (``RunnerInfo``: labels, slots, busy, GPU ids, engine) with each
heartbeat and claim; its claim also sends its labels and free GPU ids, and is given only an
execution whose run's ``constraints`` its labels contain and whose ``gpus`` it has free
(``executions.claims``).  Each scheduler replica writes what it hears to the ``runners`` table,
at most every ``WRITE_EVERY`` seconds per runner (at once when something other than its busy
counts changed), so that any replica answers the list.  A runner not heard from for a lease is
LOST; its row is deleted ``FORGET_LEASES`` leases later.

``place``: a run with constraints or GPUs that no LIVE runner can take gets ``unschedulable``
(why), cleared once one can (and by the claim that takes one of its executions).  It stays
QUEUED: a runner that matches starts it when it appears.  Asked for a new RUN at once, for every
such active run by the sweep, and when a runner appears or changes.  So does a run of a team whose
``max_running`` is 0 (no claim takes its work: ``held_back`` says so): ``hold_teams``, by the sweep,
one UPDATE a team (not by the team's PATCH: a team of 10,000 queued runs would keep it past the RPC
timeout), the note gone by the next sweep after the quota is raised.
"""
import logging
import re
import time

from eventlet.semaphore import Semaphore
from nameko.extensions import DependencyProvider
from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert

from services.scheduler import executions as ex
from services.scheduler.holdings import installation_id
from services.scheduler.idlerunners import free_after_claim
from services.scheduler.models import Result, Runner, Team
from shared import pages
from shared import statuses as st
from shared.messages import RunnerInfo, received, wire
from shared.principals import ALL_TEAMS_ROLES, require_role
from shared.rpc import rpc
from shared.settings import settings_of
from shared.timeutil import now
from stevedore_jobs import contract
from stevedore_jobs.contract.checks import Invalid
from stevedore_jobs.contract.fleet import RUNNER_ID_PATTERN, check_labels, describe, parse_gpus

log = logging.getLogger(__name__)

WRITE_EVERY = 5.0     # seconds between writes of one runner's row (at most a quarter of a lease)
FORGET_LEASES = 10    # a LOST runner's row is deleted after this many leases (at least FORGET_MIN seconds)
FORGET_MIN = 60.0
ACTIVE = [st.QUEUED, st.RUNNING]
CLAIMS_IN_TURN = Semaphore(1)
COUNT_MAX = 100000    # a runner's slots, busy or free GPUs said beyond this: its description is dropped
CLAIM_TRIES = 10      # attempts ended in a row for a missing secret before a runner is answered None


class Heard:
    """What this replica last wrote of each runner, to write again only when due (an injectable clock)."""

    def __init__(self, every, clock=time.monotonic):
        self.every = every
        self.clock = clock
        self.written = {}  # runner -> (when, what was written but its busy counts)

    def due(self, runner, info):
        """Whether ``info`` should be written now, and whether the runner is new or changed."""
        stamp = self.clock()
        key = (tuple(sorted(info.labels.items())), info.slots, tuple(info.gpus), info.engine)
        last = self.written.get(runner)
        changed = last is None or last[1] != key
        if not changed and stamp - last[0] < self.every:
            return False, False
        self.written[runner] = (stamp, key)
        if len(self.written) > 100000:  # bounded: the oldest forgotten (written again when heard)
            self.written.pop(next(iter(self.written)))
        return True, changed


class HeardProvider(DependencyProvider):
    def setup(self):
        lease = settings_of(self.container).lease_seconds
        self.heard = Heard(every=min(WRITE_EVERY, lease / 4))

    def get_dependency(self, worker_ctx):
        return self.heard


def info_of(runner, info):
    """A runner's ``RunnerInfo`` as it sent it (None: it sent none, or none that can be read)."""
    if info is None:
        return None
    info = received(RunnerInfo, info, f"runner {runner}'s description")
    if info is None:
        return None
    if not isinstance(runner, str) or not re.fullmatch(RUNNER_ID_PATTERN[1:-1], runner):
        log.warning("runner %.200r's description dropped: its id cannot be listed (RUNNER_ID)", runner)
        return None
    # not trusted blindly: what the runner list shows and ``place`` reads keeps a runner's own rules
    # (RUNNER_LABELS, RUNNER_GPUS: shared/settings.py), so no runner can make the list big or odd
    try:
        check_labels(info.labels, "labels")
        if len(info.gpus) != len(parse_gpus(",".join(info.gpus), "gpus")):  # "" or "0,1" as one id
            raise Invalid("must be device ids, each once", "gpus")
        for field in ("slots", "busy", "gpus_free"):
            count = getattr(info, field)
            if count is not None and not 0 <= count <= COUNT_MAX:
                raise Invalid(f"must be from 0 to {COUNT_MAX}", field)
    except Invalid as exc:
        log.warning("runner %.200r's description dropped: %s: %s", runner, exc.field, exc.message)
        return None
    return info


def write(session, runner, info):
    """Upsert the runner's row with ``info`` (a ``RunnerInfo``), heard now."""
    stamp = now()
    values = dict(labels=info.labels, slots=info.slots, busy=info.busy, gpus=list(info.gpus),
                  gpus_free=info.gpus_free, engine=(info.engine or None) and info.engine[:200],
                  last_heartbeat=stamp)
    session.execute(insert(Runner).values(id=runner[:200], first_seen=stamp, **values)
                    .on_conflict_do_update(index_elements=[Runner.id], set_=values))
    session.commit()


def live_runners(session, lease):
    """(labels, number of GPUs) of each runner heard from within ``lease`` seconds."""
    rows = session.execute(select(Runner.labels, Runner.gpus).where(Runner.last_heartbeat >= now() - lease)).all()
    session.commit()
    return [(row.labels or {}, len(row.gpus or [])) for row in rows]


def why_not(constraints, gpus, live):
    """Why none of the ``live`` runners can take a run asking ``constraints`` and ``gpus``, or None."""
    constraints, gpus = constraints or {}, gpus or 0
    if not constraints and not gpus:
        return None  # any runner takes it (one with a note left by a quota now lifted)
    if any(all(labels.get(k) == v for k, v in constraints.items()) and count >= gpus for labels, count in live):
        return None
    wants = []
    if constraints:
        wants.append(f"the labels {describe(constraints)}")
    if gpus:
        wants.append(f"{gpus} GPU{'s' if gpus > 1 else ''}")
    if not live:
        return f"no live runner: it waits for one with {' and '.join(wants)}"
    return (f"no live runner has {' and '.join(wants)} (of {len(live)} live); it starts once one that does "
            "asks for work")


def held_back(team):
    """Why no run of ``team`` starts while its ``max_running`` is 0."""
    return (f"its team {team} has max_running 0: no execution of the team starts until an admin raises it "
            f"(PATCH /team/{team}/)")


def place(session, lease, result_ids=None):
    """Set or clear ``unschedulable`` on the active runs that ask for labels or GPUs (through
    ``ix_results_placed``); such a run of a team whose ``max_running`` is 0 says that instead.  Answers how
    many changed.  The other runs of such a team: ``hold_teams``."""
    held_teams = select(Team.name).where(Team.max_running == 0)
    query = select(Result.id, Result.constraints, Result.gpus, Result.unschedulable, Result.team).where(
        or_(Result.constraints.is_not(None), Result.gpus > 0),
        Result.status.in_(ACTIVE), Result.cancel_requested.is_(False))
    if result_ids is not None:
        query = query.where(Result.id.in_(list(result_ids)))
    rows = session.execute(query).all()
    held = set(session.scalars(held_teams)) if rows else set()
    session.commit()
    if not rows:
        return 0
    live = live_runners(session, lease)
    changed = 0
    for row in rows:
        reason = held_back(row.team) if row.team in held else why_not(row.constraints, row.gpus, live)
        if reason != row.unschedulable:
            # only while still active: a run that ended meanwhile keeps what it had
            session.execute(update(Result).where(
                Result.id == row.id, Result.status.in_(ACTIVE)).values(unschedulable=reason))
            changed += 1
    session.commit()
    return changed


def hold_teams(session):
    """Each active run of a team whose ``max_running`` is 0 says so in ``unschedulable``, one UPDATE a team
    (through ``ix_results_team_active``); the note goes from the runs of a team no longer held that ask no
    labels nor GPUs (through ``ix_results_noted``; ``place`` says again why the others wait).  Answers how
    many runs changed."""
    held = list(session.scalars(select(Team.name).where(Team.max_running == 0)))
    changed = 0
    for team in held:
        why = held_back(team)
        changed += session.execute(update(Result).where(
            Result.team == team, Result.status.in_(ACTIVE), Result.cancel_requested.is_(False),
            Result.unschedulable.is_distinct_from(why)).values(unschedulable=why)).rowcount
        session.commit()  # a team at a time: no long lock on many teams' runs
    cleared = update(Result).where(
        Result.unschedulable.is_not(None), Result.status.in_(ACTIVE),
        Result.constraints.is_(None), func.coalesce(Result.gpus, 0) == 0)
    if held:
        cleared = cleared.where(Result.team.not_in(held))
    changed += session.execute(cleared.values(unschedulable=None)).rowcount
    session.commit()
    return changed


def forget_lost(session, lease):
    """Delete the rows of runners silent for ``FORGET_LEASES`` leases."""
    gone = session.execute(delete(Runner).where(
        Runner.last_heartbeat < now() - max(FORGET_LEASES * lease, FORGET_MIN))).rowcount
    session.commit()
    return gone


def list_runners(session, lease, limit=100, after=None, status=None):
    """The runners by id, as ``GET /runner/`` shows them (``contract.Runner``)."""
    query = select(Runner).order_by(Runner.id).limit(limit)
    if after is not None:
        query = query.where(Runner.id > after)
    live_since = now() - lease
    if status == "LIVE":
        query = query.where(Runner.last_heartbeat >= live_since)
    elif status == "LOST":
        query = query.where(Runner.last_heartbeat < live_since)
    rows = session.scalars(query).all()
    session.commit()
    return [wire(contract.Runner(
        runner_id=row.id, id=row.id, status="LIVE" if row.last_heartbeat >= live_since else "LOST",
        labels=row.labels or {}, slots=row.slots, busy=row.busy,
        free=None if row.slots is None or row.busy is None else max(row.slots - row.busy, 0),
        gpus=[str(gpu) for gpu in row.gpus or []], gpus_free=row.gpus_free, engine=row.engine,
        first_seen=row.first_seen, last_heartbeat=row.last_heartbeat)) for row in rows]


def placed(params):
    """Whether a run asks for labels or GPUs, so that not every runner may take it."""
    params = params or {}
    return bool(params.get("constraints") or params.get("gpus"))


class FleetMixin:
    """Mixed into ``SchedulerService`` (which provides ``db``, ``heard``, ``idle``, ``runner_sizes``,
    ``metrics`` and ``_lease``): what runners ask, and the runner list."""

    @rpc
    def claim_executions(self, runner, count=1, max_memory=None, max_cpus=None, labels=None, gpu_ids=None,
                         info=None):
        """Up to ``count`` executions for ``runner`` (its free slots), in one call: a list, empty when there
        is nothing to do; only what fits its ceilings when given.

        ``max_memory`` (bytes) and ``max_cpus``: the most this runner can give one
        execution (runners from before ceilings send neither and take anything).
        ``labels`` and ``gpu_ids`` (free ones): only runs whose constraints and gpus they
        meet (with free GPU ids, one execution a call); ``info``: what the runner is, for the
        runner list (services/scheduler/fleet.py), with ``held``, the ids it runs now.
        """
        return self._claim(runner, count, max_memory, max_cpus, labels, gpu_ids, info)

    @rpc
    def claim_execution(self, runner, max_memory=None, max_cpus=None, labels=None, gpu_ids=None, info=None):
        """The next execution for ``runner``, or None: ``claim_executions`` of one, for a runner from before
        batch claims (a rolling upgrade: schedulers first, then runners; nothing of ours calls it since)."""
        works = self._claim(runner, 1, max_memory, max_cpus, labels, gpu_ids, info)
        return works[0] if works else None

    def _claim(self, runner, count, max_memory, max_cpus, labels, gpu_ids, info):
        held = info.get("held") if isinstance(info, dict) else None
        works = []
        # one claim at a time in this process: a RUN wakes several idle runners at once
        # (all of them for a big one), and interleaved they all finish late; in turn,
        # the first is answered first
        for _ in range(CLAIM_TRIES):  # an attempt whose secret is gone ends ERROR: another is claimed instead
            wanted = count - len(works)
            with CLAIMS_IN_TURN:
                claimed = ex.claim_batch(self.db.session, runner, self._lease(), wanted, max_memory, max_cpus,
                                         labels, gpu_ids, held=held)
            # services/scheduler/secrets.py (an execution whose secret cannot be opened has ended ERROR)
            opened = [work for work in claimed if self._open_secrets(runner, work)]
            works.extend(opened)
            if len(opened) == len(claimed) or len(claimed) < wanted:
                break
            if isinstance(held, list):  # the ones given meanwhile are held, not ended (fair share's ``ended``)
                held = held + [work["detail_id"] for work in opened]
        if works:  # the runner labels the container with it (services/runner/reconcile.py)
            installation = installation_id(self.db.session)
            for work in works:
                work["installation"] = installation
        self.runner_sizes.claimed(runner, max_memory, max_cpus)
        described = self._runner_heard(runner, info)
        # its free slots, to wake for new work: those that asked and got nothing and those waiting for their
        # poll tick; none when its slots are all busy, claiming ahead (services/runner/ahead.py)
        if isinstance(info, dict) and info.get("ahead") is True:
            self.idle.claimed(runner, 0)
        else:
            slots, busy = (described.slots, described.busy) if described is not None else (None, None)
            self.idle.claimed(runner, free_after_claim(ex.claim_count(count), len(works), slots, busy))
        self.metrics.claimed(works)
        return works

    @rpc
    def heartbeat(self, runner, detail_ids, info=None):
        """Renew a runner's leases; answers the ids it must stop running.  ``info``: see claim_execution."""
        self.runner_sizes.heartbeat(runner)
        described = self._runner_heard(runner, info)
        if described is not None and described.slots is not None and described.busy is not None:
            self.idle.heard(runner, described.slots - described.busy)
        return ex.renew_leases(self.db.session, runner, detail_ids, self._lease())

    @rpc
    def list_runners(self, limit=100, after=None, status=None, caller=None, paged=False):
        """The runners (of no team): for admins and operators, checked here too."""
        require_role(caller, ALL_TEAMS_ROLES, "the runner list")
        rows = list_runners(self.db.session, self._lease(), pages.fetch_limit(limit, paged), after, status)
        return pages.reply(rows, limit, self.settings.list_page_bytes, paged)

    def _runner_heard(self, runner, info):
        """Note what a runner told of itself (a heartbeat's or a claim's ``info``); never fails the call.
        Answers its ``RunnerInfo`` (None: it sent none that can be read)."""
        info = info_of(runner, info)
        if info is None:
            return None
        due, changed = self.heard.due(runner, info)
        if not due:
            return info
        try:
            write(self.db.session, runner, info)
            if changed:  # a runner new or changed: runs that waited for it may be placed now
                place(self.db.session, self._lease())
        except Exception:  # noqa: BLE001 -- the runner list is a view; the claim or heartbeat goes on
            self.db.session.rollback()
            log.exception("could not note runner %s", runner)
        return info

    def _place(self, result_ids=None):
        try:
            place(self.db.session, self._lease(), result_ids)
        except Exception:  # noqa: BLE001 -- a hint; the sweep says it again
            self.db.session.rollback()
            log.exception("could not say which runs no runner can take")

    def _sweep_fleet(self):
        self._place()
        hold_teams(self.db.session)
        gone = forget_lost(self.db.session, self._lease())
        if gone:
            log.info("forgot %s runners silent for %s leases", gone, FORGET_LEASES)
