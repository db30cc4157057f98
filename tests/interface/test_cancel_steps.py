"""CANCEL in two steps against the real PostgreSQL: marked first, its queued executions ended after.

A scheduler stopped between the steps leaves a cancelled run with queued
executions; the sweep's ``unfinished_cancels`` finds it and ``finish_cancel``
ends them, counted once.
"""
import pytest
from sqlalchemy import create_engine, update
from sqlalchemy.orm import sessionmaker

from services.scheduler import executions as ex
from services.scheduler.models import Result
from shared import validation
from shared.db import psycopg2_url
from tests.support import ADMIN


@pytest.fixture
def Session(own_database_url):
    engine = create_engine(psycopg2_url(own_database_url))
    yield sessionmaker(bind=engine, expire_on_commit=False)
    engine.dispose()


def test_a_cancel_cut_short_is_found_and_finished_by_the_sweep(Session):
    with Session() as session:
        params = validation.run_params({"operation": "RUN", "times": 30}, 100000)
        result, _ = ex.create_result(session, "t" * 32, "task", "img@sha256:1", params, with_details=True)
        result_id = result.id
        work = ex.claim(session, "runner-1", 30)
        assert work["result_id"] == result_id
        # step one only, as a scheduler stopped right after it would leave it
        session.execute(update(Result).where(Result.id == result_id).values(cancel_requested=True))
        session.commit()
        assert ex.claim(session, "runner-2", 30) is None  # no work of a cancelled run is handed out
    with Session() as session:
        assert ex.unfinished_cancels(session) == [result_id]
        assert ex.finish_cancel(session, result_id) == 29  # the claimed one is its runner's to stop
        assert ex.unfinished_cancels(session) == []
        assert ex.finish_cancel(session, result_id) == 0
        row = ex.get_result(session, result_id)
        assert row.n_cancelled == 29 and row.status == "QUEUED"  # one still held, not started
        ex.mark_finished(session, {"detail_id": work["detail_id"], "attempt": work["attempt"],
                                   "runner": "runner-1", "status": "KILLED", "exit_code": 137,
                                   "reason": "cancelled", "start": 1.0, "end": 2.0})
        row = ex.get_result(session, result_id)
        assert (row.n_cancelled, row.n_killed, row.status) == (29, 1, "KILLED")  # a run cancelled while one ran


def test_cancel_counts_unmade_and_queued_executions_once(Session):
    with Session() as session:
        params = validation.run_params({"operation": "RUN", "times": 12000}, 100000)
        result, _ = ex.create_result(session, "t" * 32, "task", "img@sha256:1", params)
        assert ex.fan_out_batch(session, result.id, batch=5000) == 5000
        cancelled, stopped = ex.cancel_result(session, result.id, ADMIN)
        assert stopped == 12000 and cancelled.n_cancelled == 12000 and cancelled.status == "CANCELLED"
        # the rest of the fan-out makes its rows CANCELLED, counted already
        while ex.fan_out_batch(session, result.id, batch=5000):
            pass
        row = ex.get_result(session, result.id)
        assert row.n_cancelled == 12000 and row.created == 12000
        assert ex.unfinished_cancels(session) == []
