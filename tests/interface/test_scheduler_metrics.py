"""The scheduler's metrics on the real broker and database, scraped over HTTP from its own port."""
import time

import pytest
import requests
from nameko.standalone.events import event_dispatcher
from nameko.testing.services import entrypoint_waiter
from prometheus_client.parser import text_string_to_metric_families

from services.scheduler.service import SchedulerService
from tests.interface.test_scheduler_service import run_ready
from tests.support import call, free_port


@pytest.fixture
def scheduler(container_factory, service_config):
    port = free_port()
    container = container_factory(SchedulerService, {**service_config, "METRICS_PORT": port,
                                                          "RETRY_BACKOFF": 60})
    container.start()
    return container, f"http://127.0.0.1:{port}/metrics"


def run(container, **params):
    with entrypoint_waiter(container, "on_result_submitted"):
        return run_ready(container, {"operation": "RUN", **params})


def scrape(url):
    response = requests.get(url, timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(response.text) for s in family.samples}


def test_figures_follow_claims_parallelism_retries_and_cancels(scheduler, service_config):
    container, _ = scheduler
    limited = run(container, times=3, parallelism=2)
    other = run(container, times=2, retries=1)
    assert call(container, "execution_figures") == {
        "executions": {"QUEUED": 5, "RUNNING": 0, "COMPLETE": 0, "ERROR": 0, "CANCELLED": 0, "KILLED": 0},
        "queue_depth": 4}  # 2 of the limited run (its parallelism), 2 of the other

    depths = []
    for _ in range(3):
        work = call(container, "claim_execution", "runner-a")
        depths.append(call(container, "execution_figures")["queue_depth"])
    assert depths == [3, 2, 1]  # the limited run's third waits for a place, not counted
    assert work["result_id"] == other["result_id"]

    dispatch = event_dispatcher(service_config)
    report = {"detail_id": work["detail_id"], "attempt": 1, "runner": "runner-a"}
    with entrypoint_waiter(container, "on_execution_started"):
        dispatch("runner", "execution_started", {**report, "start": time.time(), "container_id": "c"})
    assert call(container, "execution_figures")["executions"]["RUNNING"] == 1
    with entrypoint_waiter(container, "on_execution_finished"):
        dispatch("runner", "execution_finished", {**report, "status": "ERROR", "exit_code": 1,
                                                  "reason": "exited with code 1", "end": time.time()})
    figures = call(container, "execution_figures")
    # queued again for its retry, but not claimable until its backoff (60 s here) ends
    assert figures["executions"]["QUEUED"] == 5 and figures["executions"]["ERROR"] == 0
    assert figures["queue_depth"] == 1

    call(container, "cancel_result", other["result_id"])
    figures = call(container, "execution_figures")
    assert figures["executions"]["CANCELLED"] == 2 and figures["executions"]["QUEUED"] == 3
    assert figures["queue_depth"] == 0


def test_its_own_endpoint_counts_what_it_folded(scheduler, service_config):
    container, url = scheduler
    before = scrape(url)
    assert before[("stevedore_executions_finished_total", (("status", "COMPLETE"),))] == 0
    assert before[("stevedore_execution_run_seconds_count", ())] == 0

    first = run(container, times=2)
    dispatch = event_dispatcher(service_config)
    work = call(container, "claim_execution", "runner-a")
    report = {"detail_id": work["detail_id"], "attempt": 1, "runner": "runner-a"}
    start = time.time()
    with entrypoint_waiter(container, "on_execution_started"):
        dispatch("runner", "execution_started", {**report, "start": start, "container_id": "c"})
    with entrypoint_waiter(container, "on_execution_finished"):
        dispatch("runner", "execution_finished", {**report, "status": "COMPLETE", "exit_code": 0,
                                                  "reason": None, "start": start, "end": start + 2.0})
    call(container, "cancel_result", first["result_id"])  # the other one never started
    second = run(container, times=1)
    details = call(container, "list_details", second["result_id"])
    call(container, "cancel_detail", second["result_id"], details[0]["detail_id"])

    after = scrape(url)
    assert after[("stevedore_executions_finished_total", (("status", "COMPLETE"),))] == 1
    assert after[("stevedore_executions_finished_total", (("status", "CANCELLED"),))] == 2
    assert after[("stevedore_execution_run_seconds_count", ())] == 1
    assert after[("stevedore_execution_run_seconds_sum", ())] == pytest.approx(2.0)
    assert after[("stevedore_execution_queue_wait_seconds_count", ())] == 1
    assert requests.get(url.replace("/metrics", "/nothing"), timeout=10).status_code == 404
