"""A run's failure policy: its fields at the door, the retry decision, max_failures' count, the run's end."""
from types import SimpleNamespace

import pytest

from services.scheduler.executions import policy, reports
from services.scheduler.executions.state import derive_status
from shared import validation
from shared.errors import ValidationError


# ---------------------------------------------------------------- the contract

def run(**fields):
    return validation.run_params({"operation": "RUN", "times": 10, **fields}, max_times=1000)


def test_the_policy_fields_are_stored_when_given_and_left_out_when_not():
    params = run(max_failures=3, retry_on_exit_codes=[1, 2.0], deadline=60)
    assert (params["max_failures"], params["retry_on_exit_codes"], params["deadline"]) == (3, [1, 2], 60)
    assert "no_retry_on_exit_codes" not in params
    # a RUN without them is stored as before they existed (an Idempotency-Key replay still matches)
    assert not set(policy_fields := ("max_failures", "retry_on_exit_codes", "no_retry_on_exit_codes",
                                     "deadline")) & set(run())
    assert not set(policy_fields) & set(run(max_failures=None, deadline=None))


@pytest.mark.parametrize("fields, field, says", [
    ({"max_failures": 0}, "max_failures", "must be an integer from 1 to 1000"),
    ({"max_failures": 1001}, "max_failures", "must be an integer from 1 to 1000"),
    ({"max_failures": True}, "max_failures", "must be an integer from 1 to 1000"),
    ({"max_failures": 1.5}, "max_failures", "must be an integer from 1 to 1000"),
    ({"deadline": 0}, "deadline", "must be a number from 1 to 2678400"),
    ({"deadline": 31 * 24 * 3600 + 1}, "deadline", "must be a number from 1 to 2678400"),
    ({"deadline": "60"}, "deadline", "must be a number from 1 to 2678400"),
    ({"retry_on_exit_codes": [0, 255, 256]}, "retry_on_exit_codes[2]", "must be an integer from 0 to 255"),
    ({"retry_on_exit_codes": [-1]}, "retry_on_exit_codes[0]", "must be an integer from 0 to 255"),
    ({"retry_on_exit_codes": [True]}, "retry_on_exit_codes[0]", "must be an integer from 0 to 255"),
    ({"no_retry_on_exit_codes": ["1"]}, "no_retry_on_exit_codes[0]", "must be an integer from 0 to 255"),
    ({"no_retry_on_exit_codes": 3}, "no_retry_on_exit_codes", "must be a list of integers from 0 to 255"),
    ({"retry_on_exit_codes": list(range(256)) + [1]}, "retry_on_exit_codes", "must have at most 256 exit codes"),
    ({"retry_on_exit_codes": [1], "no_retry_on_exit_codes": [2]}, "no_retry_on_exit_codes",
     "give retry_on_exit_codes or no_retry_on_exit_codes, not both"),
])
def test_a_bad_policy_field_is_refused_naming_it(fields, field, says):
    with pytest.raises(ValidationError) as caught:
        run(**fields)
    assert (caught.value.field, caught.value.message) == (field, says)


def test_an_empty_list_of_exit_codes_is_a_rule_too():
    assert run(retry_on_exit_codes=[])["retry_on_exit_codes"] == []  # nothing with an exit code is retried


# ---------------------------------------------------------------- rows, as mark_finished sees them

def result_row(times=10, **params):
    return SimpleNamespace(id="r" * 32, times=times, params={"retries": 0, **params}, start=1.0, end=None,
                           active=1, n_running=1, n_complete=0, n_error=0, n_cancelled=0, n_killed=0, n_failed=0,
                           cancel_requested=False, ended_by=None, status="RUNNING", created=times)


def detail_row(attempt=1, cancel=False):
    return SimpleNamespace(id="d" * 32, attempt=attempt, status="RUNNING", runner="runner-1", start=1.0, end=None,
                           exit_code=None, reason=None, attempts=[], lease_expires_at=None, container_id=None,
                           not_before=None, submitted_at=0.0, cancel_requested=cancel, team="default")


class Session:
    def commit(self):
        pass

    def rollback(self):
        pass


