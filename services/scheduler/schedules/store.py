"""Schedules kept: made, read, listed, changed (suspend, resume) and deleted; as the API shows them.

A schedule is made only for a task the scheduler knows (the gateway hands on
the registry's ``task_facts``) and that was not deleted; its task's row in
``known_tasks`` is held ``FOR SHARE`` until the commit, so a task's DELETE,
which counts the task's schedules under ``FOR UPDATE`` (``knowntasks.close``),
never misses one.  Lock order: the ``known_tasks`` row, then the schedule row.
"""
import uuid

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError

from services.scheduler import knowntasks
from services.scheduler.models import KnownTask, Schedule, ScheduleFire
from services.scheduler.schedules import cron
from shared import audit, validation
from shared.db import newest_first, team_scoped
from shared.errors import Conflict, NotFound, ValidationError
from shared.messages import wire
from shared.principals import CONFIGURED, Caller
from shared.timeutil import now
from stevedore_jobs import contract
from stevedore_jobs.contract import schedule as sc

FIRES_KEPT = 100  # fires kept per schedule, newest; older ones are deleted as new ones come


def check_run(run, settings, task_id):
    """A schedule's ``run`` checked as a RUN of this installation (400 naming ``run.<field>``), for the
    schedule's task ``task_id`` (a ``run.task_id`` naming another is a 409, as a RUN's ``task_id``)."""
    return check_run_parts(run, settings, task_id)[0]


def check_run_parts(run, settings, task_id):
    """``check_run``, and what each execution is given (its ``items`` or ``matrix``: the spread a RUN's
    ``validation.run_parts`` gives), or None."""
    try:
        parts = sc.schedule_run_parts(run, validation.limits(settings.run_max_times, *settings.ceilings))
    except sc.Invalid as exc:
        raise ValidationError(exc.message, exc.field) from None
    if run.get("task_id") is not None and run["task_id"] != task_id:
        raise Conflict("is another task than the schedule's", "run.task_id")
    return parts


def _required(require, team, params):
    """``require(team, params)``, its refusal naming the field in the schedule's body (``run.secret_env.X``)."""
    try:
        require(team, params)
    except ValidationError as exc:
        raise ValidationError(exc.message, f"run.{exc.field}") from None


def _body(model, body):
    validation.check_strings(body)
    return validation.parse(model, body)


def _by_key(session, key, task_id, team):
    """The schedule an earlier POST with this Idempotency-Key made in ``team``, or None (409: another task's)."""
    earlier = session.scalars(select(Schedule).where(Schedule.team == team, Schedule.idempotency_key == key)).first()
    if earlier is not None and earlier.task_id != task_id:
        raise Conflict("this Idempotency-Key was used for a schedule of another task", "Idempotency-Key")
    return earlier


def create(session, body, settings, webhook_sender, facts=None, idempotency_key=None, caller=CONFIGURED,
           require=None):
    """A new schedule of its task's team (or, with an Idempotency-Key used before in that team, the one
    it made: (schedule, created)), made by ``caller``.  The gateway found its task visible to ``caller``
    (``facts``: the registry's ``task_facts``, which name the task's team: ``knowntasks.team_of``).
    ``require(team, params)``: refuses a run whose secrets the team lacks (services/scheduler/secrets.py)."""
    caller = Caller.from_dict(caller)
    new = _body(contract.NewSchedule, body)
    team = knowntasks.team_of(facts, new.task_id, caller)
    if idempotency_key:
        earlier = _by_key(session, idempotency_key, new.task_id, team)
        if earlier is not None:
            return earlier, False
    expression = cron.check(new.cron, new.timezone, settings.schedule_allow_seconds)
    params = check_run(new.run, settings, new.task_id)
    webhook_sender.require_configured(params)
    if require is not None:
        _required(require, team, params)
    if facts is not None:
        knowntasks.learn_facts(session, new.task_id, facts)
    task = session.execute(select(KnownTask).where(KnownTask.task_id == new.task_id)
                           .with_for_update(read=True)).scalar_one_or_none()
    if task is None or task.deleted:
        session.rollback()
        raise NotFound(f"no task {new.task_id!r}", "task_id")
    stamp = now()
    schedule = Schedule(
        id=uuid.uuid4().hex, task_id=new.task_id, name=new.name, cron=expression, timezone=new.timezone,
        concurrency_policy=new.concurrency_policy, suspend=new.suspend,
        starting_deadline_seconds=new.starting_deadline_seconds, run=new.run, created_at=stamp,
        updated_at=stamp, n_fired=0, n_skipped=0, n_missed=0, n_failed=0, idempotency_key=idempotency_key,
        next_run_at=None if new.suspend else cron.next_tick(expression, cron.zone(new.timezone), stamp),
        team=team, submitted_by=caller.principal)
    session.add(schedule)
    try:  # its audit row's insert flushes it: the same key sent twice at once may meet the index there
        audit.record(session, caller, "schedule.create", "schedule", schedule.id, schedule.team,
                     {"task_id": new.task_id, "name": new.name, "cron": expression, "timezone": new.timezone,
                      "suspend": new.suspend, "concurrency_policy": new.concurrency_policy})
        session.commit()
    except IntegrityError:  # the same key sent twice at once: the other one made it
        session.rollback()
        earlier = _by_key(session, idempotency_key, new.task_id, team) if idempotency_key else None
        if earlier is None:
            raise
        return earlier, False
    return schedule, True


