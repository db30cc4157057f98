"""Firing: a due tick becomes a run, once, whatever the number of scheduler replicas.

Every ``SCHEDULE_INTERVAL`` seconds each scheduler takes the due schedules one
at a time with ``FOR UPDATE SKIP LOCKED`` (a replica never waits for, nor
takes, a schedule another is firing), and in ONE transaction: records the
fire (``schedule_fires``, UNIQUE (schedule_id, scheduled_for) for ticks),
moves ``next_run_at`` past now, and makes the run (the RUN's own code:
``executions.create_result``), whose ``schedule_id`` names the schedule.  A
replica killed before the commit leaves nothing: the tick is still due and
the next replica fires it; after the commit, the tick is past for everyone.
Due is on the database's clock (``DB_NOW``), shared by every replica.

* **Misfires** (the schedulers were down across ticks): only the latest due
  tick runs, once (the others are counted ``missed``); with
  ``starting_deadline_seconds``, not even that one if it is further in the past
  than that (the fire is MISSED), as Kubernetes CronJob's ``startingDeadlineSeconds``.
* **Task**: it must be READY in the scheduler's copy (``known_tasks``, kept from
  the registry's events; the scheduler never calls the registry), held
  ``FOR SHARE`` until the commit like a RUN's, so a task's DELETE cannot slip
  in; and the ``run`` must pass today's RUN checks (ceilings, webhook secret).
  Else the fire is FAILED with the reason, as it is when the schedule's team is at its
  ``max_queued`` (a run now: 429); the run is the schedule's team's.
* **Concurrency**: ``Forbid`` records a tick SKIPPED while the previous run is
  unfinished; ``Replace`` marks the previous run cancelled in the same
  transaction (``executions.mark_cancelled``; its queued executions end after
  the commit, its running ones are stopped by their runners) and starts the new.

Lock order: the schedule row, its task's ``known_tasks`` row, its team's row and queue lock
(executions/quotas.py), then results.
"""
import logging
import uuid
from typing import NamedTuple

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from services.scheduler import executions as ex
from services.scheduler import secrets
from services.scheduler.executions import quotas
from services.scheduler.executions.state import DB_NOW, db_now
from services.scheduler.models import KnownTask, Result, Schedule, ScheduleFire
from services.scheduler.schedules import cron, store
from shared import audit
from shared import statuses as st
from shared.errors import Conflict, TooManyRequests, ValidationError
from shared.handlers import is_transient
from shared.timeutil import now

log = logging.getLogger(__name__)

DUE_BATCH = 50            # schedules fired per timer round, at most
INLINE_FAN_OUT = 100      # as services/scheduler/service.py: a small run gets its executions with it


class Fire(NamedTuple):
    """What a fire did, for the events, metrics and wake-ups sent after its commit."""

    schedule_id: str
    task_id: str
    outcome: str
    scheduled_for: float
    manual: bool = False
    missed: int = 0
    reason: str | None = None
    result: Result | None = None
    params: dict | None = None
    inline: bool = False
    replaced: str | None = None
    replaced_unmade: int = 0  # executions of the run replaced not made yet, ended CANCELLED by the fire
    team: str | None = None          # the schedule's (its runs' too), for the events
    submitted_by: str | None = None  # the schedule's maker; a run now's: who asked


def _due(skip):
    stmt = select(Schedule).where(~Schedule.suspend, Schedule.next_run_at.is_not(None),
                                  Schedule.next_run_at <= DB_NOW)
    if skip:
        stmt = stmt.where(Schedule.id.not_in(list(skip)))
    return stmt.order_by(Schedule.next_run_at).limit(1).with_for_update(skip_locked=True)


