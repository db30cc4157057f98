"""Waking as many idle runners as there is work for (services/scheduler/idlerunners.py), and the
runner's side: a wake-up meant for others is ignored, one that comes during a claim is not lost."""
from types import SimpleNamespace

import eventlet

from services.runner.service import RunnerService
from services.runner.slots import Holdings
from services.scheduler.idlerunners import IdleRunners


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def idle_of(*runners, clock=None, keep=5.0):
    idle = IdleRunners(keep_seconds=keep, clock=clock or Clock())
    for runner in runners:
        idle.claimed(runner, None)
    return idle


def test_one_execution_wakes_one_idle_runner_and_a_spare_the_most_recently_seen():
    idle = idle_of("a", "b", "c", "d")
    assert idle.pick(1) == ["c", "d"]
    assert idle.pick(1) == ["a", "b"]  # the named ones were taken off: they claim now
    assert idle.pick(1) is None        # none known: everyone wakes


def test_fewer_idle_runners_known_than_needed_wakes_everyone():
    idle = idle_of("a", "b", "c")
    assert idle.pick(3) is None
    assert idle.pick(2) == ["a", "b", "c"]


def test_a_runner_that_got_work_is_not_idle_and_one_that_found_none_is_again():
    idle = idle_of("a", "b", "c")
    idle.claimed("c", {"detail_id": "x"})
    assert idle.pick(1) == ["a", "b"]
    idle.claimed("b", None)  # named, claimed, found nothing: idle again
    idle.claimed("c", None)
    assert idle.pick(1) == ["b", "c"]


def test_a_runner_not_heard_from_for_longer_than_it_is_kept_drops_out():
    clock = Clock()
    idle = idle_of("a", "b", clock=clock, keep=5.0)
    clock.now += 3
    idle.claimed("c", None)  # seen later; a and b are now 3 s old
    clock.now += 2.5         # a and b 5.5 s old: gone (busy, or gone away)
    assert idle.pick(1) is None
    idle.claimed("a", None)  # a polled again: back
    assert idle.pick(1) == ["c", "a"]


def holdings():
    held = Holdings()
    held.container = SimpleNamespace(config={"RUNNER_ID": "me"})
    held.setup()
    return held


def test_the_runner_wakes_when_named_or_when_nobody_is_named():
    service = RunnerService()
    service.holdings = held = holdings()
    service.on_executions_queued({"result_id": "r", "count": 1, "runners": ["other", "another"]})
    assert held.wakes == 0
    service.on_executions_queued({"result_id": "r", "count": 1, "runners": ["other", "me"]})
    assert held.wakes == 1
    service.on_executions_queued({"result_id": "r", "count": 5000})
    assert held.wakes == 2


def test_a_wake_up_during_a_claim_is_not_lost_to_the_poll_interval():
    held = holdings()
    before = held.wakes
    held.wake()  # arrives while the slot's claim finds nothing, before it waits
    with eventlet.Timeout(1.0):  # without ``since`` this would wait the whole poll interval
        held.wait(30.0, since=before)
    # and with no wake-up since, it waits until one comes
    now = held.wakes
    eventlet.spawn_after(0.05, held.wake)
    with eventlet.Timeout(1.0):
        held.wait(30.0, since=now)
    assert held.wakes == now + 1