def get(session, schedule_id, lock=False, caller=None):
    """The schedule; NotFound for none, or (``caller`` given) one of a team it does not cover."""
    if not isinstance(schedule_id, str) or not 0 < len(schedule_id) <= 32:
        raise NotFound(f"no schedule {schedule_id!r}", "schedule_id")
    schedule = session.get(Schedule, schedule_id, with_for_update=lock or None, populate_existing=lock)
    if schedule is None or (caller is not None and not caller.covers(schedule.team)):
        raise NotFound(f"no schedule {schedule_id!r}", "schedule_id")
    return schedule


# what a schedule's change shows in the audit log besides the names of the fields changed (not ``run``)
SHOWN_CHANGES = ("name", "cron", "timezone", "suspend", "concurrency_policy", "starting_deadline_seconds")


def _zone(timezone, sent):
    """A zone sent is checked as at the door; the stored one a change keeps is read as its fires read it
    (a legacy ``localtime`` too), and only when the change needs it: a rename never fails on it."""
    return cron.zone(timezone) if sent else cron.kept_zone(timezone)


def update(session, schedule_id, body, settings, webhook_sender, caller=CONFIGURED, require=None):
    change = _body(contract.ScheduleChange, body)
    given = change.model_fields_set
    schedule = get(session, schedule_id, lock=True, caller=caller)
    expression = change.cron if "cron" in given and change.cron is not None else schedule.cron
    timezone = change.timezone if "timezone" in given and change.timezone is not None else schedule.timezone
    for field in ("cron", "timezone", "concurrency_policy", "suspend", "run"):
        if field in given and getattr(change, field) is None:
            raise ValidationError("must not be null; leave it out to keep it", field)
    if "cron" in given or "timezone" in given:
        expression = cron.check(expression, timezone, settings.schedule_allow_seconds,
                                _zone(timezone, "timezone" in given))
    if "run" in given:
        params = check_run(change.run, settings, schedule.task_id)
        webhook_sender.require_configured(params)
        if require is not None:  # its secrets, in the schedule's team
            _required(require, schedule.team, params)
        schedule.run = change.run
    for field in ("name", "concurrency_policy", "starting_deadline_seconds"):
        if field in given:
            setattr(schedule, field, getattr(change, field))
    # retimed only by a change of when it ticks, or of whether it does (a tick due now is not passed over)
    retimed = (expression, timezone) != (schedule.cron, schedule.timezone) \
        or ("suspend" in given and change.suspend != schedule.suspend)
    schedule.cron, schedule.timezone = expression, timezone
    if "suspend" in given:
        schedule.suspend = change.suspend
    stamp = now()
    if retimed:  # resumed or changed: from the next tick after now (ticks while suspended are not run)
        schedule.next_run_at = (None if schedule.suspend
                                else cron.next_tick(expression, _zone(timezone, "timezone" in given), stamp))
    schedule.updated_at = stamp
    audit.record(session, caller, "schedule.change", "schedule", schedule.id, schedule.team,
                 {"changed": sorted(given), **{field: getattr(schedule, field) for field in SHOWN_CHANGES
                                               if field in given}})
    session.commit()
    return schedule


def remove(session, schedule_id, caller=None):
    """Delete a schedule and its fires; the runs it started stay (their ``schedule_id`` too)."""
    schedule = get(session, schedule_id, lock=True, caller=caller)
    audit.record(session, caller, "schedule.delete", "schedule", schedule_id, schedule.team,
                 {"task_id": schedule.task_id, "name": schedule.name})
    session.execute(delete(ScheduleFire).where(ScheduleFire.schedule_id == schedule_id))
    session.execute(delete(Schedule).where(Schedule.id == schedule_id))
    session.commit()


def listed(session, task_id=None, limit=100, after=None, team=None, caller=CONFIGURED):
    stmt = team_scoped(select(Schedule), Schedule.team, caller, team)
    if task_id:
        stmt = stmt.where(Schedule.task_id == task_id)
    return newest_first(session, stmt, Schedule, Schedule.created_at, after, limit, caller, stream=True)


def count_of_task(session, task_id):
    return session.scalar(select(func.count()).select_from(Schedule).where(Schedule.task_id == task_id))


def fire_as_dict(fire):
    return {"scheduled_for": fire.scheduled_for, "fired_at": fire.fired_at, "manual": fire.manual,
            "outcome": fire.outcome, "result_id": fire.result_id, "missed": fire.missed, "reason": fire.reason}


def as_dict(schedule, session=None):
    """The schedule as the API shows it (the contract's ``Schedule``); with ``session``, its fires too."""
    more = {}
    if session is not None:
        newest = select(ScheduleFire).where(ScheduleFire.schedule_id == schedule.id) \
            .order_by(ScheduleFire.id.desc()).limit(sc.FIRES_SHOWN)
        more["fires"] = [fire_as_dict(f) for f in session.scalars(newest)]
        more["failed_fires"] = [fire_as_dict(f) for f in session.scalars(
            newest.where(ScheduleFire.outcome == "FAILED"))]
    return wire(contract.Schedule(
        schedule_id=schedule.id, id=schedule.id, task_id=schedule.task_id, name=schedule.name, cron=schedule.cron,
        timezone=schedule.timezone, concurrency_policy=schedule.concurrency_policy, suspend=schedule.suspend,
        starting_deadline_seconds=schedule.starting_deadline_seconds, run=schedule.run,
        created_at=schedule.created_at, updated_at=schedule.updated_at, next_run_at=schedule.next_run_at,
        last_fire_at=schedule.last_fire_at, last_result_id=schedule.last_result_id,
        counts={"fired": schedule.n_fired, "skipped": schedule.n_skipped, "missed": schedule.n_missed,
                "failed": schedule.n_failed}, team=schedule.team, submitted_by=schedule.submitted_by, **more),
        exclude_unset=True)
