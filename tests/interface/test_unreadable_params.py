"""A stored run whose params PostgreSQL's JSON parser refuses (a lone surrogate escape, as an older version let
in) breaks no sweep for the others: forgotten webhooks are still sent, expired results still deleted."""
import json
import time

from nameko.testing.services import entrypoint_hook, entrypoint_waiter
from sqlalchemy import text, update

from services.scheduler import executions as ex
from services.scheduler import webhooks
from services.scheduler.models import Result
from tests.interface.test_result_retention import Session, finish_all, run  # noqa: F401 -- Session: a fixture
from tests.interface.test_scheduler_service import run_ready
from tests.interface.test_webhooks import start_scheduler, webhook_settled
from tests.support import ADMIN, WebhookReceiver, call

HOOK = "http://127.0.0.1:9/hook"
DAY = 86400


def store_unreadable(sql, result_id):
    """Rewrite the run's stored params as an older version could have: with a lone surrogate escape
    (``sql(statement, **params)`` runs one statement)."""
    params = json.loads(sql("SELECT params::text FROM results WHERE id = :id", id=result_id).scalar())
    params["env"] = {"BAD": "\ud800"}
    sql("UPDATE results SET params = CAST(:params AS json) WHERE id = :id", params=json.dumps(params), id=result_id)


def ended(session, end, **extra):
    result_id = run(session, times=1, **extra)
    finish_all(session, result_id, end=end)
    ex.mark_notified(session, result_id)
    return result_id


def test_the_sweeps_queries_answer_for_the_others_and_for_the_unreadable_rows_themselves(Session):
    with Session() as session:
        bad_plain, bad_hooked = ended(session, 100.0), ended(session, 100.0, callback_url=HOOK)
        plain, hooked = ended(session, 100.0), ended(session, 100.0, callback_url=HOOK)
        for result_id in (bad_plain, bad_hooked):
            store_unreadable(lambda statement, **params: session.execute(text(statement), params), result_id)
        session.commit()
        assert sorted(webhooks.forgotten(session, older_than=500.0)) == sorted([bad_hooked, hooked])
        assert sorted(ex.expired_results(session, ended_before=500.0)) == sorted([bad_plain, plain])
        session.execute(update(Result).where(Result.id == bad_hooked).values(webhook_status="FAILED"))
        session.commit()
        assert webhooks.forgotten(session, older_than=500.0) == [hooked]
        assert sorted(ex.expired_results(session, ended_before=500.0)) == sorted([bad_plain, bad_hooked, plain])
        ex.delete_result(session, bad_plain, expired=True)
        assert session.get(Result, bad_plain) is None


def test_with_an_unreadable_row_stored_a_forgotten_webhook_is_sent_and_expired_results_are_deleted(
        container_factory, service_config, sql):
    scheduler = start_scheduler(container_factory, service_config, WEBHOOK_ALLOW_NETWORKS="127.0.0.0/8",
                                RESULT_RETENTION_DAYS=1, RETENTION_SWEEP_INTERVAL=3600)
    with WebhookReceiver() as receiver:
        ids = {}
        for name, body in (("bad", {}), ("plain", {}), ("lost", {"callback_url": receiver.url})):
            with entrypoint_waiter(scheduler, "on_result_submitted"):
                ids[name] = run_ready(scheduler, {"operation": "RUN", "times": 1, **body})["result_id"]
            with entrypoint_waiter(scheduler, "on_result_finished", timeout=30):
                call(scheduler, "cancel_result", ids[name])
        assert webhook_settled(scheduler, ids["lost"])["status"] == "DELIVERED"
        store_unreadable(sql, ids["bad"])
        # all ended two days ago; "lost"'s webhook as if its result_finished event had been lost
        sql("UPDATE results SET \"end\" = :end, finished_notified = true WHERE id = ANY(:ids)",
            end=time.time() - 2 * DAY, ids=list(ids.values()))
        sql("UPDATE results SET webhook_status = NULL, webhook_deliveries = NULL WHERE id = :id", id=ids["lost"])

        with entrypoint_hook(scheduler, "delete_expired_results") as sweep:
            sweep()  # the lost webhook is not sent yet: its result is kept
        assert sql("SELECT id FROM results").scalars().all() == [ids["lost"]]
        with entrypoint_hook(scheduler, "deliver_forgotten_webhooks") as sweep:
            sweep()
        assert webhook_settled(scheduler, ids["lost"])["status"] == "DELIVERED"
        assert len(receiver.received) == 2
    with entrypoint_hook(scheduler, "delete_expired_results") as sweep:
        sweep()
    assert sql("SELECT count(*) FROM results").scalar() == 0


def test_a_rerun_of_a_run_with_a_callback_url_is_marked_as_having_one(Session):
    with Session() as session:
        failed = run(session, times=1, callback_url=HOOK)
        finish_all(session, failed, status="ERROR", end=100.0)
        plain = run(session, times=1)
        finish_all(session, plain, status="ERROR", end=100.0)
        reruns = [ex.rerun_failed(session, result_id, caller=ADMIN).id for result_id in (failed, plain)]
        assert [session.get(Result, result_id).has_callback for result_id in [failed, plain, *reruns]] == \
            [True, False, True, False]
