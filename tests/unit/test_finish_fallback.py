"""The scheduler folds an execution's outcome alone when folding the whole report fails unexpectedly."""
import pytest
from nameko.testing.services import worker_factory
from sqlalchemy.exc import OperationalError

from services.scheduler import executions as ex
from services.scheduler.executions import reports
from services.scheduler.service import SchedulerService

REPORT = {"detail_id": "d" * 32, "attempt": 1, "runner": "r", "status": "COMPLETE", "exit_code": 0,
          "reason": "fine", "logs": {"encoding": "base64", "stdout": ""}}


@pytest.fixture
def folds(monkeypatch):
    calls = []

    def mark_finished(session, report, logs=None, **kwargs):
        calls.append((dict(report), logs))
        if len(calls) == 1:
            raise failure[0]
        return None, None

    failure = [ValueError("something odd\nmore")]
    monkeypatch.setattr(ex, "mark_finished", mark_finished)
    return calls, failure


def test_an_unexpected_failure_folds_the_outcome_again_without_the_output(folds):
    calls, _ = folds
    worker_factory(SchedulerService)._finish(dict(REPORT))
    (first, first_logs), (second, second_logs) = calls
    assert first_logs == REPORT["logs"] and second_logs is None
    assert (second["status"], second["exit_code"]) == ("COMPLETE", 0)
    assert second["reason"] == "fine; its report could not be stored in full: something odd"


def test_the_outcome_folded_alone_leaves_out_what_else_the_report_carried(folds):
    calls, _ = folds
    # a container_id longer than its column fails the first fold: it must not fail the second
    worker_factory(SchedulerService)._finish({**REPORT, "container_id": "c" * 500, "start": 1.0, "end": 2.0})
    (first, _), (second, _) = calls
    assert first["container_id"] == "c" * 500 and "container_id" not in second
    assert {k: second[k] for k in ("detail_id", "attempt", "runner", "status", "exit_code", "start", "end")} \
        == {"detail_id": "d" * 32, "attempt": 1, "runner": "r", "status": "COMPLETE", "exit_code": 0,
            "start": 1.0, "end": 2.0}

def test_a_transient_failure_is_raised_for_the_report_to_be_retried_whole(folds):
    calls, failure = folds
    failure[0] = OperationalError("SELECT", {}, Exception("server closed the connection"))
    with pytest.raises(OperationalError):
        worker_factory(SchedulerService)._finish(dict(REPORT))
    assert len(calls) == 1


@pytest.mark.parametrize("report", [{}, {"detail_id": 5, "attempt": 1}, {"detail_id": "d", "attempt": "1"}, []])
def test_a_report_naming_no_execution_is_dropped(folds, report):
    calls, _ = folds
    worker_factory(SchedulerService)._finish(report)
    assert calls == []


class Savepoints:
    """A session stand-in: savepoints as context managers that let exceptions through."""

    def begin_nested(self):
        import contextlib
        return contextlib.nullcontext()


def test_output_the_database_refuses_is_noted_but_the_database_away_is_raised(monkeypatch):
    from sqlalchemy.exc import DataError

    def refuse(*args, **kwargs):
        raise DataError("INSERT", {}, Exception("bigint out of range"))

    monkeypatch.setattr(reports, "store_logs", refuse)
    note = reports._store_final_logs(Savepoints(), "d", 1, {"encoding": "base64", "stdout": ""})
    assert "bigint out of range" in note

    def away(*args, **kwargs):
        raise OperationalError("INSERT", {}, Exception("server closed the connection"))

    monkeypatch.setattr(reports, "store_logs", away)
    with pytest.raises(OperationalError):
        reports._store_final_logs(Savepoints(), "d", 1, {"encoding": "base64", "stdout": ""})


@pytest.mark.parametrize("handler, report", [
    ("on_execution_started", {"detail_id": "d" * 32, "attempt": 1, "runner": "r"}),   # no start
    ("on_execution_started", ["not", "a", "report"]),
    ("on_execution_output", {"detail_id": "d" * 32, "attempt": "1", "logs": {}}),
    ("on_execution_output", {"detail_id": "d" * 32, "attempt": 1, "logs": "not an object"}),
])
def test_a_started_or_output_report_that_cannot_be_read_is_dropped_without_touching_the_database(
        monkeypatch, handler, report):
    monkeypatch.setattr(ex, "mark_started", lambda *a: pytest.fail("folded"))
    monkeypatch.setattr(ex, "store_live_logs", lambda *a: pytest.fail("stored"))
    getattr(worker_factory(SchedulerService), handler)(report)
