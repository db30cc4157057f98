"""A runner's slots claim together (services/runner/slots.py ``ClaimRounds``), and idle slots wait for the same
ticks of the poll interval; the runner's claim holds what it was given (services/runner/service.py)."""
from types import SimpleNamespace

import eventlet
import pytest

from services.runner.service import RunnerService
from services.runner.slots import ClaimRounds, Holdings, poll_wait, until_tick


class Scheduler:
    """A claim_executions that answers from a list, noting each call's count."""

    def __init__(self, works, delay=0.0):
        self.works, self.delay, self.counts = list(works), delay, []

    def claim(self, count):
        self.counts.append(count)
        eventlet.sleep(self.delay)
        given, self.works = self.works[:count], self.works[count:]
        return given


def spawn_slots(rounds, claim, slots):
    """Slots whose workers start at once (each expected), each asking."""
    for slot in slots:
        rounds.expect(slot)
    return [eventlet.spawn(rounds.take, claim, slot) for slot in slots]


def slots_take(rounds, claim, n):
    return [thread.wait() for thread in spawn_slots(rounds, claim, range(n))]


def test_slots_that_want_work_at_once_claim_in_one_call_each_getting_its_own():
    scheduler = Scheduler(["w1", "w2", "w3", "w4", "w5"])
    given = slots_take(ClaimRounds(), scheduler.claim, 5)
    assert scheduler.counts == [5]
    assert sorted(given) == ["w1", "w2", "w3", "w4", "w5"]


def test_a_round_waits_for_the_slots_on_their_way_and_no_longer_once_they_came_or_skipped():
    scheduler = Scheduler(["w1", "w2", "w3"])
    rounds = ClaimRounds()
    for slot in range(4):
        rounds.expect(slot)
    first = eventlet.spawn(rounds.take, scheduler.claim, 0)
    late = eventlet.spawn_after(0.005, rounds.take, scheduler.claim, 1)  # its worker took a moment to start
    eventlet.spawn_after(0.006, rounds.skip, 2)  # runs an adoption instead
    eventlet.spawn_after(0.007, rounds.take, scheduler.claim, 3)
    given = [first.wait(), late.wait()]
    assert scheduler.counts == [3] and sorted(given) == ["w1", "w2"] and not rounds.coming


def test_a_slot_on_its_way_that_never_comes_holds_a_round_up_only_a_moment():
    scheduler = Scheduler(["w1"])
    rounds = ClaimRounds()
    rounds.expect(7)
    with eventlet.Timeout(1.0):
        assert rounds.take(scheduler.claim, 0) == "w1"
    assert scheduler.counts == [1]


def test_slots_given_less_than_they_asked_for_get_none():
    scheduler = Scheduler(["w1", "w2"])
    given = slots_take(ClaimRounds(), scheduler.claim, 6)
    assert scheduler.counts == [6]
    assert sorted(work for work in given if work) == ["w1", "w2"] and given.count(None) == 4


def test_slots_that_come_during_a_claim_make_the_next_round():
    scheduler = Scheduler([f"w{i}" for i in range(10)], delay=0.05)
    rounds = ClaimRounds()
    first = spawn_slots(rounds, scheduler.claim, range(3))
    eventlet.sleep(0.02)  # the first round's call is under way
    later = spawn_slots(rounds, scheduler.claim, range(3, 7))
    given = [thread.wait() for thread in first + later]
    assert scheduler.counts == [3, 4]
    assert len(set(given)) == 7 and None not in given


def test_a_failed_claim_raises_in_the_leading_slot_and_gives_the_others_nothing():
    def failing(count):
        raise RuntimeError("scheduler away")

    rounds = ClaimRounds()
    threads = spawn_slots(rounds, failing, range(3))
    outcomes = []
    for thread in threads:
        try:
            outcomes.append(thread.wait())
        except RuntimeError:
            outcomes.append("raised")
    assert sorted(outcomes, key=str) == [None, None, "raised"]
    assert rounds.pending == []


