"""How each metric is computed, on a registry of its own (no broker, no HTTP)."""
from collections import deque
from contextlib import contextmanager
from types import SimpleNamespace

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from services.gateway.auth import is_public
from services.runner.dependencies import Executor
from tests.unit.test_runner_pull import FakeClient
from services.runner.metrics import RunnerMetrics, _SlotCollector, slot_usage
from services.scheduler.metrics import SchedulerMetrics, _Totals, attempt_run_time, queue_wait
from services.scheduler.executions.state import counts
from shared.metrics import PullMetrics, cluster_exposition
from shared.settings import GatewaySettings, parse
from stevedore_jobs.host import plan


def detail(start=None, submitted_at=100.0, attempt=1, not_before=None, status="RUNNING", attempts=()):
    return SimpleNamespace(start=start, submitted_at=submitted_at, attempt=attempt, not_before=not_before,
                           status=status, attempts=list(attempts))


def declared(metrics_type):
    metrics, registry = metrics_type(), CollectorRegistry()
    metrics.declare(registry)
    return metrics, registry


# ---------------------------------------------------------------- scheduler

def test_queue_wait_of_a_first_attempt_is_from_submission():
    assert queue_wait(detail(start=107.5)) == 7.5


def test_queue_wait_of_a_retry_is_from_the_end_of_its_backoff():
    assert queue_wait(detail(start=250.0, attempt=2, not_before=240.0)) == 10.0


def test_queue_wait_is_none_before_a_start_and_never_negative():
    assert queue_wait(detail(start=None)) is None
    assert queue_wait(detail(start=99.0)) == 0.0  # the engine's clock a hair behind ours


def test_run_time_is_that_of_the_attempt_just_folded():
    folded = detail(attempts=[{"start": 1.0, "end": 4.0}, {"start": 10.0, "end": 12.5}])
    assert attempt_run_time(folded) == 2.5
    assert attempt_run_time(detail(attempts=[{"start": None, "end": 5.0}])) is None
    assert attempt_run_time(detail()) is None


def test_every_final_status_is_served_from_the_start_at_zero():
    _, registry = declared(SchedulerMetrics)
    for status in ("COMPLETE", "ERROR", "CANCELLED", "KILLED"):
        assert registry.get_sample_value("stevedore_executions_finished_total", {"status": status}) == 0


def test_a_finished_attempt_counts_its_run_time_and_its_end():
    metrics, registry = declared(SchedulerMetrics)
    metrics.attempt_finished(detail(status="COMPLETE", attempts=[{"start": 1.0, "end": 3.0}]))
    assert registry.get_sample_value("stevedore_executions_finished_total", {"status": "COMPLETE"}) == 1
    assert registry.get_sample_value("stevedore_execution_run_seconds_count") == 1
    assert registry.get_sample_value("stevedore_execution_run_seconds_sum") == 2.0
    assert registry.get_sample_value("stevedore_execution_run_seconds_bucket", {"le": "2.5"}) == 1
    assert registry.get_sample_value("stevedore_execution_run_seconds_bucket", {"le": "1.0"}) == 0


def test_an_attempt_to_be_retried_ran_but_did_not_finish_the_execution():
    metrics, registry = declared(SchedulerMetrics)
    metrics.attempt_finished(detail(status="QUEUED", attempts=[{"start": 1.0, "end": 2.0}]))
    assert registry.get_sample_value("stevedore_execution_run_seconds_count") == 1
    assert registry.get_sample_value("stevedore_executions_finished_total", {"status": "ERROR"}) == 0


def test_an_execution_lost_before_it_started_finishes_without_a_run_time():
    metrics, registry = declared(SchedulerMetrics)
    metrics.attempt_finished(detail(status="ERROR", attempts=[{"start": None, "end": 2.0}]))
    assert registry.get_sample_value("stevedore_execution_run_seconds_count") == 0
    assert registry.get_sample_value("stevedore_executions_finished_total", {"status": "ERROR"}) == 1


def test_starts_observe_the_queue_wait_and_cancels_count_as_finished():
    metrics, registry = declared(SchedulerMetrics)
    metrics.execution_started(detail(start=103.0))
    metrics.execution_started(detail(start=None))  # nothing to observe
    metrics.executions_cancelled(3)
    metrics.executions_cancelled(0)
    assert registry.get_sample_value("stevedore_execution_queue_wait_seconds_count") == 1
    assert registry.get_sample_value("stevedore_execution_queue_wait_seconds_sum") == 3.0
    assert registry.get_sample_value("stevedore_executions_finished_total", {"status": "CANCELLED"}) == 3


def test_summed_result_counters_give_the_executions_by_status():
    totals = _Totals(times=20, n_running=2, n_complete=10, n_error=3, n_cancelled=1, n_killed=1)
    assert counts(totals) == {"QUEUED": 3, "RUNNING": 2, "COMPLETE": 10, "ERROR": 3,
                              "CANCELLED": 1, "KILLED": 1}


def test_cluster_figures_are_one_gauge_per_status_and_the_queue_depth():
    body, content_type = cluster_exposition({"executions": {"QUEUED": 4, "COMPLETE": 9}, "queue_depth": 2})
    assert content_type.startswith("text/plain; version=0.0.4")
    families = {f.name: f for f in text_string_to_metric_families(body.decode())}
    assert families["stevedore_executions"].type == "gauge"
    by_status = {s.labels["status"]: s.value for s in families["stevedore_executions"].samples}
    assert by_status == {"QUEUED": 4, "RUNNING": 0, "COMPLETE": 9, "ERROR": 0, "CANCELLED": 0, "KILLED": 0}
    assert [s.value for s in families["stevedore_queue_depth"].samples] == [2]


