"""The scheduler's sweep of runs that wait for others (services/scheduler/waits.py): what it settles when."""
from types import SimpleNamespace

from services.scheduler import waits


class Sweeper(waits.DependenciesMixin):
    def __init__(self):
        self.db = SimpleNamespace(session=None)
        self.settled = []

    def _settle(self, result_id, index=None):
        self.settled.append(result_id)


def test_a_run_whose_awaited_run_ended_is_settled_at_every_sweep_and_pairs_at_most_once_a_minute(monkeypatch):
    clock = [1000.0]
    waiting = [("pairs", False), ("ended", True)]
    monkeypatch.setattr(waits.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(waits.deps, "waiting_results", lambda session: list(waiting))
    monkeypatch.setattr(waits, "_pairs_swept", {})
    sweeper = Sweeper()
    sweeper.sweep_dependencies()
    assert sweeper.settled == ["pairs", "ended"]
    clock[0] += 10
    sweeper.sweep_dependencies()
    assert sweeper.settled == ["pairs", "ended", "ended"]
    clock[0] += waits.PAIRS_SWEEP_EVERY
    sweeper.sweep_dependencies()
    assert sweeper.settled[-2:] == ["pairs", "ended"]
    waiting.clear()
    sweeper.sweep_dependencies()
    assert waits._pairs_swept == {}  # forgotten once settled
