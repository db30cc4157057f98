"""Firing schedules against the real PostgreSQL: the database makes a tick fire once (services/scheduler/
schedules/fire.py), whoever else holds the schedule, and a fire cut short leaves the tick due."""
import pytest
from sqlalchemy import create_engine, func, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import sessionmaker

from services.scheduler import knowntasks
from services.scheduler.models import Result, Schedule, ScheduleFire
from services.scheduler.schedules import fire, store
from shared.db import psycopg2_url
from shared.errors import Conflict, NotFound, ValidationError
from shared.settings import SchedulerSettings, parse
from shared.principals import Caller
from tests.support import ADMIN

AS_ADMIN = Caller.from_dict(ADMIN)

TASK = "a" * 32
SETTINGS = parse(SchedulerSettings, {"SCHEDULE_ALLOW_SECONDS": "on"})


class NoWebhooks:
    """What the fire asks of the webhook sender: the runs here carry no callback_url."""

    def require_configured(self, params):
        assert not params.get("callback_url")


@pytest.fixture
def Session(own_database_url):
    engine = create_engine(psycopg2_url(own_database_url))
    yield sessionmaker(bind=engine, expire_on_commit=False)
    engine.dispose()


def ready_task(session, status="READY"):
    knowntasks.learn(session, TASK, 1, status, "app", "img@sha256:1" if status == "READY" else None)


def due_schedule(session, **fields):
    """A schedule ticking every minute whose tick of this minute is due now."""
    schedule, _ = store.create(session, {"task_id": TASK, "cron": "* * * * *", "run": {"times": 1}, **fields},
                               SETTINGS, NoWebhooks())
    past = session.execute(text("SELECT floor(extract(epoch FROM now()) / 60) * 60")).scalar()
    session.execute(update(Schedule).where(Schedule.id == schedule.id).values(next_run_at=past))
    session.commit()
    return schedule.id, float(past)


def fires(session, schedule_id):
    return session.scalars(select(ScheduleFire).where(ScheduleFire.schedule_id == schedule_id)
                           .order_by(ScheduleFire.id)).all()


def test_a_schedule_another_scheduler_holds_is_skipped_and_its_tick_is_fired_once(Session):
    with Session() as setup:
        ready_task(setup)
        schedule_id, tick = due_schedule(setup)
    with Session() as one, Session() as other:
        one.execute(select(Schedule).where(Schedule.id == schedule_id).with_for_update())  # mid-fire
        assert fire.fire_due(other, SETTINGS, NoWebhooks()) == []  # skipped, not waited for
        one.rollback()  # the first scheduler died before its commit: the tick is still due
        [done] = fire.fire_due(other, SETTINGS, NoWebhooks())
        assert done.outcome == "FIRED" and done.scheduled_for in (tick, tick + 60)  # (a minute may turn)
        assert fire.fire_due(one, SETTINGS, NoWebhooks()) == []  # past for everyone now
    with Session() as check:
        [row] = fires(check, schedule_id)
        result = check.get(Result, row.result_id)
        assert result.schedule_id == schedule_id and result.created == 1  # made with its executions
        assert check.get(Schedule, schedule_id).next_run_at > tick


def test_the_database_refuses_a_tick_fired_twice_but_not_two_runs_now(Session):
    with Session() as session:
        ready_task(session)
        schedule_id, tick = due_schedule(session)
        for manual in (True, True):
            session.add(ScheduleFire(schedule_id=schedule_id, scheduled_for=tick, fired_at=tick, manual=manual,
                                     outcome="FIRED", missed=0))
        session.add(ScheduleFire(schedule_id=schedule_id, scheduled_for=tick, fired_at=tick, manual=False,
                                 outcome="FIRED", missed=0))
        session.commit()
        session.add(ScheduleFire(schedule_id=schedule_id, scheduled_for=tick, fired_at=tick, manual=False,
                                 outcome="SKIPPED", missed=0))
        with pytest.raises(IntegrityError):
            session.commit()


def test_a_fire_of_a_task_not_ready_is_failed_and_a_run_now_of_it_is_409(Session):
    with Session() as session:
        ready_task(session, "IMPORTING")
        schedule_id, _ = due_schedule(session)
        [done] = fire.fire_due(session, SETTINGS, NoWebhooks())
        assert done.outcome == "FAILED" and "is IMPORTING; only a READY task can be run" in done.reason
        with pytest.raises(Conflict, match="IMPORTING"):
            fire.run_now(session, schedule_id, SETTINGS, NoWebhooks(), caller=AS_ADMIN)
        assert [f.outcome for f in fires(session, schedule_id)] == ["FAILED"]
        assert session.scalar(select(func.count()).select_from(Result)) == 0


def test_a_deleted_task_cannot_be_closed_while_it_has_schedules(Session):
    with Session() as session:
        ready_task(session)
        schedule_id, _ = due_schedule(session, suspend=True)
        with pytest.raises(Conflict, match="1 schedule"):
            knowntasks.close(session, TASK)
        store.remove(session, schedule_id, caller=AS_ADMIN)
        knowntasks.close(session, TASK)
        with pytest.raises(NotFound, match="no task"):
            due_schedule(session)


def test_fires_kept_are_bounded_per_schedule(Session, monkeypatch):
    monkeypatch.setattr(store, "FIRES_KEPT", 3)
    with Session() as session:
        ready_task(session)
        schedule_id, _ = due_schedule(session, suspend=True)
        made = [fire.run_now(session, schedule_id, SETTINGS, NoWebhooks(), caller=AS_ADMIN).result.id for _ in range(5)]
        kept = fires(session, schedule_id)
        assert [f.result_id for f in kept] == made[2:] and all(f.manual for f in kept)


