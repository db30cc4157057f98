"""A CANCEL of a run (or of an execution) that many others wait for, on the real broker and database: the RPC
answers at once, the runs waiting for it are settled behind it (``on_result_cancelled``,
``on_execution_cancel_requested``)."""
import time

from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import sessionmaker

from services.scheduler import executions as ex
from services.scheduler.executions import dependencies as deps
from services.scheduler.models import Detail
from shared import validation
from shared.db import psycopg2_url
from tests.interface.test_scheduler_service import run_ready, scheduler  # noqa: F401 -- the fixture
from tests.support import call, wait_until

DEPENDANTS = 1000


def waiting_runs(url, awaited, count, per_index=False):
    """``count`` runs of one execution each waiting for ``awaited`` to COMPLETE (``per_index``: each its
    execution 0 for awaited's), made as a RUN makes them."""
    engine = create_engine(psycopg2_url(url))
    try:
        with sessionmaker(bind=engine, expire_on_commit=False)() as session:
            for _ in range(count):
                params = validation.run_params({"operation": "RUN", "times": 1,
                                                "after": [{"result_id": awaited}], "per_index": per_index},
                                               100000)
                ex.create_result(session, "t" * 32, "task", "img@sha256:1", params, with_details=True,
                                 prepare=deps.declare)
                session.commit()
    finally:
        engine.dispose()


def cancelled_count(url, awaited):
    """How many executions of the runs waiting for ``awaited`` ended CANCELLED (one a run)."""
    engine = create_engine(psycopg2_url(url))
    try:
        with engine.connect() as conn:
            return conn.scalar(select(func.count()).select_from(Detail).where(
                Detail.result_id != awaited, Detail.status == "CANCELLED"))
    finally:
        engine.dispose()


def test_a_cancel_of_a_run_a_thousand_wait_for_answers_at_once_and_they_all_end_cancelled(
        scheduler, own_database_url):  # noqa: F811
    first = run_ready(scheduler, {"operation": "RUN", "times": 1})["result_id"]
    waiting_runs(own_database_url, first, DEPENDANTS)
    started = time.monotonic()
    cancelled = call(scheduler, "cancel_result", first)
    took = time.monotonic() - started
    assert cancelled["status"] == "CANCELLED"
    # the RPC's timeout is 30 s: settling the thousand in the call took more, under load
    assert took < 10, f"the cancel took {took:.1f}s"
    wait_until(lambda: cancelled_count(own_database_url, first) == DEPENDANTS, timeout=180,
               what=f"the {DEPENDANTS} runs waiting for it cancelled")
    assert call(scheduler, "claim_execution", "runner-a") is None


def test_a_cancel_of_an_execution_a_thousand_pair_with_answers_at_once_and_their_pairs_end_cancelled(
        scheduler, own_database_url):  # noqa: F811
    first = run_ready(scheduler, {"operation": "RUN", "times": 1})["result_id"]
    waiting_runs(own_database_url, first, DEPENDANTS, per_index=True)
    [detail] = call(scheduler, "list_details", first)
    started = time.monotonic()
    cancelled = call(scheduler, "cancel_detail", first, detail["detail_id"])
    took = time.monotonic() - started
    assert cancelled["status"] == "CANCELLED"
    assert took < 10, f"the cancel took {took:.1f}s"
    wait_until(lambda: cancelled_count(own_database_url, first) == DEPENDANTS, timeout=180,
               what=f"the {DEPENDANTS} runs pairing with it cancelled")
