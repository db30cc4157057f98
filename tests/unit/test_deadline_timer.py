"""The deadline timer stops every run past its deadline, whatever one of them does."""
from nameko.testing.services import worker_factory
from sqlalchemy.exc import OperationalError
import pytest

from services.scheduler.executions import policy
from services.scheduler.service import SchedulerService


@pytest.fixture
def stops(monkeypatch):
    stopped = []
    monkeypatch.setattr(policy, "past_deadline", lambda session: ["a" * 32, "b" * 32, "c" * 32])
    return stopped


def test_a_run_whose_stop_fails_keeps_no_other_run_past_its_deadline(stops, monkeypatch):
    service = worker_factory(SchedulerService)

    def stop(result_id, why):
        if result_id == "b" * 32:
            raise ValueError("something odd about this run")
        stops.append((result_id, why))

    monkeypatch.setattr(service, "_stop", stop)
    service.stop_past_deadline()
    assert stops == [("a" * 32, "deadline"), ("c" * 32, "deadline")]
    service.db.session.rollback.assert_called()


def test_a_transient_failure_ends_the_tick_for_the_next_to_try_again(stops, monkeypatch):
    service = worker_factory(SchedulerService)

    def stop(result_id, why):
        raise OperationalError("UPDATE", {}, Exception("server closed the connection"))

    monkeypatch.setattr(service, "_stop", stop)
    with pytest.raises(OperationalError):
        service.stop_past_deadline()