def test_an_answer_longer_than_asked_is_cut_to_the_slots_that_asked():
    given = slots_take(ClaimRounds(), lambda count: ["a", "b", "c", "d"][:count + 2], 2)
    assert sorted(given) == ["a", "b"]


def test_a_runner_with_gpus_claims_one_execution_a_call():
    scheduler = Scheduler(["w1", "w2", "w3"])
    given = slots_take(ClaimRounds(most=1), scheduler.claim, 3)
    assert scheduler.counts == [1, 1, 1] and sorted(given) == ["w1", "w2", "w3"]


@pytest.mark.parametrize("stamp, phase, expected", [
    (0.0, 0.0, 2.0), (0.5, 0.0, 1.5), (1.99, 0.0, 0.01), (2.0, 0.0, 2.0), (0.5, 0.5, 0.5), (1.5, 0.5, 1.5), (1.0, 0.5, 2.0),
])
def test_idle_slots_wait_until_the_same_next_tick(stamp, phase, expected):
    assert until_tick(stamp, 2.0, phase) == pytest.approx(expected)


@pytest.mark.parametrize("stamp", [0.0, 0.3, 0.99, 1.0, 1.01, 1.7, 3.9])
def test_an_idle_slot_waits_half_to_one_and_a_half_intervals_ending_on_a_tick(stamp):
    wait = poll_wait(stamp, 2.0, 0.25)
    assert 1.0 <= wait <= 3.0
    assert until_tick(stamp + wait - 1e-6, 2.0, 0.25) == pytest.approx(1e-6, abs=1e-5)  # it ends on a tick


def holdings(**config):
    held = Holdings()
    held.container = SimpleNamespace(service_name="runner", config={"RUNNER_ID": "me", **config})
    held.setup()
    held.mark_reconciled()
    return held


def test_a_runners_phase_of_the_poll_interval_is_its_own_and_stays():
    assert holdings().poll_phase == holdings().poll_phase
    assert 0.0 <= holdings().poll_phase < 1.0
    assert holdings(RUNNER_GPUS="0").claims.most == 1 and holdings().claims.most is None


class FakeScheduler:
    def __init__(self, answer):
        self.answer, self.calls = answer, []

    def claim_executions(self, runner, count, **kwargs):
        self.calls.append((runner, count, kwargs))
        return self.answer


def work(detail_id):
    return {"detail_id": detail_id, "result_id": "r", "task_id": "t", "index": 0, "attempt": 1,
            "image": "img", "lease_seconds": 30}


def runner_with(answer):
    service = RunnerService()
    service.holdings = holdings()
    service.scheduler = FakeScheduler(answer)
    engine = SimpleNamespace(away=True, engine="28.0")  # known away: no check spawned alongside
    service.docker = SimpleNamespace(state=engine, ceilings=lambda: (None, None))
    service.metrics = SimpleNamespace(timed_claim=lambda: _Timed())
    return service


class _Timed:
    def __enter__(self):
        return {}

    def __exit__(self, *exc):
        return False


def test_the_runners_claim_asks_for_its_count_and_holds_each_execution_given():
    service = runner_with([work("a"), work("b")])
    given = service._claim(3)
    assert [item["detail_id"] for item in given] == ["a", "b"]
    assert set(service.holdings.held) == {"a", "b"}
    assert service.holdings.was_received("a", 1) and service.holdings.was_received("b", 1)
    runner, count, kwargs = service.scheduler.calls[0]
    assert (runner, count) == ("me", 3) and kwargs["info"]["held"] == []


def test_the_runners_claim_holds_no_more_than_it_asked_for_nor_what_it_cannot_read():
    service = runner_with([work("a"), {"detail_id": "broken"}, work("c"), work("d")])
    given = service._claim(3)
    assert [item["detail_id"] for item in given] == ["a", "c"]
    assert set(service.holdings.held) == {"a", "c"}
