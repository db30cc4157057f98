"""A runner claims only what fits its ceilings, against the real PostgreSQL."""
import pytest
from sqlalchemy import create_engine
from sqlalchemy.orm import sessionmaker

from services.scheduler import executions as ex
from services.scheduler.models import Detail
from shared import validation
from shared.db import psycopg2_url

GIB = 1024 ** 3


@pytest.fixture
def session(own_database_url):
    engine = create_engine(psycopg2_url(own_database_url))
    session = sessionmaker(bind=engine, expire_on_commit=False)()
    yield session
    session.close()
    engine.dispose()


def run(session, priority=5, **extra):
    params = validation.run_params({"operation": "RUN", "times": 1, "priority": priority, **extra}, 10)
    result, _ = ex.create_result(session, "t" * 32, "task", "img@sha256:1", params, with_details=True)
    return result.id


def test_a_small_runner_skips_a_big_execution_that_a_big_runner_then_takes(session):
    big = run(session, priority=9, memory="2G", cpus=2)
    small = run(session, priority=1)
    work = ex.claim(session, "small-runner", 30, max_memory=1 * GIB, max_cpus=1.0)
    assert work["result_id"] == small
    assert ex.claim(session, "small-runner", 30, max_memory=1 * GIB, max_cpus=1.0) is None
    work = ex.claim(session, "big-runner", 30, max_memory=4 * GIB, max_cpus=2.0)
    assert work["result_id"] == big and work["memory"] == "2G" and work["cpus"] == 2


@pytest.mark.parametrize("memory, fits", [("1073741824", True), ("1048576k", True), ("1024m", True),
                                          ("1g", True), ("1025m", False), ("1073741825b", False),
                                          ("0002g", False)])
def test_every_way_of_writing_memory_is_compared_in_bytes(session, memory, fits):
    run(session, memory=memory)
    work = ex.claim(session, "runner", 30, max_memory=GIB)
    assert (work is not None) is fits


def test_cpus_alone_limit_what_is_claimed(session):
    run(session, cpus=1.5)
    assert ex.claim(session, "runner", 30, max_cpus=1.0) is None
    assert ex.claim(session, "runner", 30, max_cpus=1.5) is not None


def test_a_runner_without_ceilings_takes_anything(session):
    big = run(session, memory="8g", cpus=4)
    assert ex.claim(session, "old-runner", 30)["result_id"] == big


def test_the_reason_an_execution_waits_is_written_once_and_goes_when_it_starts(session):
    waiting = run(session, memory="2g")
    plain = run(session)
    assert [r for r, _ in ex.sized_active_results(session)] == [waiting]
    ex.note_waiting(session, waiting, "waiting for a runner that fits: none gives memory 2g")
    ex.note_waiting(session, waiting, "waiting for a runner that fits: a second time")
    [detail] = ex.list_details(session, waiting)
    assert detail.reason == "waiting for a runner that fits: none gives memory 2g"
    assert ex.list_details(session, plain)[0].reason is None
    work = ex.claim(session, "big-runner", 30, max_memory=4 * GIB)
    assert work["result_id"] == waiting
    session.expire_all()  # the claim changed the rows in SQL
    ex.mark_started(session, {"detail_id": work["detail_id"], "attempt": work["attempt"],
                              "runner": "big-runner", "start": 1.0})
    assert session.get(Detail, work["detail_id"]).reason is None


def test_a_run_whose_stored_params_postgresql_cannot_read_does_not_stop_claims(session):
    from sqlalchemy import text

    bad = run(session, priority=9)
    good = run(session, priority=1, memory="512m", cpus=1)
    # as the RUN of an older version stored it: a lone surrogate escape, which json operators refuse
    session.execute(text("""UPDATE results SET params = CAST('{"times": 1, "env": {"BAD": "\\ud800"}}' AS json)
                            WHERE id = :id"""), {"id": bad})
    session.commit()
    with pytest.raises(Exception, match="surrogate"):  # what every claim used to meet
        session.execute(text("SELECT count(*) FROM results WHERE params->>'memory' IS NULL")).scalar()
    session.rollback()
    taken = {ex.claim(session, "runner", 30, max_memory=GIB, max_cpus=2.0)["result_id"] for _ in range(2)}
    assert taken == {bad, good}
