"""The scheduler folds a runner's batch of reports (``execution_reports``, services/scheduler/folding.py):
in one go; one by one when the batch fails (the poison report fails alone); a run's end said once."""
from types import SimpleNamespace

import pytest
from nameko.testing.services import worker_factory
from sqlalchemy.exc import DataError, OperationalError

from services.scheduler import executions as ex
from services.scheduler.executions import batch
from services.scheduler.service import SchedulerService

D1, D2, D3 = "1" * 32, "2" * 32, "3" * 32


def started(detail_id):
    return {"event": "execution_started", "report": {"detail_id": detail_id, "attempt": 1, "runner": "r",
                                                     "start": 10.0, "container_id": "c"}}


def finished(detail_id, **more):
    return {"event": "execution_finished", "report": {"detail_id": detail_id, "attempt": 1, "runner": "r",
                                                      "status": "COMPLETE", "exit_code": 0, **more}}


@pytest.fixture
def folds(monkeypatch):
    """The folds the batch makes (``batch.fold``) and the single ones (``mark_started``/``mark_finished``)."""
    seen = SimpleNamespace(batches=[], single=[], batch_fails=None, poison=None)

    def fold(session, reports, **kwargs):
        seen.batches.append(reports)
        if seen.batch_fails:
            raise seen.batch_fails
        return batch.Folded()

    def single(kind):
        def mark(session, report, **kwargs):
            if report["detail_id"] == seen.poison:
                raise DataError("UPDATE", {}, Exception("value too long"))
            seen.single.append((kind, report["detail_id"], report.get("reason")))
            return None, None
        return mark

    monkeypatch.setattr(batch, "fold", fold)
    monkeypatch.setattr(ex, "mark_started", single("started"))
    monkeypatch.setattr(ex, "mark_finished", single("finished"))
    return seen


def test_a_batch_is_folded_in_one_go_in_the_order_the_runner_sent_it(folds):
    worker_factory(SchedulerService).on_execution_reports(
        {"runner": "r", "reports": [started(D1), finished(D1, logs={"stdout": ""}), finished(D2)]})
    [reports] = folds.batches
    assert [(kind, (item if kind == batch.STARTED else item[0])["detail_id"]) for kind, item in reports] == [
        (batch.STARTED, D1), (batch.FINISHED, D1), (batch.FINISHED, D2)]
    assert reports[1][1][1] == {"stdout": ""} and "logs" not in reports[1][1][0]  # the output apart
    assert folds.single == []


def test_unreadable_reports_of_a_batch_are_dropped_and_the_rest_folded(folds):
    worker_factory(SchedulerService).on_execution_reports({"reports": [
        started(D1), {"event": "execution_exploded", "report": {}}, "junk", {"event": "execution_finished",
        "report": {"attempt": 1}}, {"event": "execution_started", "report": {"detail_id": D2}}, finished(D3)]})
    [reports] = folds.batches
    assert [kind for kind, _ in reports] == [batch.STARTED, batch.FINISHED]


@pytest.mark.parametrize("payload", [None, [], {"reports": "x"}, {"runner": "r"}])
def test_a_batch_without_a_list_of_reports_is_dropped(folds, payload):
    worker_factory(SchedulerService).on_execution_reports(payload)
    assert folds.batches == [] and folds.single == []


def test_a_batch_that_fails_is_folded_one_by_one_and_its_poison_report_fails_alone(folds):
    folds.batch_fails = DataError("UPDATE", {}, Exception("value too long for type character varying(64)"))
    folds.poison = D2
    worker_factory(SchedulerService).on_execution_reports(
        {"reports": [started(D1), finished(D1), finished(D2), finished(D3)]})
    # D2's end failed whole, and was folded again with its outcome alone (``_finish``'s fallback) -- which
    # failed too, here; the others were folded each on its own
    assert [(kind, detail) for kind, detail, _ in folds.single] == [
        ("started", D1), ("finished", D1), ("finished", D3)]


def test_a_transient_failure_raises_for_the_whole_batch_to_be_retried(folds):
    folds.batch_fails = OperationalError("SELECT", {}, Exception("server closed the connection"))
    with pytest.raises(OperationalError):
        worker_factory(SchedulerService).on_execution_reports({"reports": [finished(D1), finished(D2)]})
    assert folds.single == []


def test_a_batch_larger_than_a_message_may_hold_is_folded_in_bounded_transactions(folds):
    many = [finished(f"{i:032d}") for i in range(600)]
    worker_factory(SchedulerService).on_execution_reports({"reports": many})
    assert [len(reports) for reports in folds.batches] == [256, 256, 88]


def test_a_runs_end_is_notified_once_however_many_of_its_executions_the_batch_ended(monkeypatch):
    service = worker_factory(SchedulerService)
    notified = []
    monkeypatch.setattr(ex, "mark_notified", lambda session, result_id: notified.append(result_id))
    run = SimpleNamespace(id="r" * 32, status="COMPLETE", parallelism=None, params={}, ended_by=None,
                          cancel_requested=False, team=None, submitted_by=None, to_dict=None)
    monkeypatch.setattr(ex, "result_as_dict", lambda result: {"result_id": result.id})
    details = [SimpleNamespace(status="COMPLETE", index=i, attempts=[], start=None, end=None) for i in range(3)]
    settled = []
    service._settle = lambda dependent, index=None: settled.append((dependent, index))
    service._after_batch(batch.Folded(finished=[(run, detail) for detail in details],
                                      waiting_on={run.id: ["w" * 32]}))
    assert notified == [run.id]
    assert service.dispatch.call_count == 1
    assert settled == [("w" * 32, 0), ("w" * 32, 1), ("w" * 32, 2)]


def test_a_batchs_output_goes_in_one_upsert_and_a_detail_twice_in_a_second(monkeypatch):
    monkeypatch.setattr(batch.output, "from_report", lambda logs: {"stdout": logs["stdout"].encode()})
    outputs = batch._Outputs()
    assert outputs.store(D1, 1, {"stdout": "started"}) is None
    assert outputs.store(D2, 1, {"stdout": "two"}) is None
    assert outputs.store(D1, 1, {"stdout": "ended"}) is None  # the start's and the end's output of one detail
    sent = []
    outputs.write(SimpleNamespace(execute=lambda statement, rows: sent.append([(r["detail_id"], r["stdout"])
                                                                               for r in rows])))
    assert sent == [[(D1, b"started"), (D2, b"two")], [(D1, b"ended")]]


def test_output_that_cannot_be_read_is_left_out_and_said_why(monkeypatch):
    def unreadable(logs):
        raise ValueError("not base64\nat all")

    monkeypatch.setattr(batch.output, "from_report", unreadable)
    outputs = batch._Outputs()
    assert outputs.store(D1, 1, {"stdout": "%%%"}) == "not base64"
    assert outputs.rounds == [{}]
