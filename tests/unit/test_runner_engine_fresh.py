"""A runner pings its engine before a claim only when it has not heard from it lately."""
import docker

from services.runner import dependencies
from services.runner.dependencies import ENGINE_FRESH, Executor

POLICY = {"default_memory": None, "pids_limit": 64, "network": "none", "grace": 1, "log_limit": 100}


class Engine:
    def __init__(self):
        self.pings, self.away = 0, False

    def ping(self):
        self.pings += 1
        if self.away:
            raise docker.errors.DockerException("connection refused")
        return True


def test_an_engine_heard_from_lately_is_not_pinged_and_one_away_is_pinged_each_time(monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr(dependencies.time, "monotonic", lambda: clock[0])
    engine = Engine()
    executor = Executor(engine, POLICY)
    assert executor.engine_ok() and engine.pings == 1
    clock[0] += ENGINE_FRESH - 0.5        # woken again and again while idle: no ping
    assert executor.engine_ok() and engine.pings == 1
    clock[0] += 1.0
    assert executor.engine_ok() and engine.pings == 2

    engine.away = True
    clock[0] += ENGINE_FRESH + 1
    assert not executor.engine_ok()
    assert not executor.engine_ok()       # away: asked every time until it answers
    assert engine.pings == 4
    engine.away = False
    assert executor.engine_ok() and engine.pings == 5
