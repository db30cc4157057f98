"""The rules of runs that wait for others (services/scheduler/executions/dependencies.py), on the real
PostgreSQL: held out of the claim, released or cancelled by ``settle``, whoever calls it and however late."""
import pytest
from sqlalchemy import create_engine, select, text
from sqlalchemy.orm import sessionmaker

from services.scheduler import executions as ex
from services.scheduler.executions import dependencies as deps
from services.scheduler.executions.claims import CLAIM_SQL
from services.scheduler.models import Detail, Result
from shared import validation
from shared.db import psycopg2_url
from tests.support import ADMIN


@pytest.fixture
def Session(own_database_url):
    engine = create_engine(psycopg2_url(own_database_url))
    yield sessionmaker(bind=engine, expire_on_commit=False)
    engine.dispose()


def run(session, times=2, after=None, per_index=False, with_details=True):
    body = {"operation": "RUN", "times": times}
    if after:
        body.update(after=after, per_index=per_index)
    params = validation.run_params(body, 100000)
    deps.check(session, params)
    result, _ = ex.create_result(session, "t" * 32, "task", "img@sha256:1", params, with_details=with_details,
                                 prepare=deps.declare if after else None)
    return result.id


def end_all(session, result_id, status="COMPLETE"):
    """Every claimable execution of ``result_id`` claimed and ended ``status``; how many."""
    ended = 0
    while (work := ex.claim(session, "runner-1", 30)) is not None:
        assert work["result_id"] == result_id, "a waiting run's execution was claimed"
        ex.mark_finished(session, {"detail_id": work["detail_id"], "attempt": work["attempt"], "runner": "runner-1",
                                   "status": status, "exit_code": 0 if status == "COMPLETE" else 1,
                                   "reason": None, "start": 1.0, "end": 2.0})
        ended += 1
    return ended


def waiting(session, result_id):
    return session.scalars(select(Detail.index).where(Detail.result_id == result_id, Detail.waiting.is_(True))
                           .order_by(Detail.index)).all()


def test_a_waiting_run_is_never_claimed_and_is_released_once_what_it_waits_for_completes(Session):
    with Session() as session:
        first = run(session)
        second = run(session, after=[{"result_id": first}])
        assert waiting(session, second) == [0, 1]
        assert deps.settle(session, second).released == 0  # nothing ended yet
        assert deps.waiting_results(session) == []  # so the sweep leaves it alone
        assert end_all(session, first) == 2  # only the first run's two
        # the scheduler stopped before settling its dependents: the sweep's list has it, settling releases it
        assert deps.waiting_results(session) == [(second, True)]
        settled = deps.settle(session, second)
        assert (settled.released, settled.run_released, settled.cancelled) == (2, True, False)
        assert deps.settle(session, second).released == 0  # settled twice: nothing more
        assert deps.waiting_results(session) == []
        result = session.get(Result, second, populate_existing=True)
        assert result.waiting_for is None and result.released_at is not None
        assert end_all(session, second) == 2


@pytest.mark.parametrize("when, status, reason", [
    ("COMPLETE", "CANCELLED", "was deleted before this run saw it end COMPLETE"),
    ("ENDED", "QUEUED", None),
])
def test_a_run_whose_dependency_was_deleted_unseen_is_cancelled_unless_any_end_would_do(Session, when, status,
                                                                                        reason):
    with Session() as session:
        first = run(session)
        second = run(session, after=[{"result_id": first, "when": when}])
        end_all(session, first)
        ex.delete_result(session, first, caller=ADMIN)
        deps.settle(session, second)
        result = ex.get_result(session, second)
        assert result.status == status
        if reason:
            assert result.reason == f"result {first} {reason}"
            assert {d.status for d in session.scalars(select(Detail).where(Detail.result_id == second))} \
                == {"CANCELLED"}
        else:
            assert waiting(session, second) == [] and result.reason is None


def test_the_executions_of_a_big_waiting_run_are_held_as_each_batch_is_made(Session):
    with Session() as session:
        first = run(session, times=1)
        second = run(session, times=5, after=[{"result_id": first}], with_details=False)
        while ex.fan_out_batch(session, second, batch=2):
            pass
        assert waiting(session, second) == [0, 1, 2, 3, 4]
        end_all(session, first)
        assert deps.settle(session, second).released == 5


def test_per_index_releases_and_cancels_each_execution_by_its_pair(Session):
    with Session() as session:
        first = run(session, times=3)
        second = run(session, times=3, after=[{"result_id": first}], per_index=True)
        work = ex.claim(session, "runner-1", 30)
        assert work["index"] == 0
        ex.mark_finished(session, {"detail_id": work["detail_id"], "attempt": 1, "runner": "runner-1",
                                   "status": "COMPLETE", "exit_code": 0, "reason": None, "start": 1.0, "end": 2.0})
        details = {d.index: d for d in session.scalars(select(Detail).where(Detail.result_id == first))}
        ex.cancel_detail(session, first, details[1].id, caller=ADMIN)
        assert deps.settle(session, second, index=2).released == 0  # index 2's pair has not ended
        assert deps.waiting_results(session) == [(second, False)]  # some pairs ended, not the run
        settled = deps.settle(session, second)
        assert (settled.released, settled.stopped) == (1, 1)
        assert waiting(session, second) == [2]
        result = ex.get_result(session, second)
        assert result.waiting_for == [{"result_id": first, "when": "COMPLETE"}]
        assert result.reason.startswith(f"cancelled: execution 1 of result {first} ended CANCELLED")


def test_the_claim_still_uses_its_partial_index(Session):
    with Session() as session:
        first = run(session)
        run(session, after=[{"result_id": first}])
        session.execute(text("SET enable_seqscan = off"))
        plan = "\n".join(session.execute(text("EXPLAIN " + CLAIM_SQL.element.text), {
            "now": 0.0, "runner": "r", "lease_seconds": 30.0, "max_memory": None, "max_cpus": None,
            "labels": "{}", "gpu_ids": [], "free_gpus": 0, "held": None, "k": 8}).scalars())
        session.rollback()
    assert "ix_details_claimable" in plan, plan
