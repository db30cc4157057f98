"""Prometheus metrics scraped over HTTP from the real processes while real tasks run."""
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.support import wait_until

pytestmark = pytest.mark.e2e

RUNNERS = ("runner-1", "runner-2")


def parse(text):
    """{(sample name, frozenset of labels): value} of a Prometheus text exposition."""
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def scrape(url, **kwargs):
    response = requests.get(url, timeout=10, **kwargs)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/plain")
    return parse(response.text)


def cluster(system):
    """The gateway's /metrics, with the API token as Prometheus would send it."""
    return scrape(system.url + "/metrics", headers={"Authorization": f"Bearer {system.token}"})


def own(system, label):
    return scrape(system.metrics_url(label))


def value(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())), 0.0)


def executions(samples, status):
    return value(samples, "stevedore_executions", status=status)


def slots(system):
    """{runner id: (busy, free)} as each runner serves it itself."""
    found = {}
    for label in RUNNERS:
        runner_id = system.plan[label][1]["RUNNER_ID"]
        samples = own(system, label)
        found[runner_id] = (value(samples, "stevedore_runner_slots_busy", runner=runner_id),
                            value(samples, "stevedore_runner_slots_free", runner=runner_id))
    return found


def quiet(system):
    """Wait until nothing is queued or running, so the deltas below are this test's alone."""
    def idle():
        samples = cluster(system)
        return executions(samples, "QUEUED") == 0 and executions(samples, "RUNNING") == 0 and samples

    return wait_until(idle, timeout=90, interval=0.5, what="no execution queued or running")


def test_gateway_metrics_need_the_api_token(system):
    response = requests.get(system.url + "/metrics", timeout=10)
    assert response.status_code == 401
    assert response.json()["error"] == "UNAUTHORIZED"


def test_runs_show_in_the_cluster_figures_and_each_process_metrics(system, api, ready_tasks):
    task = ready_tasks["ok"]
    before = quiet(system)
    scheduler_before = own(system, "scheduler")

    runs = 4
    result = api.wait_result(api.run(task["task_id"], times=runs))
    assert result["status"] == "COMPLETE", [d["reason"] for d in api.details(result["result_id"])]

    after = wait_until(lambda: (lambda s: executions(s, "COMPLETE") >= executions(before, "COMPLETE") + runs
                                and s)(cluster(system)), timeout=10, what="the COMPLETE gauge to move")
    assert executions(after, "COMPLETE") - executions(before, "COMPLETE") == runs
    assert executions(after, "QUEUED") == 0 and executions(after, "RUNNING") == 0
    assert value(after, "stevedore_queue_depth") == 0

    scheduler = own(system, "scheduler")
    for name, labels in (("stevedore_executions_finished_total", {"status": "COMPLETE"}),
                         ("stevedore_execution_run_seconds_count", {}),
                         ("stevedore_execution_queue_wait_seconds_count", {})):
        grew = value(scheduler, name, **labels) - value(scheduler_before, name, **labels)
        assert grew == runs, (name, grew)
    assert value(scheduler, "stevedore_executions_finished_total", status="ERROR") == \
        value(scheduler_before, "stevedore_executions_finished_total", status="ERROR")
    # every run of "ok" takes well under a minute: all in the 60 s bucket, none over
    ran_in_a_minute = value(scheduler, "stevedore_execution_run_seconds_bucket", le="60.0") - \
        value(scheduler_before, "stevedore_execution_run_seconds_bucket", le="60.0")
    assert ran_in_a_minute == runs

    for runner_id, (busy, free) in slots(system).items():
        assert (busy, free) == (0, 1), runner_id  # RUNNER_SLOTS is 1; nothing runs now


def test_a_failing_run_counts_as_error(system, api, ready_tasks):
    quiet(system)
    scheduler_before = own(system, "scheduler")
    result = api.wait_result(api.run(ready_tasks["fail"]["task_id"], times=2))
    assert result["status"] == "ERROR", result
    scheduler = own(system, "scheduler")
    errors = value(scheduler, "stevedore_executions_finished_total", status="ERROR") - \
        value(scheduler_before, "stevedore_executions_finished_total", status="ERROR")
    assert errors == 2


def test_busy_slots_and_queue_depth_while_executions_wait(system, api, ready_tasks):
    quiet(system)
    # three 4 s executions, two runners of one slot: two run while the third waits
    result_id = api.run(ready_tasks["sleep"]["task_id"], times=3, env={"SLEEP": "4"})

    def two_busy_one_waiting():
        busy = sum(b for b, _ in slots(system).values())
        depth = value(cluster(system), "stevedore_queue_depth")
        return (busy, depth) == (2, 1) and (busy, depth)

    wait_until(two_busy_one_waiting, timeout=30, interval=0.2, what="both slots busy and one execution queued")
    for busy, free in slots(system).values():
        assert (busy, free) == (1, 0)

    assert api.wait_result(result_id)["status"] == "COMPLETE"
    after = quiet(system)
    assert value(after, "stevedore_queue_depth") == 0
    wait_until(lambda: all(s == (0, 1) for s in slots(system).values()), timeout=10,
               what="both slots free again")


def test_registering_a_task_times_its_pull_in_the_registry(system, api, test_images):
    def pulls(samples):
        return value(samples, "stevedore_image_pull_seconds_count", where="registry", outcome="ok")

    before = pulls(own(system, "registry"))
    task = api.register(test_images["env"], name="metrics-pull")
    assert task["status"] == "READY", task
    assert pulls(own(system, "registry")) - before == 1


def test_a_runner_times_the_pull_of_an_image_its_engine_lacks(system, api, test_images, docker_client):
    def pulls(label):
        return value(own(system, label), "stevedore_image_pull_seconds_count", where="runner", outcome="ok")

    task = api.register(test_images["ok"], name="metrics-runner-pull")
    assert task["status"] == "READY", task
    before = {label: pulls(label) for label in RUNNERS}
    docker_client.images.remove(task["digest"], noprune=True)  # our reference only; shared layers stay
    result = api.wait_result(api.run(task["task_id"]))
    assert result["status"] == "COMPLETE", [d["reason"] for d in api.details(result["result_id"])]
    labels = {system.plan[label][1]["RUNNER_ID"]: label for label in RUNNERS}
    ran_on = labels[api.details(result["result_id"])[0]["runner"]]
    assert pulls(ran_on) - before[ran_on] == 1


def test_each_runner_on_the_host_serves_its_own_metrics(system):
    ports = {system.plan[label][1]["METRICS_PORT"] for label in ("registry", "scheduler") + RUNNERS}
    assert len(ports) == 4  # one port per process on this one host
    found = slots(system)
    assert set(found) == {system.plan[label][1]["RUNNER_ID"] for label in RUNNERS}
    for busy, free in found.values():
        assert busy + free == 1
    # a process serves only its own metrics: no runner gauges at the scheduler
    assert not any(name.startswith("stevedore_runner_") for name, _ in own(system, "scheduler"))
