"""The messages between services (shared/messages.py): docs/events.md says what they declare,
and a bad message is refused where it is received, never raised."""
import re
from pathlib import Path

import pytest

from shared import events
from shared.messages import (EVENTS, ExecutionFinished, ExecutionOutput, ExecutionStarted, ReportKey, WorkItem,
                             finished_report, owned, received, wire)
from stevedore_jobs.contract import Result

DOC = Path(__file__).resolve().parents[2] / "docs" / "events.md"
ROW = re.compile(r"^\| (\w+) \| `(\w+)` \| (.*?) \| .* \|$")


def documented():
    """{(source, event): payload column} of docs/events.md's table."""
    return {(m[1], m[2]): m[3] for m in map(ROW.match, DOC.read_text().splitlines()) if m}


def test_every_event_in_shared_events_has_a_payload_model():
    names = {value for key, value in vars(events).items() if key.isupper()}
    sources = {events.REGISTRY, events.SCHEDULER, events.RUNNER}
    assert {name for _, name in EVENTS} == names - sources
    assert {source for source, _ in EVENTS} == sources


def test_docs_events_table_lists_every_event_with_its_models_fields():
    table = documented()
    assert set(table) == set(EVENTS)
    for key, model in EVENTS.items():
        if model is Result:  # the API's result (stevedore_jobs.contract)
            assert "GET /result/{id}/" in table[key], key
            continue
        fields = re.findall(r"`(\w+)`(\??)", table[key])
        assert [name for name, _ in fields] == list(model.model_fields), key
        for name, optional in fields:  # `?`: may be absent or null, so the model does not require it
            assert not (optional and model.model_fields[name].is_required()), (key, name)


def test_a_work_item_is_made_from_a_runs_parameters_and_sent_as_plain_values():
    work = wire(WorkItem.of("d", "r", "t", 3, 2, "img@sha256:x",
                            {"command": ["echo", "hi"], "env": None, "timeout": 5, "cpus": 0.5,
                             "disk": "8m"}, 30.0))
    assert work == {"detail_id": "d", "result_id": "r", "task_id": "t", "index": 3, "attempt": 2,
                    "image": "img@sha256:x", "command": ["echo", "hi"], "env": {}, "timeout": 5,
                    "memory": None, "disk": "8m", "cpus": 0.5, "lease_seconds": 30.0, "installation": None, "times": None,
                    "labels": {}, "gpu_ids": None, "tes": None, "secret_env": {}, "team": None,
                    "submitted_by": None}
    assert isinstance(work["timeout"], int)  # sent as given


def test_a_work_item_says_whose_run_it_is_and_the_runners_events_copy_it():
    work = wire(WorkItem.of("d", "r", "t", 0, 1, "img", {}, 30.0, team="ml", submitted_by="ci-bot"))
    assert (work["team"], work["submitted_by"]) == ("ml", "ci-bot")
    assert owned(work) == {"team": "ml", "submitted_by": "ci-bot"}
    started = wire(ExecutionStarted(detail_id="d", attempt=1, runner="r", start=1.0, **owned(work)))
    output = wire(ExecutionOutput(detail_id="d", attempt=1, logs={}, **owned(work)))
    finished = finished_report(detail_id="d", attempt=1, status="COMPLETE", **owned(work))
    for event in (started, output, finished):
        assert (event["team"], event["submitted_by"]) == ("ml", "ci-bot")
    # from a scheduler of before teams: the item says nothing, nor do the events, and nothing fails
    assert owned(wire(WorkItem.of("d", "r", "t", 0, 1, "img", {}, 30.0))) == {"team": None, "submitted_by": None}


def test_a_work_item_carries_its_runs_labels():
    work = wire(WorkItem.of("d", "r", "t", 0, 1, "img", {"labels": {"sweep": "lr-2026"}}, 30.0))
    assert work["labels"] == {"sweep": "lr-2026"}


def test_a_work_item_merges_the_executions_own_parameters_over_the_runs():
    run = {"times": 6, "command": ["run"], "env": {"A": "run", "B": "run"}, "per_execution": "items"}
    work = WorkItem.of("d", "r", "t", 3, 1, "img", run, 30.0, own={"env": {"B": "own", "C": "own"}})
    assert work.env == {"A": "run", "B": "own", "C": "own"} and work.command == ["run"] and work.times == 6
    work = WorkItem.of("d", "r", "t", 3, 1, "img", run, 30.0, own={"command": ["mine", "x"]})
    assert work.env == {"A": "run", "B": "run"} and work.command == ["mine", "x"]
    # a rerun's STEVEDORE_TIMES is the first run's, as its indices are
    rerun = {"times": 2, "indices": [1, 4], "run_times": 6}
    assert WorkItem.of("d", "r", "t", 4, 1, "img", rerun, 30.0).times == 6


def test_a_malformed_message_is_read_as_none_and_logged_not_raised(caplog):
    assert received(ExecutionStarted, {"detail_id": "d", "attempt": 1, "runner": "r"}, "a report") is None
    assert "start: Field required" in caplog.text
    assert received(ExecutionStarted, "not even an object", "a report") is None


@pytest.mark.parametrize("key", [{"detail_id": "d", "attempt": True}, {"detail_id": 7, "attempt": 1},
                                 {"detail_id": "d", "attempt": "1"}, {"attempt": 1}])
def test_a_report_key_must_name_the_execution_exactly(key):
    assert received(ReportKey, key, "a report") is None


def test_a_finished_report_with_a_field_not_as_declared_is_still_sent_whole(caplog):
    report = finished_report(detail_id="d", attempt=1, runner="r", status="COMPLETE", exit_code="zero",
                             reason=None, start=1.0, end=2.0)
    assert report["status"] == "COMPLETE" and report["exit_code"] == "zero"
    assert "sent as built" in caplog.text
    # as declared: every field, the ones not given as null
    assert finished_report(detail_id="d", attempt=1, status="ERROR") == {
        **{name: None for name in ExecutionFinished.model_fields}, "detail_id": "d", "attempt": 1,
        "status": "ERROR"}


def test_fields_a_newer_sender_adds_reach_the_receiver():
    assert wire(received(ReportKey, {"detail_id": "d", "attempt": 1, "new": 1}, "a report"))["new"] == 1
