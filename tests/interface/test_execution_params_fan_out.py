"""Per-execution parameters against the real PostgreSQL: a matrix and items fanned out in several
batches give each detail its own parameters, a claim merges them over the run's, and a PATCH re-orders
the queue."""
import itertools

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import sessionmaker

from services.scheduler import executions as ex
from services.scheduler.models import Detail, Result
from shared import validation
from shared.db import psycopg2_url
from shared.errors import Conflict
from tests.support import ADMIN


def _session(url):
    engine = create_engine(psycopg2_url(url))
    return engine, sessionmaker(bind=engine, expire_on_commit=False)()


def _params(session, result_id):
    return session.execute(select(Detail.index, Detail.params).where(Detail.result_id == result_id)
                           .order_by(Detail.index)).all()


def test_a_matrix_fanned_out_in_batches_gives_each_index_its_combination(own_database_url):
    engine, session = _session(own_database_url)
    try:
        matrix = {"A": [str(i) for i in range(10)], "B": ["x", "y", "z"], "C": ["p", "q", "r", "s", "t"]}
        params, spread = validation.run_parts({"matrix": matrix, "env": {"RUN": "1"}}, 1000)
        result, _ = ex.create_result(session, "t" * 32, "task", "img@sha256:1", params, spread=spread)
        made = []
        while True:
            count = ex.fan_out_batch(session, result.id, batch=17)
            if not count:
                break
            made.append(count)
        assert sum(made) == 150 and len(made) == 9
        expected = [dict(zip(matrix, values)) for values in itertools.product(*matrix.values())]
        assert [(i, p["env"]) for i, p in _params(session, result.id)] == list(enumerate(expected))
        # the claim gives the runner the run's env with the execution's own merged over it
        work = ex.claim(session, "runner-1", 30)
        assert work["index"] == 0 and work["env"] == {"RUN": "1", **expected[0]} and work["times"] == 150
        # the result row keeps the run-wide parameters; the spread is read only by the fan-out
        row = session.get(Result, result.id)
        assert "matrix" not in row.params and row.params["per_execution"] == "matrix"
    finally:
        session.close()
        engine.dispose()


def test_items_inline_and_a_patch_of_priority_reorders_the_queued_executions(own_database_url):
    engine, session = _session(own_database_url)
    try:
        low_params, low_spread = validation.run_parts(
            {"items": [{"command": ["echo", str(i)]} for i in range(3)], "priority": 1}, 1000)
        low, _ = ex.create_result(session, "t" * 32, "task", "img@sha256:1", low_params, with_details=True,
                                  spread=low_spread)
        high, _ = ex.create_result(session, "t" * 32, "task", "img@sha256:1",
                                   validation.run_params({"times": 2, "priority": 5}, 1000), with_details=True)
        assert [p for _, p in _params(session, low.id)] == [{"command": ["echo", str(i)]} for i in range(3)]
        assert [p for _, p in _params(session, high.id)] == [None, None]
        changed, before, woken = ex.change_result(session, low.id, {"priority": 9}, caller=ADMIN)
        assert before == {"priority": 1} and changed.priority == 9 and woken == 0
        work = ex.claim(session, "runner-1", 30)
        assert work["result_id"] == low.id and work["command"] == ["echo", "0"]
        changed, before, woken = ex.change_result(session, high.id, {"parallelism": 1}, caller=ADMIN)
        assert before == {"parallelism": None} and woken == 1
    finally:
        session.close()
        engine.dispose()


def test_an_idempotency_key_reused_with_another_matrix_or_its_keys_reordered_is_refused(own_database_url):
    engine, session = _session(own_database_url)
    try:
        def run(matrix):
            params, spread = validation.run_parts({"matrix": matrix}, 1000)
            return ex.create_result(session, "t" * 32, "task", "img@sha256:1", params, idempotency_key="k",
                                    spread=spread)

        first, created = run({"A": ["1", "2"], "B": ["x"]})
        again, created_again = run({"A": ["1", "2"], "B": ["x"]})
        assert created and not created_again and again.id == first.id
        for other in ({"A": ["1", "3"], "B": ["x"]}, {"B": ["x"], "A": ["1", "2"]}):
            with pytest.raises(Conflict):
                run(other)
            session.rollback()
    finally:
        session.close()
        engine.dispose()
