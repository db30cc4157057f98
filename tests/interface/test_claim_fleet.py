"""A runner claims only what its labels and free GPUs allow, against the real PostgreSQL; the runner list and
``unschedulable`` (services/scheduler/fleet.py)."""
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.orm import sessionmaker

from services.scheduler import executions as ex
from services.scheduler import fleet
from services.scheduler.models import Team
from shared import validation
from shared.db import psycopg2_url
from shared.messages import RunnerInfo


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


def test_only_a_runner_whose_labels_contain_the_constraints_claims_still_by_priority(session):
    eu = run(session, priority=9, constraints={"zone": "eu", "disk": "ssd"})
    plain = run(session, priority=1)
    assert ex.claim(session, "unlabelled", 30)["result_id"] == plain
    assert ex.claim(session, "us", 30, labels={"zone": "us", "disk": "ssd"}) is None
    assert ex.claim(session, "eu-hdd", 30, labels={"zone": "eu"}) is None
    work = ex.claim(session, "eu", 30, labels={"zone": "eu", "disk": "ssd", "gpu": "a100"})
    assert work["result_id"] == eu and work["gpu_ids"] is None


def test_a_gpu_run_is_claimed_only_with_enough_free_gpus_and_gets_the_first_of_them(session):
    two = run(session, gpus=2)
    assert ex.claim(session, "cpu-only", 30) is None
    assert ex.claim(session, "one-free", 30, gpu_ids=["3"]) is None
    work = ex.claim(session, "gpu", 30, gpu_ids=["1", "3", "0"])
    assert work["result_id"] == two and work["gpu_ids"] == ["1", "3"]
    stored = session.execute(text("SELECT gpu_ids FROM details WHERE id = :id"), {"id": work["detail_id"]}).scalar()
    assert stored == ["1", "3"]
    session.commit()


def test_unschedulable_is_said_while_no_live_runner_matches_and_cleared_by_the_claim(session):
    fleet.write(session, "eu", RunnerInfo(labels={"zone": "eu"}, slots=1, busy=0, gpus=["0"], gpus_free=1))
    waiting = run(session, constraints={"zone": "ap"})
    fine = run(session, constraints={"zone": "eu"}, gpus=1)
    assert fleet.place(session, 30) == 1
    reasons = dict(session.execute(text("SELECT id, unschedulable FROM results")).all())
    session.commit()
    assert reasons[fine] is None and reasons[waiting].startswith("no live runner has the labels zone=ap")
    assert ex.claim(session, "ap", 30, labels={"zone": "ap"})["result_id"] == waiting
    assert session.execute(text("SELECT unschedulable FROM results WHERE id = :id"), {"id": waiting}).scalar() is None
    session.commit()


def test_a_run_of_a_team_with_max_running_0_says_why_it_waits_until_the_quota_is_raised(session):
    fleet.write(session, "any", RunnerInfo(slots=1, busy=0))
    session.add(Team(name="held", weight=1.0, max_running=0, created_at=0.0))
    session.commit()
    params = validation.run_params({"operation": "RUN", "times": 1}, 10)
    held = ex.create_result(session, "t" * 32, "task", "img@sha256:1", params, with_details=True, team="held")[0].id
    other = run(session)
    assert ex.claim(session, "any", 30)["result_id"] == other  # the held team's work is never claimed
    assert fleet.place(session, 30) == 0  # it asks no labels nor GPUs: the team's pass says it
    assert fleet.hold_teams(session) == 1
    assert fleet.hold_teams(session) == 0  # said once
    assert unschedulable(session, held) == ("its team held has max_running 0: no execution of the team starts "
                                            "until an admin raises it (PATCH /team/held/)")
    assert unschedulable(session, other) is None
    session.execute(text("UPDATE teams SET max_running = 1 WHERE name = 'held'"))
    session.commit()
    assert fleet.hold_teams(session) == 1  # raised: the note goes, before any claim
    assert unschedulable(session, held) is None
    assert ex.claim(session, "any", 30)["result_id"] == held


def unschedulable(session, result_id):
    reason = session.execute(text("SELECT unschedulable FROM results WHERE id = :id"), {"id": result_id}).scalar()
    session.commit()
    return reason


def test_the_runner_list_tells_live_from_lost_and_forgets_the_long_silent(session):
    fleet.write(session, "a", RunnerInfo(labels={"zone": "eu"}, slots=2, busy=1, gpus=["0", "1"], gpus_free=1,
                                         engine="Docker 27"))
    fleet.write(session, "b", RunnerInfo(slots=1, busy=0))
    session.execute(text("UPDATE runners SET last_heartbeat = last_heartbeat - 100 WHERE id = 'b'"))
    session.commit()
    listed = {r["runner_id"]: r for r in fleet.list_runners(session, 30)}
    assert listed["a"]["status"] == "LIVE" and listed["a"]["free"] == 1 and listed["a"]["gpus"] == ["0", "1"]
    assert listed["b"]["status"] == "LOST"
    assert [r["runner_id"] for r in fleet.list_runners(session, 30, status="LOST")] == ["b"]
    assert [r["runner_id"] for r in fleet.list_runners(session, 30, limit=1, after="a")] == ["b"]
    assert fleet.forget_lost(session, 5) == 1  # silent for more than 60 s (ten leases of 5 s: at least 60)
    assert [r["runner_id"] for r in fleet.list_runners(session, 30)] == ["a"]