def fire_due(session, settings, webhook_sender):
    """Fire the schedules due now, each in a transaction of its own; what each fire did."""
    fired, broken = [], set()
    for _ in range(DUE_BATCH):
        schedule = session.scalars(_due(broken)).first()
        if schedule is None:
            session.rollback()
            break
        try:
            outcome = tick(session, schedule, settings, webhook_sender)
        except IntegrityError:  # the database says this tick fired already: nothing to do
            session.rollback()
            log.warning("a tick of schedule %s fired already", schedule.id)
            continue
        except Exception as exc:  # noqa: BLE001 -- one schedule's fault stops no other's tick
            if is_transient(exc):
                raise
            session.rollback()
            broken.add(schedule.id)
            log.exception("schedule %s could not fire", schedule.id)
            continue
        if outcome is not None:
            fired.append(outcome)
    return fired


def tick(session, schedule, settings, webhook_sender):
    """Fire ``schedule`` (locked, due) for its latest due tick; committed."""
    stamp = db_now(session)
    tz = cron.stored_zone(schedule.timezone)
    latest, passed = cron.due(schedule.cron, tz, schedule.next_run_at, stamp)
    schedule.next_run_at = cron.next_tick(schedule.cron, tz, stamp)
    schedule.n_missed += passed
    deadline = schedule.starting_deadline_seconds
    if deadline is not None and stamp - latest > deadline:
        schedule.n_missed += 1
        return _record(session, schedule, latest, stamp, "MISSED", missed=passed, reason=(
            f"the tick was found {stamp - latest:.0f}s late, past starting_deadline_seconds {deadline} "
            f"(the schedulers were down); {passed} earlier tick(s) missed too"))
    return start(session, schedule, latest, stamp, settings, webhook_sender, missed=passed)


def run_now(session, schedule_id, settings, webhook_sender, caller=None):
    """A "run now": fired at once under the schedule's concurrency policy; 409 when it cannot start.
    The run is the schedule's team's, made by ``caller`` (404 for a schedule of a team it does not cover)."""
    schedule = store.get(session, schedule_id, lock=True, caller=caller)
    return start(session, schedule, None, db_now(session), settings, webhook_sender, manual=True,
                 submitted_by=caller.principal if caller is not None else None, caller=caller)


def _refusal(session, schedule, settings, webhook_sender):
    """(the task, (the run's parameters, what each execution is given)), or (None, why no run can start)."""
    task = session.execute(select(KnownTask).where(KnownTask.task_id == schedule.task_id)
                           .with_for_update(read=True)).scalar_one_or_none()
    if task is None or task.deleted:
        return None, f"task {schedule.task_id} does not exist any more"
    if task.status != st.READY:
        return None, f"task {schedule.task_id} is {task.status or 'not known yet'}; only a READY task can be run"
    try:
        params, spread = store.check_run_parts(schedule.run, settings, schedule.task_id)
        webhook_sender.require_configured(params)
        secrets.require(session, schedule.team, params.get("secret_env"))  # in the schedule's team, now
    except (ValidationError, Conflict) as exc:
        return None, f"the RUN was refused: {exc}"
    return task, (params, spread)


def _over_quota(session, schedule, times):
    """None when the schedule's team may queue ``times`` more executions now (its run is the team's;
    admitted until the commit), else the refusal (executions/quotas.py)."""
    try:
        quotas.admit(session, schedule.team, times)
    except (Conflict, TooManyRequests) as exc:
        return exc
    return None


