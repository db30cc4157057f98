"""The scheduler's recovery RPCs and rules, alone on the real broker and database."""
import time

import pytest
from nameko.standalone.events import event_dispatcher
from nameko.testing.services import entrypoint_waiter

from sqlalchemy import create_engine, text

from services.scheduler import service
from services.scheduler.executions import claims, reports
from services.scheduler.recovery import BackboneWatch
from services.scheduler.service import SchedulerService
from tests.interface.test_scheduler_service import run_ready
from tests.support import call


@pytest.fixture
def scheduler(container_factory, service_config):
    container = container_factory(SchedulerService, {**service_config, "RETRY_BACKOFF": 0.01})
    container.start()
    return container


def run(container, **params):
    with entrypoint_waiter(container, "on_result_submitted"):
        return run_ready(container, {"operation": "RUN", **params})["result_id"]


def test_a_claim_handed_back_returns_to_the_queue_with_its_attempt_unspent(scheduler):
    result_id = run(scheduler, times=1)
    work = call(scheduler, "claim_execution", "runner-a")
    [held] = call(scheduler, "runner_holdings", "runner-a")
    assert (held["detail_id"], held["attempt"], held["status"]) == (work["detail_id"], 1, "QUEUED")
    assert held["image"] == work["image"] and held["result_id"] == result_id
    # whose run it is, for the events the runner sends about it (a restarted runner's too)
    assert (work["team"], work["submitted_by"]) == (held["team"], held["submitted_by"]) == ("default", "admin")

    assert call(scheduler, "release_claim", "runner-b", work["detail_id"], 1) is False  # not its claim
    assert call(scheduler, "release_claim", "runner-a", work["detail_id"], 1) is True
    assert call(scheduler, "release_claim", "runner-a", work["detail_id"], 1) is False  # only once
    [detail] = call(scheduler, "list_details", result_id)
    assert (detail["status"], detail["runner"], detail["attempt"]) == ("QUEUED", None, 0)
    assert call(scheduler, "runner_holdings", "runner-a") == []

    again = call(scheduler, "claim_execution", "runner-b")
    assert again["detail_id"] == work["detail_id"] and again["attempt"] == 1


def test_a_claim_handed_back_after_its_run_was_cancelled_ends_cancelled(scheduler):
    result_id = run(scheduler, times=1)
    work = call(scheduler, "claim_execution", "runner-a")
    call(scheduler, "cancel_result", result_id)
    assert call(scheduler, "get_result", result_id)["status"] not in ("CANCELLED", "KILLED")

    assert call(scheduler, "release_claim", "runner-a", work["detail_id"], 1) is True
    [detail] = call(scheduler, "list_details", result_id)
    assert (detail["status"], detail["reason"]) == ("CANCELLED", "cancelled before it started")
    result = call(scheduler, "get_result", result_id)
    assert result["status"] == "CANCELLED" and result["counts"]["CANCELLED"] == 1


def test_execution_states_tell_only_what_this_scheduler_knows(scheduler):
    result_id = run(scheduler, times=1)
    work = call(scheduler, "claim_execution", "runner-a")
    states = call(scheduler, "execution_states", [work["detail_id"], "f" * 32, 42])
    assert states == {work["detail_id"]: {"attempt": 1, "runner": "runner-a", "status": "QUEUED"}}
    assert result_id


def test_a_late_report_of_an_attempt_already_retried_changes_nothing(scheduler, service_config):
    result_id = run(scheduler, times=1, retries=2)
    work = call(scheduler, "claim_execution", "runner-a")
    report = {"detail_id": work["detail_id"], "attempt": 1, "runner": "runner-a", "status": "ERROR",
              "exit_code": 1, "reason": "exited with code 1", "start": 5.0, "end": 6.0}
    dispatch = event_dispatcher(service_config)
    for _ in range(2):  # the second is the same report, delivered again after the retry was queued
        with entrypoint_waiter(scheduler, "on_execution_finished"):
            dispatch("runner", "execution_finished", report)
    [detail] = call(scheduler, "list_details", result_id)
    assert detail["status"] == "QUEUED" and detail["runner"] is None
    assert [a["attempt"] for a in detail["attempts"]] == [1]
    result = call(scheduler, "get_result", result_id)
    assert result["counts"]["ERROR"] == 0 and result["counts"]["QUEUED"] == 1


def sql(url, query, **params):
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            rows = connection.execute(text(query), params)
            return rows.all() if rows.returns_rows else None
    finally:
        engine.dispose()


def test_leases_run_on_the_database_clock_not_the_scheduler_hosts(
        container_factory, service_config, monkeypatch):
    scheduler = container_factory(SchedulerService, service_config)  # LEASE_SECONDS 30
    scheduler.start()
    backbone = next(e for e in scheduler.extensions if isinstance(e, BackboneWatch)).backbone
    monkeypatch.setattr(backbone, "trusted_for", lambda seconds: True)  # no 30 s of probes first
    url = service_config["DB_URIS"]["scheduler:Base"]
    result_id = run(scheduler, times=1)
    work = call(scheduler, "claim_execution", "runner-a")

    def lease_left():
        [(left,)] = sql(url, "SELECT lease_expires_at - extract(epoch FROM clock_timestamp()) "
                             "FROM details WHERE id = :id", id=work["detail_id"])
        return left

    assert 25 < lease_left() <= 30
    # this host's wall clock steps an hour ahead: the lease still has its 30 s
    ahead = time.time() + 3600
    for module in (claims, reports, service):
        monkeypatch.setattr(module, "now", lambda: round(ahead, 6))
    call(scheduler, "sweep")
    [detail] = call(scheduler, "list_details", result_id)
    assert (detail["status"], detail["runner"]) == ("QUEUED", "runner-a")
    # ... and an hour behind: a heartbeat renews it to 30 s from the database's now
    behind = time.time() - 3600
    for module in (claims, reports):
        monkeypatch.setattr(module, "now", lambda: round(behind, 6))
    sql(url, "UPDATE details SET lease_expires_at = lease_expires_at - 20 WHERE id = :id",
        id=work["detail_id"])
    assert call(scheduler, "heartbeat", "runner-a", [work["detail_id"]]) == []
    assert 25 < lease_left() <= 30
    # a lease past its end by the database's clock is expired, whatever this host says
    sql(url, "UPDATE details SET lease_expires_at = extract(epoch FROM clock_timestamp()) - 1 "
             "WHERE id = :id", id=work["detail_id"])
    call(scheduler, "sweep")
    [detail] = call(scheduler, "list_details", result_id)
    assert detail["status"] == "ERROR" and "runner runner-a was lost" in detail["reason"]


def test_claims_carry_this_installations_id_for_the_container_labels(scheduler, service_config):
    [(installation,)] = sql(service_config["DB_URIS"]["scheduler:Base"], "SELECT id FROM installation")
    run(scheduler, times=1)
    work = call(scheduler, "claim_execution", "runner-a")
    assert work["installation"] == installation == call(scheduler, "installation_id")
    assert len(installation) == 32
