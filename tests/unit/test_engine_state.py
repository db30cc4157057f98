"""The runner's engine health: one object, with an injectable clock."""
import requests

from services.runner.engine import ENGINE_FRESH, ENGINE_PAUSE, Engine, EngineState


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


class Pings:
    def __init__(self, answers):
        self.answers = answers
        self.count = 0

    def ping(self):
        self.count += 1
        if not self.answers:
            raise requests.exceptions.ConnectionError("no engine")
        return True


def test_an_engine_that_just_answered_is_not_pinged_again_until_it_is_stale():
    clock, client = Clock(), Pings(answers=True)
    engine = Engine(client, {}, EngineState(clock=clock))
    assert engine.engine_ok() and engine.engine_ok()
    assert client.count == 1
    clock.now += ENGINE_FRESH
    assert engine.engine_ok() and client.count == 2


def test_an_engine_that_does_not_answer_is_pinged_every_time():
    client = Pings(answers=False)
    engine = Engine(client, {}, EngineState(clock=Clock()))
    assert not engine.engine_ok() and not engine.engine_ok()
    assert client.count == 2 and engine.state.answered_at is None


def test_a_failed_start_pauses_claims_then_asks_for_a_ping_first():
    clock = Clock()
    state = EngineState(clock=clock)
    state.answered()
    state.failed_start()
    assert state.paused() and state.away and not state.fresh()
    clock.now += ENGINE_PAUSE
    assert not state.paused() and state.away  # still away until a ping answers
