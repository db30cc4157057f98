"""Runner labels, constraints and GPUs: the rules without a broker (services/scheduler/fleet.py,
stevedore_jobs/contract/fleet.py, the runner's GPU holdings and container options)."""
from types import SimpleNamespace

import pytest

from services.runner.confinement import with_gpus
from services.runner.slots import Holdings
from services.scheduler.executions.claims import _gpus, _labels
from services.scheduler.fleet import Heard, placed, why_not
from shared.messages import RunnerInfo
from shared.settings import RunnerSettings, SettingError, parse
from stevedore_jobs.contract import Invalid
from stevedore_jobs.contract.fleet import check_labels, parse_gpus, parse_labels
from stevedore_jobs.contract.run import run_params


def test_runner_labels_and_gpus_are_read_from_their_settings():
    settings = parse(RunnerSettings, {"RUNNER_LABELS": "gpu=a100, zone=eu,disk=ssd", "RUNNER_GPUS": "0,1"})
    assert settings.runner_labels == {"gpu": "a100", "zone": "eu", "disk": "ssd"}
    assert settings.runner_gpus == ("0", "1")
    empty = parse(RunnerSettings, {})
    assert empty.runner_labels == {} and empty.runner_gpus == ()


@pytest.mark.parametrize("key, value, message", [
    ("RUNNER_LABELS", "zone", "RUNNER_LABELS='zone': 'zone' is not key=value"),
    ("RUNNER_LABELS", "zone=eu,zone=us", "RUNNER_LABELS='zone=eu,zone=us': 'zone' is given twice"),
    ("RUNNER_LABELS", "zo ne=eu", "RUNNER_LABELS='zo ne=eu': 'zo ne' is not a label name"),
    ("RUNNER_GPUS", "0,0", "RUNNER_GPUS='0,0': '0' is given twice"),
    ("RUNNER_GPUS", "0;1", "RUNNER_GPUS='0;1': '0;1' is not a device id"),
])
def test_a_bad_label_or_gpu_setting_stops_the_runner_naming_it(key, value, message):
    with pytest.raises(SettingError) as refused:
        parse(RunnerSettings, {key: value})
    assert str(refused.value).startswith(message)


def test_a_runs_constraints_and_gpus_are_kept_in_its_params_only_when_given():
    assert "constraints" not in run_params({"times": 1}) and "gpus" not in run_params({"times": 1})
    params = run_params({"times": 1, "constraints": {"zone": "eu"}, "gpus": 2})
    assert params["constraints"] == {"zone": "eu"} and params["gpus"] == 2
    assert placed(params) and not placed({"times": 1}) and not placed({"gpus": 0})


@pytest.mark.parametrize("value, field", [
    ({"zone": 1}, "constraints.zone"), ({"-zone": "eu"}, "constraints"), ({"zone": "e u"}, "constraints.zone"),
    ({f"k{i}": "v" for i in range(17)}, "constraints"), (["zone"], "constraints")])
def test_constraints_are_checked_naming_the_field(value, field):
    with pytest.raises(Invalid) as refused:
        check_labels(value, "constraints")
    assert refused.value.field == field


def test_labels_and_gpu_ids_parse_from_their_text():
    assert parse_labels("a=1, b.c/d=x-y") == {"a": "1", "b.c/d": "x-y"}
    assert parse_labels("") == {}
    assert parse_gpus(" GPU-3f2a, 1 ") == ("GPU-3f2a", "1")


def test_why_no_live_runner_can_take_a_run():
    live = [({"zone": "eu", "disk": "ssd"}, 0), ({"zone": "us"}, 2)]
    assert why_not({"zone": "eu"}, 0, live) is None
    assert why_not({}, 2, live) is None
    assert why_not({"zone": "us"}, 1, live) is None
    assert why_not({"zone": "eu"}, 1, live) == ("no live runner has the labels zone=eu and 1 GPU (of 2 live); "
                                                "it starts once one that does asks for work")
    assert why_not({"zone": "ap"}, 0, live).startswith("no live runner has the labels zone=ap")
    assert why_not({}, 3, live).startswith("no live runner has 3 GPUs")
    assert why_not({"zone": "eu"}, 0, []) == "no live runner: it waits for one with the labels zone=eu"


def test_a_runner_is_written_when_new_or_changed_and_otherwise_at_most_every_few_seconds():
    clock = [100.0]
    heard = Heard(every=5, clock=lambda: clock[0])
    info = RunnerInfo(labels={"zone": "eu"}, slots=2, busy=0, gpus=[], gpus_free=0)
    assert heard.due("r1", info) == (True, True)
    assert heard.due("r1", info.model_copy(update={"busy": 1})) == (False, False)
    clock[0] += 5
    assert heard.due("r1", info) == (True, False)
    assert heard.due("r1", info.model_copy(update={"labels": {"zone": "us"}})) == (True, True)


def test_the_claim_reads_a_runners_labels_and_gpu_ids_as_sent_ignoring_what_is_not_one():
    assert _labels({"zone": "eu", "n": 1, 2: "x"}) == {"zone": "eu"}
    assert _labels("zone=eu") == {} and _labels(None) == {}
    assert _gpus(["0", 1, "0", True, None]) == ["0", "1"]
    assert _gpus("0,1") == [] and _gpus(None) == []


def holdings(gpus=("0", "1", "2")):
    made = Holdings()
    made.container = SimpleNamespace(service_name="runner", config={
        "RUNNER_ID": "r", "RUNNER_GPUS": ",".join(gpus), "RUNNER_LABELS": "zone=eu", "RUNNER_SLOTS": "2"})
    made.setup()
    return made


def test_a_runner_holds_the_gpus_an_execution_was_given_until_it_ends():
    made = holdings()
    assert made.free_gpus() == []  # none before its first reconcile: a restart's containers may hold some
    made.mark_reconciled()
    assert made.free_gpus() == ["0", "1", "2"]
    made.hold({"detail_id": "a", "result_id": "x", "attempt": 1, "gpu_ids": ["0", "1"]})
    made.hold({"detail_id": "b", "result_id": "x", "attempt": 1})
    assert made.free_gpus() == ["2"]
    assert made.info("Docker 27") == {"labels": {"zone": "eu"}, "slots": 2, "busy": 2, "gpus": ["0", "1", "2"],
                                      "gpus_free": 1, "engine": "Docker 27"}
    made.release("a")
    assert made.free_gpus() == ["0", "1", "2"]


def test_a_container_gets_exactly_its_gpus_as_an_nvidia_device_request():
    options = with_gpus({"labels": {}}, ["1", "3"])
    (request,) = options["device_requests"]
    assert request["Driver"] == "nvidia" and request["DeviceIDs"] == ["1", "3"]
    assert request["Capabilities"] == [["gpu"]] and options["labels"]["stevedore.gpus"] == "1,3"
    assert "device_requests" not in with_gpus({"labels": {}}, None)
