"""Deleting ended results, by hand and by retention, against the real PostgreSQL."""
import pytest
from sqlalchemy import create_engine, func, select, update
from sqlalchemy.orm import sessionmaker

from services.scheduler import executions as ex
from services.scheduler.executions import submit
from services.scheduler.models import Detail, DetailLog, Result
from shared import validation
from shared.db import psycopg2_url
from shared.errors import Conflict, NotFound
from tests.support import ADMIN


@pytest.fixture
def Session(own_database_url):
    engine = create_engine(psycopg2_url(own_database_url))
    yield sessionmaker(bind=engine, expire_on_commit=False)
    engine.dispose()


def run(session, times=3, **extra):
    params = validation.run_params({"operation": "RUN", "times": times, **extra}, 100000)
    result, _ = ex.create_result(session, "t" * 32, "task", "img@sha256:1", params, with_details=True)
    return result.id


def finish_all(session, result_id, status="COMPLETE", end=2.0):
    """Every execution of the run claimed, then ended ``status`` with some output."""
    while True:
        work = ex.claim(session, "runner-1", 30)
        if work is None:
            return
        assert work["result_id"] == result_id
        ex.mark_finished(session, {"detail_id": work["detail_id"], "attempt": work["attempt"],
                                   "runner": "runner-1", "status": status,
                                   "exit_code": 0 if status == "COMPLETE" else 1, "reason": None,
                                   "start": end - 1, "end": end},
                         logs={"stdout": "out\n", "stdout_total": 4, "stderr": "", "stderr_total": 0})


def rows(session, result_id):
    details = session.scalar(select(func.count()).select_from(Detail).where(Detail.result_id == result_id))
    logs = session.scalar(select(func.count()).select_from(DetailLog).where(DetailLog.detail_id.in_(
        select(Detail.id).where(Detail.result_id == result_id))))
    return details, logs, session.get(Result, result_id) is not None


def test_an_ended_result_is_deleted_with_its_details_and_output_and_others_stay(Session):
    with Session() as session:
        kept = run(session)
        finish_all(session, kept)
        gone = run(session)
        finish_all(session, gone)
        assert rows(session, gone) == (3, 3, True)
        assert ex.delete_result(session, gone, caller=ADMIN) == "t" * 32
    with Session() as session:
        assert rows(session, gone) == (0, 0, False)
        assert rows(session, kept) == (3, 3, True)
        with pytest.raises(NotFound, match="no result"):
            ex.get_result(session, gone)
        with pytest.raises(NotFound, match="no result"):
            ex.delete_result(session, gone, caller=ADMIN)  # twice: the second finds nothing


def test_a_result_still_queued_or_running_is_not_deleted(Session):
    with Session() as session:
        result_id = run(session, times=2)
        with pytest.raises(Conflict, match="still QUEUED"):
            ex.delete_result(session, result_id, caller=ADMIN)
        work = ex.claim(session, "runner-1", 30)
        ex.mark_started(session, {"detail_id": work["detail_id"], "attempt": work["attempt"],
                                  "runner": "runner-1", "start": 1.0, "container_id": "c"})
        with pytest.raises(Conflict, match="still RUNNING"):
            ex.delete_result(session, result_id, caller=ADMIN)
    with Session() as session:
        assert rows(session, result_id) == (2, 0, True)


def test_a_deleted_rerun_leaves_its_original_and_the_original_forgets_it(Session):
    with Session() as session:
        original = run(session, times=2)
        finish_all(session, original, status="ERROR")
        rerun = ex.rerun_failed(session, original, caller=ADMIN).id
        assert ex.get_result(session, original).reruns == [rerun]
        ex.cancel_result(session, rerun, ADMIN)
        ex.delete_result(session, rerun, caller=ADMIN)
    with Session() as session:
        assert ex.get_result(session, original).reruns == []
        assert rows(session, original)[0] == 2


def test_a_result_rerun_rerun_max_times_refuses_another_rerun_with_a_409_naming_reruns(Session):
    with Session() as session:
        original = run(session, times=2)
        finish_all(session, original, status="ERROR")
        made = []
        for _ in range(2):
            made.append(ex.rerun_failed(session, original, caller=ADMIN, most=2).id)
            ex.cancel_result(session, made[-1], ADMIN)
        with pytest.raises(Conflict, match="rerun 2 times already") as refused:
            ex.rerun_failed(session, original, caller=ADMIN, most=2)
        assert refused.value.field == "reruns"
    with Session() as session:
        assert ex.get_result(session, original).reruns == made
        assert session.scalar(select(func.count()).select_from(Result).where(Result.rerun_of == original)) == 2


