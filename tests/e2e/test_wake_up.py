"""A RUN wakes as many idle runners as it has executions (and a spare), not every runner."""
import time
import uuid

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.support import started_system, wait_until

pytestmark = pytest.mark.e2e

RUNNERS = 4


def claims(system):
    """{"work": n, "none": n}: the claims the scheduler answered so far."""
    text = requests.get(system.metrics_url("scheduler"), timeout=10).text
    return {sample.labels["outcome"]: sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples
            if sample.name == "stevedore_claims_total"}


@pytest.fixture(scope="module")
def quiet_system(vhost_pipeline, request, test_images):
    """Four runners that poll only once a minute: every claim after their first is a wake-up's."""
    with started_system(request, vhost_pipeline, "wake", {"RUNNER_POLL_INTERVAL": "60"}, runners=RUNNERS) as running:
        running.task = running.api.register(test_images["ok"], name=f"wake-{uuid.uuid4().hex[:6]}")
        yield running


def settled(system):
    """Claims once every runner has asked, found nothing, and waits (none in flight)."""
    wait_until(lambda: claims(system).get("none", 0) >= RUNNERS, timeout=60, what="every runner to ask once")
    last = claims(system)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        time.sleep(1.0)
        now = claims(system)
        if now == last:
            return now
        last = now
    raise AssertionError(f"claims never settled: {last}")


def test_one_execution_wakes_one_idle_runner_and_a_spare(quiet_system):
    system = quiet_system
    before = settled(system)
    result_id = system.api.run(system.task["task_id"], times=1)
    assert system.api.wait_result(result_id, timeout=30)["status"] == "COMPLETE"  # well within a poll
    after = settled(system)
    # the runner that ran it asks again once done (nothing left); the spare found nothing at once
    assert after["work"] - before["work"] == 1
    assert after["none"] - before["none"] == 2, (before, after)  # was 4: every idle runner claimed


def test_more_executions_than_known_idle_runners_wake_every_runner(quiet_system):
    system = quiet_system
    settled(system)
    started = time.monotonic()
    result_id = system.api.run(system.task["task_id"], times=RUNNERS * 2)
    result = system.api.wait_result(result_id, timeout=50)
    assert result["status"] == "COMPLETE" and time.monotonic() - started < 50  # no runner waited for its poll
    details = system.api.details(result_id)
    assert len({d["runner"] for d in details}) == RUNNERS, details
