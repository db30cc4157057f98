"""A busy slot's next execution prepared ahead (services/runner/ahead.py), on real runners and a real engine:
every execution runs exactly once, a prepared one shows QUEUED until its container really starts, a cancel of
one ends it CANCELLED with no container left, and one past its bound is handed back and run elsewhere."""
import itertools
import re
import time
import uuid

import pytest
import requests

from tests.faults.checks import assert_truthful, wait_running
from tests.support import containers_of, started_system, wait_until

pytestmark = pytest.mark.e2e

BOUND = 8  # RUNNER_PREPARE_AHEAD_SECONDS here: long enough to see a prepared execution, short enough to wait out


@pytest.fixture(scope="module")
def ahead_system(vhost_pipeline, request, test_images, docker_client):
    """Two runners of one slot, the second not started (``runner-2``: a test starts it)."""
    with started_system(request, vhost_pipeline, "ahead", {"RUNNER_PREPARE_AHEAD_SECONDS": str(BOUND),
                                                           "RPC_TIMEOUT": "10"},
                        runners=2, start=("gateway", "registry", "scheduler", "runner-1"),
                        docker_client=docker_client) as running:
        running.tasks = {behaviour: running.api.register(
            test_images[behaviour], name=f"a-{behaviour}-{uuid.uuid4().hex[:6]}")
            for behaviour in ("ok", "sleep")}
        yield running


def prepared(system, label, outcome):
    """How many executions runner ``label`` prepared ahead that ended ``outcome`` (its metrics)."""
    body = requests.get(system.metrics_url(label), timeout=10).text
    found = re.search(rf'^stevedore_runner_prepared_total{{outcome="{outcome}"}} (\S+)$', body, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def run_items(api, task_id, sleeps):
    response = api.post(f"/task/{task_id}/", {"operation": "RUN", "times": len(sleeps),
                                              "items": [{"env": {"SLEEP": str(s)}} for s in sleeps]})
    assert response.status_code == 202, response.text
    return response.json()["result_id"]


def claimed_ahead(api, result_id, index):
    """The execution ``index`` once a runner holds it without having started it (QUEUED, a runner named)."""
    def held():
        [detail] = [d for d in api.details(result_id) if d["index"] == index]
        return detail if detail["status"] == "QUEUED" and detail["runner"] else None

    return wait_until(held, timeout=30, interval=0.1, what=f"execution {index} to be claimed ahead")


def test_a_run_of_short_executions_on_one_slot_runs_each_once_at_its_real_start(ahead_system, docker_client):
    api = ahead_system.api
    before = prepared(ahead_system, "runner-1", "started")
    since = time.time()
    result_id = api.run(ahead_system.tasks["ok"]["task_id"], times=12)
    details = assert_truthful(api, docker_client, result_id, times=12, since=since)
    assert all(d["status"] == "COMPLETE" and d["attempt"] == 1 for d in details)
    # one slot: each execution's start is its container's, after the one before ended (none reported at create)
    ordered = sorted(details, key=lambda d: d["start"])
    for earlier, later in itertools.pairwise(ordered):
        assert later["start"] >= earlier["end"] - 0.05, (earlier, later)
    # the first one's end told the runner how long they take: most of the others were prepared ahead
    assert prepared(ahead_system, "runner-1", "started") - before >= 6


def test_a_prepared_execution_cancelled_ends_cancelled_with_no_container_left(ahead_system, docker_client):
    api = ahead_system.api
    result_id = run_items(api, ahead_system.tasks["sleep"]["task_id"], [0, 60, 0])
    wait_running(api, result_id)
    waiting = claimed_ahead(api, result_id, 2)
    assert waiting["start"] is None  # held, not running: QUEUED in the API, no start time
    [container] = [c for c in containers_of(docker_client, result_id)
                   if c.attrs["Labels"]["stevedore.detail_id"] == waiting["detail_id"]]
    assert docker_client.containers.get(container.id).status == "created"

    path = f"/result/{result_id}/detail/{waiting['detail_id']}/"
    assert api.post(path, {"operation": "CANCEL"}).status_code == 202
    cancelled = wait_until(lambda: (d := api.get(path).json())["status"] == "CANCELLED" and d, timeout=BOUND,
                           what="the prepared execution to end CANCELLED")
    assert cancelled["start"] is None and cancelled["reason"] == "cancelled before it started"
    wait_until(lambda: not [c for c in containers_of(docker_client, result_id)
                            if c.attrs["Labels"]["stevedore.detail_id"] == waiting["detail_id"]],
               timeout=15, what="its container to be removed")
    [running] = [d for d in api.details(result_id) if d["index"] == 1]
    assert running["status"] == "RUNNING"  # the slot's own execution goes on

    api.post(f"/result/{result_id}/", {"operation": "CANCEL"})
    assert api.wait_result(result_id, timeout=30)["counts"]["CANCELLED"] == 1
    wait_until(lambda: not containers_of(docker_client, result_id), timeout=15, what="no container left")


def test_a_prepared_execution_past_its_bound_is_handed_back_and_run_by_another_runner(ahead_system,
                                                                                      docker_client):
    api = ahead_system.api
    before = prepared(ahead_system, "runner-1", "handed_back")
    since = time.time()
    result_id = run_items(api, ahead_system.tasks["sleep"]["task_id"], [0, 60, 0])
    wait_running(api, result_id)
    claimed_ahead(api, result_id, 2)
    ahead_system.start("runner-2")  # idle: it takes what runner-1 hands back
    other = ahead_system.plan["runner-2"][1]["RUNNER_ID"]

    def ran_elsewhere():
        [detail] = [d for d in api.details(result_id) if d["index"] == 2]
        return detail if detail["status"] == "COMPLETE" else None

    moved = wait_until(ran_elsewhere, timeout=BOUND + 40, what="the handed-back execution to complete")
    assert moved["runner"] == other and moved["attempt"] == 1  # handed back unspent, run once
    [slow] = [d for d in api.details(result_id) if d["index"] == 1]
    assert slow["status"] == "RUNNING"  # not held hostage until runner-1's slot freed
    assert prepared(ahead_system, "runner-1", "handed_back") - before == 1
    assert "handed back execution" in ahead_system.log("scheduler")

    api.post(f"/result/{result_id}/", {"operation": "CANCEL"})
    details = assert_truthful(api, docker_client, result_id, times=3, since=since)
    assert sorted(d["status"] for d in details) == ["COMPLETE", "COMPLETE", "KILLED"]
