"""A run's failure policy against the real PostgreSQL: max_failures folded in mark_finished, the stop,
a deadline found past its time, a stop during a fan-out, and concurrent reports counted exactly."""
import threading

import pytest
from sqlalchemy import create_engine
from sqlalchemy.orm import sessionmaker

from services.scheduler import executions as ex
from services.scheduler.executions import policy
from services.scheduler.models import Detail
from shared import validation
from shared.db import psycopg2_url
from tests.support import ADMIN


@pytest.fixture
def Session(own_database_url):
    engine = create_engine(psycopg2_url(own_database_url), pool_size=10)
    yield sessionmaker(bind=engine, expire_on_commit=False)
    engine.dispose()


def new_run(session, times, with_details=True, **fields):
    params = validation.run_params({"operation": "RUN", "times": times, **fields}, 100000)
    result, _ = ex.create_result(session, "t" * 32, "task", "img@sha256:1", params, with_details=with_details)
    return result.id


def failed(work, runner, status="ERROR", exit_code=3, reason="exited with code 3"):
    return {"detail_id": work["detail_id"], "attempt": work["attempt"], "runner": runner, "status": status,
            "exit_code": exit_code, "reason": reason, "start": 1.0, "end": 2.0}


def test_max_failures_reached_marks_the_run_and_the_stop_ends_the_rest(Session):
    with Session() as session:
        result_id = new_run(session, 20, max_failures=2)
        first, second, third = (ex.claim(session, f"runner-{i}", 30) for i in range(3))
        result, _ = ex.mark_finished(session, failed(first, "runner-0"))
        assert result.n_failed == 1 and not ex.needs_stop(result)
        result, _ = ex.mark_finished(session, failed(second, "runner-1"))
        assert result.ended_by == "max_failures" and ex.needs_stop(result)
        assert policy.unfinished_stops(session) == [result_id]  # found by the sweep, were the stop cut short
        result, cancelled, first_stop = policy.stop_result(session, result_id, "max_failures")
        assert (cancelled, first_stop) == (17, True) and result.cancel_requested
        assert policy.stop_result(session, result_id, "max_failures")[1:] == (0, False)  # idempotent
        assert policy.unfinished_stops(session) == [] and result.status == "RUNNING"  # one still held
        # the held one: its runner stops it (KILLED "cancelled"), said as the policy's stop
        result, detail = ex.mark_finished(session, failed(third, "runner-2", "KILLED", None, "cancelled"))
        assert detail.reason == "max_failures" and result.n_failed == 2
        assert (result.status, result.n_error, result.n_killed, result.n_cancelled) == ("ERROR", 2, 1, 17)
        reasons = {d.reason for d in session.query(Detail).filter_by(result_id=result_id, status="CANCELLED")}
        assert reasons == {"max_failures"}


def test_a_deadline_stop_during_a_fan_out_counts_the_unmade_executions_once(Session):
    with Session() as session:
        result_id = new_run(session, 12000, with_details=False, deadline=5)
        row = ex.get_result(session, result_id)
        assert row.deadline_at == pytest.approx(row.submitted_at + 5)
        assert ex.fan_out_batch(session, result_id, batch=5000) == 5000
        assert policy.past_deadline(session, at=row.submitted_at + 4) == []
        assert policy.past_deadline(session, at=row.submitted_at + 6) == [result_id]
        result, cancelled, _ = policy.stop_result(session, result_id, "deadline")
        assert cancelled == 12000 and (result.status, result.ended_by) == ("KILLED", "deadline")
        while ex.fan_out_batch(session, result_id, batch=5000):
            pass
        row = ex.get_result(session, result_id)
        assert row.n_cancelled == 12000 and row.created == 12000
        assert policy.past_deadline(session, at=row.submitted_at + 6) == []
        reasons = {r for (r,) in session.query(Detail.reason).filter_by(result_id=result_id).distinct()}
        assert reasons == {"deadline"}


def test_a_run_cancelled_by_its_user_first_is_left_to_that_cancel(Session):
    with Session() as session:
        result_id = new_run(session, 5, deadline=1)
        ex.cancel_result(session, result_id, ADMIN)
        assert policy.stop_result(session, result_id, "deadline") == (None, 0, False)
        row = ex.get_result(session, result_id)
        assert (row.status, row.ended_by) == ("CANCELLED", None)


def test_concurrent_failures_are_counted_exactly_and_mark_the_run_once(Session):
    times = 40
    with Session() as session:
        result_id = new_run(session, times, max_failures=times)
        works = [ex.claim(session, f"runner-{i}", 30) for i in range(times)]
    errors = []

    def report(work, i):
        try:
            with Session() as own:
                ex.mark_finished(own, failed(work, f"runner-{i}"))
        except Exception as exc:  # noqa: BLE001 -- reported below
            errors.append(exc)

    threads = [threading.Thread(target=report, args=(work, i)) for i, work in enumerate(works)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with Session() as session:
        row = ex.get_result(session, result_id)
        assert (row.n_failed, row.n_error, row.ended_by, row.status) == (times, times, "max_failures", "ERROR")
