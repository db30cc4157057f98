"""The claim's fair share across teams, its per-team counters and max_running, against the real PostgreSQL."""
import json
import threading

import pytest
from sqlalchemy import create_engine, select, text
from sqlalchemy.orm import sessionmaker

from services.scheduler import executions as ex
from services.scheduler.executions.claims import CLAIM_SQL
from services.scheduler.holdings import release_claim
from services.scheduler.models import Result, Team
from shared import validation
from shared.db import psycopg2_url


@pytest.fixture
def engine(own_database_url):
    engine = create_engine(psycopg2_url(own_database_url), pool_size=20)
    yield engine
    engine.dispose()


@pytest.fixture
def session(engine):
    session = sessionmaker(bind=engine, expire_on_commit=False)()
    yield session
    session.close()


def team(session, name, weight=1.0, max_running=None, max_queued=None):
    session.add(Team(name=name, weight=weight, max_running=max_running, max_queued=max_queued, created_at=0.0))
    session.commit()


def run(session, owner, times=1, priority=5, **extra):
    params = validation.run_params({"operation": "RUN", "times": times, "priority": priority, **extra}, 100000)
    result, _ = ex.create_result(session, "t" * 32, "task", "img@sha256:1", params, with_details=times <= 100,
                                 team=owner, submitted_by=f"{owner}-bot")
    while ex.fan_out_batch(session, result.id):
        pass
    return result.id


def claimed_team(session, runner="r"):
    work = ex.claim(session, runner, 30)
    return None if work is None else session.get(Result, work["result_id"]).team


def held(session, name):
    session.expire_all()
    return session.scalar(select(Team.active).where(Team.name == name))


def finish(session, work, runner="r", status="COMPLETE"):
    ex.mark_finished(session, {"detail_id": work["detail_id"], "attempt": work["attempt"], "runner": runner,
                               "status": status, "exit_code": 0 if status == "COMPLETE" else 1})


def test_a_team_with_nothing_running_goes_before_a_flood_that_came_first(session):
    team(session, "a")
    team(session, "b")
    run(session, "a", times=300)
    assert [claimed_team(session) for _ in range(3)] == ["a", "a", "a"]
    run(session, "b", times=1)
    assert claimed_team(session) == "b"  # 0/1 held against a's 3/1
    assert claimed_team(session) == "a"  # b has nothing left


def test_claims_follow_the_weights_while_both_teams_have_work(session):
    team(session, "light", weight=1)
    team(session, "heavy", weight=3)
    run(session, "light", times=200)
    run(session, "heavy", times=200)
    taken = [claimed_team(session) for _ in range(40)]
    assert taken.count("heavy") == 30 and taken.count("light") == 10
    assert held(session, "heavy") == 30 and held(session, "light") == 10


def test_at_equal_share_priority_then_age_decide_across_teams(session):
    team(session, "a")
    team(session, "b")
    old_low = run(session, "a", priority=1)
    new_high = run(session, "b", priority=9)
    older = run(session, "a", priority=5)
    newer = run(session, "b", priority=5)
    order = []
    for _ in range(4):
        work = ex.claim(session, "r", 30)
        order.append(work["result_id"])
        finish(session, work)  # each ends before the next claim: both teams stay at share 0
    assert order == [new_high, older, newer, old_low]


def test_within_a_team_priority_then_age(session):
    team(session, "a")
    first = run(session, "a", priority=5)
    urgent = run(session, "a", priority=8)
    second = run(session, "a", priority=5)
    assert [ex.claim(session, "r", 30)["result_id"] for _ in range(3)] == [urgent, first, second]


def test_max_running_holds_and_frees_as_executions_end(session):
    team(session, "capped", max_running=2)
    team(session, "other")
    run(session, "capped", times=10)
    first, second = ex.claim(session, "r", 30), ex.claim(session, "r", 30)
    assert {first["result_id"], second["result_id"]} == {session.scalar(select(Result.id).where(
        Result.team == "capped"))}
    assert ex.claim(session, "r", 30) is None  # at its max_running: nothing else to claim
    run(session, "other", times=1)
    assert claimed_team(session) == "other"  # another team is not held back by it
    finish(session, first)
    assert held(session, "capped") == 1
    assert claimed_team(session) == "capped" and held(session, "capped") == 2