@pytest.fixture
def fold(monkeypatch):
    """Fold a finished report into the given rows with mark_finished (no database)."""

    def folded(result, detail, status="ERROR", exit_code=3, reason="exited with code 3"):
        monkeypatch.setattr(reports, "lock_pair", lambda session, detail_id: (detail, result))
        monkeypatch.setattr(reports.fairshare, "release", lambda session, team: None)  # teams.active: interface
        report = {"detail_id": detail.id, "attempt": detail.attempt, "runner": detail.runner, "status": status,
                  "exit_code": exit_code, "reason": reason, "start": 1.0, "end": 2.0}
        return reports.mark_finished(Session(), report)

    return folded


@pytest.mark.parametrize("rules, exit_code, retried", [
    ({}, 3, True),
    ({"retry_on_exit_codes": [3, 4]}, 3, True),
    ({"retry_on_exit_codes": [4]}, 3, False),
    ({"retry_on_exit_codes": []}, 3, False),
    ({"no_retry_on_exit_codes": [3]}, 3, False),
    ({"no_retry_on_exit_codes": [4]}, 3, True),
    ({"retry_on_exit_codes": [4]}, None, True),     # no exit code (a lost runner): retried as today
    ({"no_retry_on_exit_codes": [3]}, None, True),
])
def test_an_error_is_retried_only_as_the_exit_code_rules_allow(fold, rules, exit_code, retried):
    result, detail = result_row(retries=2, **rules), detail_row()
    fold(result, detail, exit_code=exit_code)
    assert detail.status == ("QUEUED" if retried else "ERROR")
    assert result.n_error == (0 if retried else 1) and result.n_failed == (0 if retried else 1)
    if not retried:  # it says why its retries were not used
        rule = next(iter(rules))
        assert detail.reason == f"exited with code 3; not retried: exit code 3 and {rule}"


def test_a_final_error_without_retries_left_says_nothing_more(fold):
    result, detail = result_row(retries=0, retry_on_exit_codes=[4]), detail_row()
    fold(result, detail)
    assert detail.reason == "exited with code 3"


def test_a_retried_attempt_is_no_failure_yet_and_the_last_one_is(fold):
    result, detail = result_row(retries=1, max_failures=1), detail_row()
    fold(result, detail)
    assert detail.status == "QUEUED" and result.n_failed == 0 and result.ended_by is None
    detail.attempt, detail.status, detail.runner = 2, "RUNNING", "runner-1"
    fold(result, detail)
    assert detail.status == "ERROR" and result.n_failed == 1 and result.ended_by == "max_failures"


def test_max_failures_marks_the_run_stopped_once_it_is_reached(fold):
    result = result_row(max_failures=2)
    fold(result, detail_row())
    assert result.n_failed == 1 and result.ended_by is None and not policy.needs_stop(result)
    fold(result, detail_row())
    assert result.n_failed == 2 and result.ended_by == "max_failures" and policy.needs_stop(result)
    assert result.status == "RUNNING"  # the rest is stopped next (stop_result)


def test_a_timeout_counts_as_a_failure_and_a_cancel_does_not(fold):
    result = result_row(max_failures=5)
    fold(result, detail_row(), status="KILLED", exit_code=None, reason="timeout: still running after 1s")
    assert result.n_failed == 1
    fold(result, detail_row(cancel=True), status="KILLED", exit_code=None, reason="cancelled")
    fold(result, detail_row(), status="COMPLETE", exit_code=0, reason=None)
    assert result.n_failed == 1 and result.n_killed == 2


def test_a_run_cancelled_by_its_user_is_not_marked_by_max_failures(fold):
    result = result_row(max_failures=1)
    result.cancel_requested = True
    fold(result, detail_row())
    assert result.n_failed == 1 and result.ended_by is None


def test_once_the_run_is_stopped_no_failed_attempt_is_queued_again(fold):
    result, detail = result_row(retries=3), detail_row()
    result.ended_by = "max_failures"
    fold(result, detail)
    assert detail.status == "ERROR"


@pytest.mark.parametrize("ended_by", ["max_failures", "deadline"])
def test_an_execution_the_policy_stopped_says_why(fold, ended_by):
    result = result_row()
    result.ended_by, result.cancel_requested = ended_by, True
    killed, unstarted, timed_out, own = detail_row(), detail_row(), detail_row(), detail_row(cancel=True)
    fold(result, killed, status="KILLED", exit_code=None, reason="cancelled")
    fold(result, unstarted, status="CANCELLED", exit_code=None, reason="cancelled before it started")
    fold(result, timed_out, status="KILLED", exit_code=None, reason="timeout: still running after 9s")
    fold(result, own, status="KILLED", exit_code=None, reason="cancelled")
    assert (killed.reason, unstarted.reason) == (ended_by, ended_by)
    assert timed_out.reason.startswith("timeout") and own.reason == "cancelled"