def start(session, schedule, scheduled_for, stamp, settings, webhook_sender, missed=0, manual=False,
          submitted_by=None, caller=None):
    """Start the schedule's run for tick ``scheduled_for`` (a run now: None), or record why not; committed.
    The run is the schedule's team's, made by ``submitted_by`` (None: the schedule's maker).

    A run started is in the audit log: ``schedule.run`` by ``caller`` (run now), ``schedule.fire`` by
    ``audit.SYSTEM`` (a tick); a run replaced, ``result.cancel`` by ``audit.SYSTEM``.
    """
    submitted_by = submitted_by or schedule.submitted_by
    tick_at = stamp if manual else scheduled_for
    task, checked = _refusal(session, schedule, settings, webhook_sender)
    if task is None:  # ``checked`` says why
        if manual:
            session.rollback()
            raise Conflict(checked, "task_id")
        schedule.n_failed += 1
        return _record(session, schedule, tick_at, stamp, "FAILED", missed=missed, reason=checked)
    previous = session.get(Result, schedule.last_result_id) if schedule.last_result_id else None
    replaced, unmade = None, 0
    if previous is not None and previous.status not in st.TERMINAL:
        if schedule.concurrency_policy == "Forbid":
            reason = f"the previous run {previous.id} is still {previous.status} (concurrency_policy Forbid)"
            if previous.unschedulable:  # it may wait long: say why, each skipped tick
                reason += f"; it waits for a runner: {previous.unschedulable}"
            if manual:
                session.rollback()
                raise Conflict(reason, "concurrency_policy")
            schedule.n_skipped += 1
            return _record(session, schedule, tick_at, stamp, "SKIPPED", missed=missed, reason=reason)
    refused = _over_quota(session, schedule, checked[0]["times"])
    if refused is not None:
        if manual:
            session.rollback()
            raise refused
        schedule.n_failed += 1
        return _record(session, schedule, tick_at, stamp, "FAILED", missed=missed,
                       reason=f"the RUN was refused: {refused}")
    if previous is not None and previous.status not in st.TERMINAL:
        # one cancelled already (by its user, or stopped by its failure policy) is let end as it is
        if schedule.concurrency_policy == "Replace" and not previous.cancel_requested:
            _, unmade = ex.mark_cancelled(session, previous.id, now())  # the host's time, as a CANCEL's
            replaced = previous.id
            audit.record(session, audit.SYSTEM, "result.cancel", "result", previous.id, previous.team,
                         {"task_id": previous.task_id, "schedule_id": schedule.id, "concurrency_policy": "Replace"},
                         outcome=previous.status)
    params, spread = checked
    result_id = uuid.uuid4().hex
    _record(session, schedule, tick_at, stamp, "FIRED", missed=missed, result_id=result_id, manual=manual,
            commit=False)
    audit.record(session, caller if manual else audit.SYSTEM, "schedule.run" if manual else "schedule.fire",
                 "schedule", schedule.id, schedule.team,
                 {"result_id": result_id, "task_id": schedule.task_id, "scheduled_for": tick_at, "missed": missed})
    schedule.last_result_id = result_id
    schedule.n_fired += 1
    inline = params["times"] <= INLINE_FAN_OUT
    # items or a matrix: each execution its own parameters, as a RUN's (services/scheduler/service.py run_task)
    result, _ = ex.create_result(session, task.task_id, task.name, task.digest, params, with_details=inline,
                                 spread=spread, schedule_id=schedule.id, result_id=result_id,
                                 team=schedule.team, submitted_by=submitted_by)  # commits it all
    return Fire(schedule.id, schedule.task_id, "FIRED", tick_at, manual, missed, None, result, params, inline,
                replaced, unmade, schedule.team, submitted_by)


def _record(session, schedule, scheduled_for, stamp, outcome, missed=0, reason=None, result_id=None,
            manual=False, commit=True):
    session.add(ScheduleFire(schedule_id=schedule.id, scheduled_for=scheduled_for, fired_at=stamp, manual=manual,
                             outcome=outcome, result_id=result_id, missed=missed, reason=reason))
    schedule.last_fire_at = stamp
    session.flush()  # a tick fired already meets the unique index here (IntegrityError)
    kept = select(ScheduleFire.id).where(ScheduleFire.schedule_id == schedule.id) \
        .order_by(ScheduleFire.id.desc()).offset(store.FIRES_KEPT).limit(1).scalar_subquery()
    session.execute(delete(ScheduleFire).where(ScheduleFire.schedule_id == schedule.id, ScheduleFire.id <= kept))
    if commit:
        session.commit()
    return Fire(schedule.id, schedule.task_id, outcome, scheduled_for, manual, missed, reason,
                team=schedule.team, submitted_by=schedule.submitted_by)
