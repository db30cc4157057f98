"""A RUN wakes as few idle runners as have free slots for its executions (and a spare slot), not every runner."""
import time
import uuid

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.support import started_system, wait_until

pytestmark = pytest.mark.e2e

RUNNERS = 4
SLOTS = 2


def claims(system):
    """{"work": n, "none": n}: the claims the scheduler answered so far."""
    text = requests.get(system.metrics_url("scheduler"), timeout=10).text
    return {sample.labels["outcome"]: sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples
            if sample.name == "stevedore_claims_total"}


def runner_claims(system):
    """{runner label: claims it made so far}, from each runner's own metrics."""
    made = {}
    for n in range(1, RUNNERS + 1):
        text = requests.get(system.metrics_url(f"runner-{n}"), timeout=10).text
        made[f"runner-{n}"] = sum(sample.value for family in text_string_to_metric_families(text)
                                  for sample in family.samples
                                  if sample.name == "stevedore_runner_claim_seconds_count")
    return made


def woken(before, after):
    return sorted(label for label in after if after[label] != before[label])


@pytest.fixture(scope="module")
def quiet_system(vhost_pipeline, request, test_images):
    """Four runners of two slots that poll only once in ten minutes: every claim after their first is a wake-up's
    (or a slot's that just finished an execution)."""
    with started_system(request, vhost_pipeline, "wake", {"RUNNER_POLL_INTERVAL": "600", "RUNNER_SLOTS": str(SLOTS)},
                        runners=RUNNERS) as running:
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


def test_one_execution_wakes_one_idle_runner_whose_two_free_slots_cover_it_and_a_spare(quiet_system):
    system = quiet_system
    before, made = settled(system), runner_claims(system)
    result_id = system.api.run(system.task["task_id"], times=1)
    assert system.api.wait_result(result_id, timeout=30)["status"] == "COMPLETE"  # well within a poll
    after = settled(system)
    assert after["work"] - before["work"] == 1
    # was two runners (one a spare), each of whose slots asked: one runner's two slots cover it now
    assert len(woken(made, runner_claims(system))) == 1, (made, runner_claims(system))


def test_a_run_of_three_wakes_the_two_runners_whose_free_slots_cover_it_not_every_runner(quiet_system):
    system = quiet_system
    settled(system)
    made = runner_claims(system)
    result_id = system.api.run(system.task["task_id"], times=3)
    assert system.api.wait_result(result_id, timeout=30)["status"] == "COMPLETE"  # no execution waited for a poll
    settled(system)
    ran = {detail["runner"] for detail in system.api.details(result_id)}
    woke = woken(made, runner_claims(system))
    # 3 executions and the spare: 4 free slots, two runners' (it was 3 + 1 runners: all four)
    assert len(woke) == 2, (made, runner_claims(system))
    assert ran <= {system.plan[label][1]["RUNNER_ID"] for label in woke}


def test_more_executions_than_known_free_slots_wake_every_runner(quiet_system):
    system = quiet_system
    settled(system)
    started = time.monotonic()
    result_id = system.api.run(system.task["task_id"], times=RUNNERS * SLOTS)
    result = system.api.wait_result(result_id, timeout=50)
    assert result["status"] == "COMPLETE" and time.monotonic() - started < 50  # no runner waited for its poll
    details = system.api.details(result_id)
    assert len({d["runner"] for d in details}) == RUNNERS, details