# ---------------------------------------------------------------- runner and pulls

def holdings(held=0, adopted=0, runner_id="host-runner-1", prepared=0):
    return SimpleNamespace(held={f"d{n}": {} for n in range(held)}, adoptions=deque(range(adopted)),
                           runner_id=runner_id, prepared={f"d{n}" for n in range(prepared)})


@pytest.mark.parametrize("held, adopted, prepared, slots, expected", [
    (0, 0, 0, 2, (0, 2)),
    (1, 0, 0, 2, (1, 1)),
    (2, 0, 0, 2, (2, 0)),
    (3, 1, 0, 2, (2, 0)),   # an adopted execution waiting for a slot is not in one
    (1, 1, 0, 1, (0, 1)),
    (5, 0, 0, 2, (2, 0)),   # never more busy than there are slots
    (2, 0, 1, 2, (1, 1)),   # one prepared ahead (claimed, its container not started) is in no slot
])
def test_slot_usage(held, adopted, prepared, slots, expected):
    assert slot_usage(holdings(held, adopted, prepared=prepared), slots) == expected


def test_a_runner_serves_its_slots_labelled_by_its_id():
    metrics, registry = RunnerMetrics(), CollectorRegistry()
    metrics.holdings, metrics.slots = holdings(held=1), 3
    registry.register(_SlotCollector(metrics))
    labels = {"runner": "host-runner-1"}
    assert registry.get_sample_value("stevedore_runner_slots_busy", labels) == 1
    assert registry.get_sample_value("stevedore_runner_slots_free", labels) == 2
    metrics.holdings.held.clear()  # read when scraped, not when declared
    assert registry.get_sample_value("stevedore_runner_slots_busy", labels) == 0


def test_slot_gauges_can_be_declared_before_the_runner_knows_its_slots():
    # the metrics are declared in setup(), possibly before the shared Holdings are set up
    metrics, registry = RunnerMetrics(), CollectorRegistry(auto_describe=True)
    metrics.holdings = SimpleNamespace()  # no runner id, nothing held yet
    registry.register(_SlotCollector(metrics))


def test_a_pull_is_timed_with_its_outcome():
    metrics, registry = declared(PullMetrics)
    metrics.where = "runner"
    with metrics.timed_pull():
        pass
    with pytest.raises(RuntimeError), metrics.timed_pull():
        raise RuntimeError("registry away")
    for outcome in ("ok", "error"):
        assert registry.get_sample_value("stevedore_image_pull_seconds_count",
                                         {"where": "runner", "outcome": outcome}) == 1


def test_the_runner_times_a_pull_only_when_it_pulls():
    timed = []

    @contextmanager
    def pull_timer():
        timed.append(True)
        yield

    image = "reg:5000/x@sha256:" + "a" * 64
    for present in ((image,), ()):
        client = FakeClient(present)
        Executor(client, policy={}).ensure_image(image, pull_timer=pull_timer)
        assert len(client.api.pulls) == (0 if present else 1)
    assert timed == [True]


# ---------------------------------------------------------------- where they are served

def test_host_mode_gives_each_process_but_the_gateway_a_metrics_port_of_its_own():
    ports = {label: extra["METRICS_PORT"] for label, _, extra in plan(3, 8000, metrics_port=9100)}
    assert ports == {"gateway": "0", "registry": "9100", "scheduler": "9101",
                     "runner-1": "9102", "runner-2": "9103", "runner-3": "9104"}


def test_host_mode_without_a_metrics_port_turns_every_one_off():
    assert {extra["METRICS_PORT"] for _, _, extra in plan(2, 8000)} == {"0"}


def test_the_gateway_metrics_are_public_only_when_configured():
    def settings(**config):
        return parse(GatewaySettings, config)
    assert is_public("METRICS_PUBLIC", settings()) is False
    assert is_public("METRICS_PUBLIC", settings(METRICS_PUBLIC="off")) is False
    assert is_public("METRICS_PUBLIC", settings(METRICS_PUBLIC="on")) is True
    assert is_public(True, settings()) is True and is_public(False, settings(METRICS_PUBLIC="on")) is False


def test_a_slots_steps_are_observed_for_those_that_happened_and_the_removal_it_paid_for():
    metrics, registry = RunnerMetrics(), CollectorRegistry()
    metrics.container = SimpleNamespace(config={"RUNNER_SLOTS": "2"})
    metrics.holdings = holdings(held=0)
    metrics.declare(registry)
    metrics.observe_phases({"begin": 10.0, "created": 10.1, "started": 10.4, "exited": 12.0, "outcome": 12.02,
                            "reported": 12.05}, removing=0.0)
    metrics.observe_phases({"begin": 20.0})  # ended before its container was made (a failed pull): nothing

    def seconds(phase):
        return (registry.get_sample_value("stevedore_runner_phase_seconds_sum", {"phase": phase}),
                registry.get_sample_value("stevedore_runner_phase_seconds_count", {"phase": phase}))
    assert seconds("create") == pytest.approx((0.1, 1)) and seconds("start") == pytest.approx((0.3, 1))
    assert seconds("outcome") == pytest.approx((0.02, 1)) and seconds("report") == pytest.approx((0.03, 1))
    assert seconds("remove") == (0.0, 1)
