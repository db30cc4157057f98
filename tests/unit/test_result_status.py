"""The result's status and counts follow from its counters alone."""
from types import SimpleNamespace

import pytest

from services.scheduler.executions.reports import backoff
from services.scheduler.executions.state import counts, derive_status


def result(times=3, start=None, cancel=False, running=0, complete=0, error=0, cancelled=0, killed=0):
    return SimpleNamespace(times=times, start=start, cancel_requested=cancel, n_running=running,
                           n_complete=complete, n_error=error, n_cancelled=cancelled, n_killed=killed)


def test_queued_until_the_first_execution_starts():
    assert derive_status(result()) == "QUEUED"
    assert derive_status(result(start=1.0, running=1)) == "RUNNING"


def test_running_while_any_is_queued_or_running():
    assert derive_status(result(start=1.0, complete=2)) == "RUNNING"


@pytest.mark.parametrize("kwargs, status", [
    ({"complete": 3}, "COMPLETE"),
    ({"complete": 2, "error": 1}, "ERROR"),
    ({"complete": 2, "killed": 1}, "ERROR"),          # a timeout, not a cancel
    ({"cancel": True, "cancelled": 3}, "CANCELLED"),
    ({"cancel": True, "complete": 1, "cancelled": 2}, "CANCELLED"),
    ({"cancel": True, "killed": 1, "cancelled": 2}, "KILLED"),
    ({"cancel": True, "complete": 3}, "COMPLETE"),    # the cancel came too late to matter
])
def test_final_status(kwargs, status):
    assert derive_status(result(start=1.0, **kwargs)) == status


def test_counts_derive_queued_from_the_rest():
    assert counts(result(times=10, running=2, complete=3, error=1)) == {
        "QUEUED": 4, "RUNNING": 2, "COMPLETE": 3, "ERROR": 1, "CANCELLED": 0, "KILLED": 0}


def test_backoff_doubles_and_is_capped():
    assert [backoff(n, 1, 5) for n in (1, 2, 3, 4, 5)] == [1, 2, 4, 5, 5]
