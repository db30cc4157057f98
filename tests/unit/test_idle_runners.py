"""Waking as few idle runners as have the free slots the work needs (services/scheduler/idlerunners.py), and
the runner's side: a wake-up meant for others is ignored, one that comes during a claim is not lost."""
from types import SimpleNamespace

import eventlet
import pytest

from services.runner.service import RunnerService
from services.runner.slots import Holdings
from services.scheduler import idlerunners
from services.scheduler.idlerunners import IdleRunners, free_after_claim


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def idle_of(*runners, clock=None, keep=5.0, free=1):
    idle = IdleRunners(keep_seconds=keep, clock=clock or Clock())
    for runner in runners:
        idle.claimed(runner, free)
    return idle


def test_one_execution_wakes_one_idle_runner_and_a_spare_the_most_recently_seen():
    idle = idle_of("a", "b", "c", "d")  # one free slot each
    assert idle.pick(1) == ["d", "c"]
    # the execution's slot counted as taken (d's); c's, the spare, still free until its claim tells
    assert idle.pick(1) == ["c", "b"]
    assert idle.pick(1) == ["b", "a"]
    assert idle.pick(1) is None  # one free slot known, not two: everyone wakes


def test_a_run_of_ten_names_one_runner_with_eleven_free_slots_not_eleven_runners():
    idle = idle_of("a", "b", "c", free=32)
    assert idle.pick(10) == ["c"]
    assert idle.seen["c"][1] == 22  # the ten counted as taken until its claim tells
    assert idle.pick(10) == ["c"]
    assert idle.pick(10) == ["c"]   # 12 free: still the ten and the spare
    assert idle.pick(10) == ["c", "b"]  # 2 free: the next most recent covers the rest
    assert "c" not in idle.seen and idle.seen["b"][1] == 24


def test_fewer_free_slots_known_than_needed_wakes_everyone():
    idle = idle_of("a", "b", "c", free=2)
    assert idle.pick(6) is None  # 6 free: not the 7 wanted
    assert idle.seen == idle_of("a", "b", "c", free=2).seen  # nothing counted as taken
    assert idle.pick(5) == ["c", "b", "a"]


def test_a_runner_that_got_work_on_every_slot_is_not_idle_and_one_with_free_slots_is_again():
    idle = idle_of("a", "b", "c")
    idle.claimed("c", 0)
    assert idle.pick(1) == ["b", "a"]
    idle.claimed("b", 1)  # named, claimed, found nothing: idle again
    idle.claimed("c", 3)
    assert idle.pick(1) == ["c"]


def test_a_runner_not_heard_from_for_longer_than_it_is_kept_drops_out():
    clock = Clock()
    idle = idle_of("a", "b", clock=clock, keep=5.0)
    clock.now += 3
    idle.claimed("c", 1)  # seen later; a and b are now 3 s old
    clock.now += 2.5      # a and b 5.5 s old: gone (busy, or gone away)
    assert idle.pick(1) is None
    idle.claimed("a", 1)  # a polled again: back
    assert idle.pick(1) == ["a", "c"]


@pytest.mark.parametrize("asked, given, slots, busy, free", [
    (4, 1, 4, 0, 3),     # asked for all its slots, given one: three found nothing
    (1, 0, 8, 3, 5),     # one slot asked (it just finished); four others wait for their poll tick
    (2, 2, 8, 3, 3),     # its claim got all it asked; the idle slots waiting for their tick are free
    (3, 3, 3, 0, 0),     # every slot given work: busy
    (5, 2, None, None, 3),  # no description (an older runner): what it asked and was not given
    (2, 0, 1, 1, 2),     # a description saying less than the claim: the claim's count
])
def test_a_claim_leaves_free_the_slots_neither_busy_nor_given_work(asked, given, slots, busy, free):
    assert free_after_claim(asked, given, slots, busy) == free


def test_a_heartbeat_lowers_a_listed_runners_free_slots_but_never_lists_nor_raises_nor_keeps_it():
    clock = Clock()
    idle = idle_of("a", "b", clock=clock, keep=5.0, free=8)
    idle.heard("a", 3)   # claims to another scheduler replica took five
    idle.heard("b", 20)  # never more than its claims said (slots counted as taken by a wake-up stay taken)
    idle.heard("z", 8)   # not listed: its claims list it
    assert {runner: free for runner, (_, free) in idle.seen.items()} == {"a": 3, "b": 8}
    idle.heard("a", 0)
    assert "a" not in idle.seen
    clock.now += 4
    idle.heard("b", 8)
    clock.now += 2
    assert idle.pick(1) is None  # heard but not claiming: dropped when its last claim is too old


def test_the_list_is_bounded_whatever_runner_ids_claims_send(monkeypatch):
    monkeypatch.setattr(idlerunners, "LISTED_MAX", 3)
    idle = idle_of("a", "b", "c", "d")
    assert list(idle.seen) == ["b", "c", "d"]


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