def test_a_change_retimes_a_schedule_only_when_its_ticks_or_its_suspension_change(Session):
    with Session() as session:
        ready_task(session)
        schedule_id, tick = due_schedule(session)
        for body in ({"name": "renamed"}, {"suspend": False}, {"cron": "* * * * *"}, {"concurrency_policy": "Forbid"}):
            store.update(session, schedule_id, body, SETTINGS, NoWebhooks())
            assert store.get(session, schedule_id).next_run_at == tick, body  # the due tick stays due
        store.update(session, schedule_id, {"suspend": True}, SETTINGS, NoWebhooks())
        assert store.get(session, schedule_id).next_run_at is None
        resumed = store.update(session, schedule_id, {"suspend": False}, SETTINGS, NoWebhooks())
        assert resumed.next_run_at > tick  # from the next tick after the resume
        moved = store.update(session, schedule_id, {"cron": "0 0 1 1 *", "timezone": "Europe/Berlin"}, SETTINGS,
                             NoWebhooks())
        assert moved.next_run_at > tick + 60 and moved.cron == "0 0 1 1 *"


def test_a_legacy_localtime_schedule_resumes_and_changes_in_its_stored_zone_unless_one_is_sent(Session):
    with Session() as session:
        ready_task(session)
        schedule_id, tick = due_schedule(session, suspend=True)
        session.execute(update(Schedule).where(Schedule.id == schedule_id).values(timezone="localtime"))
        session.commit()
        resumed = store.update(session, schedule_id, {"suspend": False}, SETTINGS, NoWebhooks())
        assert resumed.next_run_at > tick and resumed.timezone == "localtime"
        moved = store.update(session, schedule_id, {"cron": "0 0 1 1 *"}, SETTINGS, NoWebhooks())
        assert moved.next_run_at > tick + 60 and moved.timezone == "localtime"
        with pytest.raises(ValidationError) as caught:  # one sent is checked as at the door
            store.update(session, schedule_id, {"timezone": "localtime"}, SETTINGS, NoWebhooks())
        assert caught.value.field == "timezone"


def test_replace_of_a_run_not_yet_fanned_out_counts_its_unmade_executions_and_spreads_a_matrix(Session):
    with Session() as session:
        ready_task(session)
        made, _ = store.create(session, {"task_id": TASK, "cron": "0 0 1 1 *", "concurrency_policy": "Replace",
                                         "run": {"matrix": {"A": [str(i) for i in range(300)]}}},
                               SETTINGS, NoWebhooks())
        first = fire.run_now(session, made.id, SETTINGS, NoWebhooks(), caller=AS_ADMIN)
        assert first.result.times == 300 and first.result.created == 0 and not first.inline  # fanned out later
        assert first.result.execution_params == {"matrix": {"A": [str(i) for i in range(300)]}}
        second = fire.run_now(session, made.id, SETTINGS, NoWebhooks(), caller=AS_ADMIN)
        assert second.replaced == first.result.id
        assert second.replaced_unmade == 300  # all CANCELLED by the fire: the metrics count them
        assert session.get(Result, first.result.id, populate_existing=True).n_cancelled == 300
        # a run being cancelled already is not replaced again: it ends as it is
        third = fire.run_now(session, made.id, SETTINGS, NoWebhooks(), caller=AS_ADMIN)
        assert third.replaced == second.result.id
        session.execute(update(Result).where(Result.id == third.result.id).values(cancel_requested=True))
        session.commit()
        fourth = fire.run_now(session, made.id, SETTINGS, NoWebhooks(), caller=AS_ADMIN)
        assert fourth.replaced is None and fourth.replaced_unmade == 0


def test_a_tick_over_its_teams_max_queued_is_failed_and_the_schedule_moves_on(Session):
    from services.scheduler.models import Team
    from shared.errors import TooManyRequests

    with Session() as session:
        ready_task(session)
        session.add(Team(name="ml", weight=1.0, max_queued=0, created_at=0.0))
        schedule_id, tick = due_schedule(session)
        session.execute(update(Schedule).where(Schedule.id == schedule_id).values(team="ml", submitted_by="ci"))
        session.commit()
        [done] = fire.fire_due(session, SETTINGS, NoWebhooks())
        assert done.outcome == "FAILED" and "max_queued" in done.reason
        assert session.get(Schedule, schedule_id).next_run_at > tick  # not fired again and again
        with pytest.raises(Conflict):  # a run of 1 can never fit a quota of 0
            fire.run_now(session, schedule_id, SETTINGS, NoWebhooks(), caller=AS_ADMIN)
        session.execute(update(Team).where(Team.name == "ml").values(max_queued=1))
        session.commit()
        made = fire.run_now(session, schedule_id, SETTINGS, NoWebhooks(), caller=AS_ADMIN)
        assert (made.result.team, made.result.submitted_by) == ("ml", "admin")  # a run now: by who asked
        with pytest.raises(TooManyRequests) as refused:  # the first run's execution fills the quota
            fire.run_now(session, schedule_id, SETTINGS, NoWebhooks(), caller=AS_ADMIN)
        assert refused.value.field == "max_queued" and refused.value.retry_after >= 1
        assert [f.outcome for f in fires(session, schedule_id)] == ["FAILED", "FIRED"]