# ---------------------------------------------------------------- the run's end

def ended(ended_by, cancel=True, **counters):
    row = SimpleNamespace(times=4, start=1.0, cancel_requested=cancel, ended_by=ended_by, n_running=0,
                          n_complete=0, n_error=0, n_cancelled=0, n_killed=0)
    for name, value in counters.items():
        setattr(row, f"n_{name}", value)
    return row


@pytest.mark.parametrize("row, status", [
    (ended("max_failures", error=1, cancelled=3), "ERROR"),
    (ended("max_failures", error=1, killed=1, cancelled=2), "ERROR"),   # not KILLED: it failed
    (ended("max_failures", error=3, complete=1, cancel=False), "ERROR"),  # reached on the last one
    (ended("deadline", cancelled=4), "KILLED"),                          # nothing had started
    (ended("deadline", complete=3, cancelled=1), "KILLED"),
    (ended("deadline", complete=2, killed=2), "KILLED"),
    (ended(None, cancelled=4), "CANCELLED"),                             # a user's cancel, as before
    (ended(None, cancel=False, complete=4), "COMPLETE"),
])
def test_a_stopped_run_ends_as_its_policy_says_whatever_its_executions_ended(row, status):
    assert derive_status(row) == status


def test_a_stopped_run_is_not_finished_before_all_its_executions_are():
    assert derive_status(ended("deadline", error=1, cancelled=2)) == "RUNNING"


def test_the_deadline_is_counted_from_when_the_run_may_start():
    assert policy.deadline_at({"deadline": 60}, 1000.0) == 1060.0
    assert policy.deadline_at({"times": 1}, 1000.0) is None
    waiting = SimpleNamespace(params={"deadline": 30, "after": [{"result_id": "x"}]}, deadline_at=None)
    assert policy.arm_deadline(waiting, 500.0) == 530.0 and waiting.deadline_at == 530.0


class Adding(Session):
    def __init__(self):
        self.added = []

    def add(self, row):
        self.added.append(row)


@pytest.mark.parametrize("extra, armed", [({}, True), ({"after": []}, True), ({"after": [{"result_id": "a"}]}, False)])
def test_a_new_run_gets_its_deadline_at_submission_unless_it_waits_for_others(monkeypatch, extra, armed):
    from services.scheduler.executions import quotas
    from services.scheduler.executions.submit import create_result

    monkeypatch.setattr(quotas, "admit", lambda session, team, times: None)  # quotas: tests/interface, e2e
    params = {**run(deadline=60), **extra}
    result, created = create_result(Adding(), "t" * 32, "app", "img@sha256:x", params)
    assert created and result.n_failed == 0 and result.ended_by is None
    assert result.deadline_at == (result.submitted_at + 60 if armed else None)


# ---------------------------------------------------------------- the scheduler's side

def test_a_stop_is_announced_once_to_the_runners_with_its_reason_and_counted(monkeypatch):
    from nameko.testing.services import worker_factory

    from services.scheduler.service import SchedulerService

    row = SimpleNamespace(id="r" * 32, ended_by="deadline", status="RUNNING", team="ml", submitted_by="ci-bot")
    answers = [(row, 3, True), (row, 0, False), (None, 0, False)]
    monkeypatch.setattr(policy, "stop_result", lambda session, result_id, why: answers.pop(0))
    service = worker_factory(SchedulerService)
    for _ in range(3):
        service._stop(row.id, "deadline")
    service.dispatch.assert_called_once_with("result_cancelled", {"result_id": row.id, "reason": "deadline",
                                                                  "team": "ml", "submitted_by": "ci-bot"})
    service.metrics.run_stopped.assert_called_once_with("deadline")
    assert [c.args for c in service.metrics.executions_cancelled.call_args_list] == [(3,), (0,)]


def test_the_stop_metric_serves_both_reasons_from_the_start():
    from prometheus_client import CollectorRegistry

    from services.scheduler.metrics import SchedulerMetrics

    metrics, registry = SchedulerMetrics(), CollectorRegistry()
    metrics.declare(registry)
    assert registry.get_sample_value("stevedore_runs_stopped_total", {"reason": "deadline"}) == 0
    metrics.run_stopped("max_failures")
    assert registry.get_sample_value("stevedore_runs_stopped_total", {"reason": "max_failures"}) == 1