def test_late_reports_of_a_deleted_run_are_dropped(Session):
    with Session() as session:
        result_id = run(session, times=1)
        work = ex.claim(session, "runner-1", 30)
        report = {"detail_id": work["detail_id"], "attempt": work["attempt"], "runner": "runner-1",
                  "status": "COMPLETE", "exit_code": 0, "reason": None, "start": 1.0, "end": 2.0}
        ex.mark_finished(session, report)
        ex.delete_result(session, result_id, caller=ADMIN)
        assert ex.mark_finished(session, report) == (None, None)  # redelivered: nothing to fold
        assert ex.mark_started(session, {**report, "container_id": "c"}) == (None, None)
        ex.store_live_logs(session, {"detail_id": work["detail_id"], "attempt": work["attempt"],
                                     "logs": {"stdout": "late", "stdout_total": 4}})
        assert ex.renew_leases(session, "runner-1", [work["detail_id"]], 30) == [work["detail_id"]]
        assert session.scalar(select(func.count()).select_from(DetailLog)) == 0


def test_retention_finds_only_results_that_ended_before_the_cutoff_and_were_announced(Session):
    with Session() as session:
        ended = {}
        for name, end in (("old", 100.0), ("recent", 900.0), ("unannounced", 100.0), ("webhook_due", 100.0)):
            ended[name] = run(session, times=1)
            finish_all(session, ended[name], end=end)
        old, recent, webhook_due = ended["old"], ended["recent"], ended["webhook_due"]
        running = run(session, times=1)
        for result_id in (old, recent, webhook_due):
            ex.mark_notified(session, result_id)
        # a webhook still to be delivered, and one whose event was lost (never tried)
        session.execute(update(Result).where(Result.id == webhook_due).values(webhook_status="PENDING"))
        session.commit()
        assert ex.expired_results(session, ended_before=500.0) == [old]
        session.execute(update(Result).where(Result.id == webhook_due).values(webhook_status="FAILED"))
        session.commit()
        assert sorted(ex.expired_results(session, ended_before=500.0)) == sorted([old, webhook_due])
        assert sorted(ex.expired_results(session, ended_before=1000.0)) == sorted([old, recent, webhook_due])
        assert ex.get_result(session, running).status == "QUEUED"  # never a run still going


def test_retention_keeps_a_result_whose_webhook_was_never_tried(Session):
    with Session() as session:
        result_id = run(session, times=1, callback_url="http://127.0.0.1:9/hook")
        finish_all(session, result_id, end=100.0)
        ex.mark_notified(session, result_id)
        assert ex.expired_results(session, ended_before=500.0) == []
        session.execute(update(Result).where(Result.id == result_id).values(webhook_status="DELIVERED"))
        session.commit()
        assert ex.expired_results(session, ended_before=500.0) == [result_id]


def test_a_rerun_whose_original_is_deleted_meanwhile_stands_on_its_own(Session, monkeypatch):
    with Session() as session:
        original = run(session, times=2)
        finish_all(session, original, status="ERROR")
    make = ex.create_result

    def made_then_original_deleted(*args, **kwargs):
        made = make(*args, **kwargs)
        with Session() as other:  # a DELETE of the original lands once the rerun is made
            ex.delete_result(other, original, caller=ADMIN)
        return made

    monkeypatch.setattr(submit, "create_result", made_then_original_deleted)
    with Session() as session:
        rerun = ex.rerun_failed(session, original, caller=ADMIN)
    with Session() as session:
        row = ex.get_result(session, rerun.id)
        assert row.rerun_of == original and row.times == 2 and row.status == "QUEUED"
        with pytest.raises(NotFound):
            ex.get_result(session, original)


def test_a_webhook_whose_result_was_deleted_after_it_was_taken_is_dropped(Session, monkeypatch):
    from services.scheduler import webhooks

    with Session() as session:
        result_id = run(session, times=1, callback_url="http://127.0.0.1:9/hook")
        finish_all(session, result_id, end=100.0)
    take = webhooks.claim

    def taken_then_deleted(session, rid, hold_for):
        taken = take(session, rid, hold_for)
        with Session() as other:  # a DELETE lands between the claim and the read
            ex.delete_result(other, rid, caller=ADMIN)
        return taken

    monkeypatch.setattr(webhooks, "claim", taken_then_deleted)
    sender = type("Sender", (), {"timeout": 1, "secret": "s", "attempts": 5, "base": 1, "cap": 10,
                                 "has_room": lambda self: True,
                                 "spawn": lambda *a: pytest.fail("nothing is sent for a deleted result"),
                                 "post": lambda *a: pytest.fail("nothing is sent for a deleted result")})()
    with Session() as session:
        assert webhooks.attempt(session, sender, result_id) is False