def test_a_retry_and_a_claim_handed_back_free_their_team_slot(session):
    team(session, "a")
    run(session, "a", times=1, retries=1)
    work = ex.claim(session, "r", 30)
    assert held(session, "a") == 1
    finish(session, work, status="ERROR")  # queued again for its retry
    assert held(session, "a") == 0
    session.execute(text("UPDATE details SET not_before = NULL"))
    session.commit()
    again = ex.claim(session, "r", 30)
    assert again is not None and held(session, "a") == 1
    release_claim(session, "r", again["detail_id"], again["attempt"])
    assert held(session, "a") == 0


def test_a_team_whose_only_execution_another_claim_holds_is_passed_over(engine, session):
    team(session, "a")
    team(session, "b")
    run(session, "a", times=5)
    run(session, "b", times=1)
    other = sessionmaker(bind=engine)()
    other.execute(text("SELECT id FROM details WHERE team = 'b' FOR UPDATE"))  # a claim in flight on it
    try:
        assert claimed_team(session) == "a"
    finally:
        other.rollback()
        other.close()


def test_concurrent_claims_never_pass_max_running_and_count_exactly(engine, session):
    team(session, "capped", max_running=7)
    team(session, "free")
    run(session, "capped", times=200)
    run(session, "free", times=200)
    taken, errors = [], []

    def claimer(n):
        own = sessionmaker(bind=engine, expire_on_commit=False)()
        try:
            for _ in range(n):
                work = ex.claim(own, f"runner-{threading.get_ident()}", 30)
                if work is not None:
                    taken.append(own.get(Result, work["result_id"]).team)
        except Exception as exc:  # noqa: BLE001 -- reported below
            errors.append(exc)
        finally:
            own.close()

    threads = [threading.Thread(target=claimer, args=(10,)) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert taken.count("capped") == 7
    assert held(session, "capped") == 7 and held(session, "free") == taken.count("free")
    held_rows = session.execute(text("SELECT r.team, sum(r.active) FROM results r GROUP BY r.team")).all()
    assert dict(held_rows) == {"capped": 7, "free": taken.count("free")}


def test_the_details_carry_their_runs_team_inline_and_fanned_out(session):
    team(session, "ml")
    small, big = run(session, "ml", times=3), run(session, "ml", times=1500)
    teams = session.execute(text("SELECT result_id, count(*) FILTER (WHERE team = 'ml'), count(*) FROM details "
                                 "GROUP BY result_id")).all()
    assert {row[0]: (row[1], row[2]) for row in teams} == {small: (3, 3), big: (1500, 1500)}
    assert session.get(Result, small).submitted_by == "ml-bot"


def test_the_claim_starts_at_the_claimable_index_with_many_teams(session):
    for index in range(20):
        team(session, f"t{index}")
        run(session, f"t{index}", times=3)
    session.execute(text("SET enable_seqscan = off"))
    plan = "\n".join(session.execute(text("EXPLAIN " + CLAIM_SQL.element.text), {
        "now": 0.0, "runner": "r", "lease_seconds": 30.0, "max_memory": None, "max_cpus": None,
        "labels": json.dumps({}), "gpu_ids": [], "free_gpus": 0, "held": [], "k": 8}).scalars())
    session.rollback()
    assert "ix_details_claimable" in plan, plan


def test_the_claiming_runners_ended_executions_whose_reports_are_on_their_way_do_not_count(session):
    team(session, "a")
    team(session, "b")
    run(session, "b", times=5)  # b's work is older: it wins a tie
    run(session, "a", times=5)
    assert claimed_team(session, "r2") == "b"  # both at 0: the older
    mine = ex.claim(session, "r1", 30)  # b at 1, a at 0
    assert session.get(Result, mine["result_id"]).team == "a"
    # r1 still runs its execution of a: a tie (1, 1), the older work (b) goes first
    assert session.get(Result, ex.claim(session, "r1", 30, held=[mine["detail_id"]])["result_id"]).team == "b"
    session.execute(  # that claim undone, to ask again as if r1's execution of a had ended instead
        text("UPDATE details SET runner = NULL, attempt = attempt - 1 WHERE runner = 'r1' AND team = 'b'"))
    session.execute(text("UPDATE results SET active = active - 1 WHERE team = 'b'"))
    session.execute(text("UPDATE teams SET active = 1 WHERE name = 'b'"))
    session.commit()
    # its container of a ended and it asks again before its end report is folded (it says it runs nothing):
    # that execution is not counted for the ranking, so a (at 0) goes before b (at 1)
    assert session.get(Result, ex.claim(session, "r1", 30, held=[])["result_id"]).team == "a"
    assert held(session, "a") == 2  # max_running still counts it until its end is folded


# ---------------------------------------------------------------- a runner's claim for all its free slots

def teams_of(session, works):
    return [session.get(Result, work["result_id"]).team for work in works]


def test_one_batch_claim_takes_what_as_many_claims_in_turn_would(engine, session):
    team(session, "light", weight=1)
    team(session, "heavy", weight=3)
    run(session, "light", times=200)
    run(session, "heavy", times=200)
    in_turn = [ex.claim(session, "r", 30) for _ in range(12)]
    session.execute(text("UPDATE details SET runner = NULL, attempt = 0, lease_expires_at = NULL"))
    session.execute(text("UPDATE results SET active = 0"))
    session.execute(text("UPDATE teams SET active = 0"))
    session.commit()  # as before the twelve claims
    batch = ex.claim_batch(session, "r", 30, 12)
    assert [work["detail_id"] for work in batch] == [work["detail_id"] for work in in_turn]
    assert teams_of(session, batch) == ["light", "heavy", "heavy", "heavy"] * 3  # the older run first at a tie
    assert held(session, "heavy") == 9 and held(session, "light") == 3
    assert len({work["detail_id"] for work in batch}) == 12
    rows = session.execute(text("SELECT runner, attempt FROM details WHERE runner IS NOT NULL")).all()
    session.commit()
    assert len(rows) == 12 and set(rows) == {("r", 1)}


def test_a_batch_claim_keeps_max_running_and_parallelism_and_takes_the_rest_elsewhere(session):
    team(session, "capped", max_running=2)
    team(session, "other")
    run(session, "capped", times=10, priority=9)
    narrow = run(session, "other", times=10, parallelism=3)
    batch = ex.claim_batch(session, "r", 30, 32)
    assert sorted(teams_of(session, batch)) == ["capped"] * 2 + ["other"] * 3
    assert held(session, "capped") == 2
    assert session.get(Result, narrow).active == 3
    assert ex.claim_batch(session, "r", 30, 32) == []  # both at their limits


def test_a_batch_claim_takes_no_more_than_there_is_nor_more_than_it_asks(session):
    team(session, "a")
    run(session, "a", times=5)
    assert len(ex.claim_batch(session, "r", 30, 3)) == 3
    assert len(ex.claim_batch(session, "r", 30, 32)) == 2
    assert ex.claim_batch(session, "r", 30, 32) == []
    for count in (0, -4, "7", None, True):  # asked for oddly: one
        run(session, "a", times=2)
        assert len(ex.claim_batch(session, "r", 30, count)) == 1


def test_a_runner_with_free_gpus_is_given_one_execution_a_claim(session):
    team(session, "a")
    run(session, "a", times=4, gpus=1)
    first = ex.claim_batch(session, "g", 30, 4, gpu_ids=["0", "1"])
    assert len(first) == 1 and first[0]["gpu_ids"] == ["0"]
    assert ex.claim_batch(session, "g", 30, 4, gpu_ids=["1"])[0]["gpu_ids"] == ["1"]


def test_concurrent_batch_claims_never_pass_the_limits_nor_give_an_execution_twice(engine, session):
    team(session, "capped", max_running=9)
    team(session, "free")
    run(session, "capped", times=200)
    narrow = run(session, "free", times=300, parallelism=40)
    taken, errors = [], []

    def claimer(n):
        own = sessionmaker(bind=engine, expire_on_commit=False)()
        try:
            for _ in range(n):
                for work in ex.claim_batch(own, f"runner-{threading.get_ident()}", 30, 4):
                    taken.append((work["detail_id"], own.get(Result, work["result_id"]).team))
        except Exception as exc:  # noqa: BLE001 -- reported below
            errors.append(exc)
        finally:
            own.close()

    threads = [threading.Thread(target=claimer, args=(6,)) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert len({detail for detail, _ in taken}) == len(taken)
    teams_taken = [name for _, name in taken]
    assert teams_taken.count("capped") == 9 and teams_taken.count("free") == 40
    assert held(session, "capped") == 9 and held(session, "free") == 40
    assert session.get(Result, narrow).active == 40


def test_a_batch_claim_passes_over_executions_other_claims_hold(engine, session):
    team(session, "a")
    run(session, "a", times=6)
    other = sessionmaker(bind=engine)()
    locked = other.execute(text("SELECT id FROM details ORDER BY seq LIMIT 2 FOR UPDATE")).scalars().all()
    try:
        batch = ex.claim_batch(session, "r", 30, 6)
        assert len(batch) == 4 and not {work["detail_id"] for work in batch} & set(locked)
    finally:
        other.rollback()
        other.close()
