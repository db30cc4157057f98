"""Issue 17's runner labels, constraints and GPUs with the rest (review17): a schedule's fired run and a
rerun of failures say at once when no runner can take them, and wake every idle runner; a runner's
description is bounded by the rules its own settings follow (services/scheduler/fleet.py)."""
from types import SimpleNamespace
from unittest import mock

import pytest
from nameko.testing.services import worker_factory

from services.scheduler import executions as ex
from services.scheduler import fleet
from services.scheduler.executions.claims import _gpus
from services.scheduler.service import SchedulerService
from shared.principals import CONFIGURED
from shared.settings import RunnerSettings, SettingError, parse


def fired(params):
    result = SimpleNamespace(id="r" * 32, times=2, params=params, team="ml", submitted_by="ci-bot")
    return SimpleNamespace(outcome="FIRED", missed=0, replaced=None, result=result, params=params, inline=True,
                           schedule_id="s" * 32, task_id="t" * 32, scheduled_for=1.0, manual=True)


@pytest.mark.parametrize("params, sized, placed", [
    ({"times": 2, "constraints": {"zone": "eu"}}, True, True),
    ({"times": 2, "gpus": 1}, True, True),
    ({"times": 2, "memory": "1g"}, True, False),
    ({"times": 2}, False, False),
])
def test_a_fired_run_with_constraints_or_gpus_wakes_every_idle_runner_and_is_placed_at_once(
        monkeypatch, params, sized, placed):
    monkeypatch.setattr(ex, "submitted", lambda result, inline: {"result_id": result.id})
    service = worker_factory(SchedulerService)
    service._wake = mock.Mock()
    service._place = mock.Mock()
    service._after_fire(fired(params))
    # the wake-up says whose run it is (executions_queued carries the run's team and maker)
    service._wake.assert_called_once_with("r" * 32, 2, sized=sized, whose={"team": "ml", "submitted_by": "ci-bot"})
    assert service._place.call_args_list == ([mock.call(["r" * 32])] if placed else [])


@pytest.mark.parametrize("params, placed", [({"times": 1, "constraints": {"zone": "mars"}}, True),
                                            ({"times": 1, "gpus": 2}, True), ({"times": 1}, False)])
def test_a_rerun_of_failures_keeping_constraints_or_gpus_is_placed_at_once(monkeypatch, params, placed):
    rerun = SimpleNamespace(id="n" * 32, params=params)
    monkeypatch.setattr(ex, "get_result", lambda session, result_id, **scope: SimpleNamespace(params=params, task_id="t" * 32))
    monkeypatch.setattr(ex, "rerun_failed", lambda session, result_id, caller=None, most=None: rerun)
    monkeypatch.setattr(ex, "submitted", lambda result: {"result_id": result.id})
    monkeypatch.setattr(ex, "result_as_dict", lambda result: {"result_id": result.id})
    monkeypatch.setattr("services.scheduler.knowntasks.for_rerun", lambda session, task_id: None)
    service = worker_factory(SchedulerService)
    service.settings.ceilings = (None, None)
    service._place = mock.Mock()
    assert service.rerun_failed("o" * 32, caller=CONFIGURED.as_dict()) == {"result_id": "n" * 32}
    assert service._place.call_args_list == ([mock.call(["n" * 32])] if placed else [])


GOOD = {"labels": {"zone": "eu"}, "slots": 2, "busy": 1, "gpus": ["0", "1"], "gpus_free": 1, "engine": "27.0"}


@pytest.mark.parametrize("change", [
    {"labels": {f"k{i}": "v" for i in range(17)}},            # more than RUNNER_LABELS may hold
    {"labels": {"zone": "e" * 100000}},                        # a huge value
    {"labels": {"zo ne": "eu"}}, {"labels": {"zone": "e\nu"}}, {"labels": {"": "x"}},
    {"gpus": [str(i) for i in range(65)]}, {"gpus": ["0", "0"]}, {"gpus": ["0,1"]}, {"gpus": [""]},
    {"gpus": ["x" * 100000]}, {"slots": -1}, {"busy": 10 ** 12}, {"gpus_free": -3},
])
def test_a_runner_description_breaking_the_runner_settings_rules_is_dropped(change):
    assert fleet.info_of("r1", GOOD) is not None
    assert fleet.info_of("r1", {**GOOD, **change}) is None


def test_the_claim_reads_at_most_64_gpu_ids():
    assert _gpus([str(i) for i in range(100000)]) == [str(i) for i in range(64)]


@pytest.mark.parametrize("runner_id", ["host/1", "host\n1", "h" * 201, "a\x85b"])
def test_a_runner_id_the_runner_list_cannot_page_by_stops_the_runner_and_is_not_listed(runner_id):
    with pytest.raises(SettingError) as refused:
        parse(RunnerSettings, {"RUNNER_ID": runner_id})
    assert str(refused.value).startswith("RUNNER_ID=") and "'/'" in str(refused.value)
    assert fleet.info_of(runner_id, GOOD) is None  # a runner from before the rule: not listed


def test_a_good_runner_id_is_kept():
    assert parse(RunnerSettings, {"RUNNER_ID": "gpu-box-1.eu (rack 2)"}).runner_id == "gpu-box-1.eu (rack 2)"
    assert parse(RunnerSettings, {}).runner_id == ""
    assert fleet.info_of("gpu-box-1.eu (rack 2)", GOOD) is not None


@pytest.mark.parametrize("body, field", [({"constraints": {"zone": "eu"}}, "constraints"), ({"gpus": 2}, "gpus"),
                                         ({"labels": {"a": "b"}}, "labels"), ({}, "body")])
def test_a_patch_of_what_the_run_set_names_the_field(body, field):
    from shared import validation
    from stevedore_jobs.contract.change import ResultChange
    with pytest.raises(Exception) as refused:
        validation.parse(ResultChange, body)
    assert refused.value.field == field and str(refused.value).startswith(f"{field}: ")
