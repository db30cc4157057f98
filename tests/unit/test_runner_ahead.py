"""A slot's next execution prepared ahead (services/runner/ahead.py): taken when the slot frees, handed back
past its bound, cancelled or stopping, never dropped; and the runner's worker pool following its slots."""
from types import SimpleNamespace

import eventlet
from eventlet.greenpool import GreenPool

from services.runner.ahead import Ahead, Durations
from services.runner.slots import WORKER_HEADROOM, ExecutionSlots
from shared.queues import Container, workers_needed

WORK = {"detail_id": "d1", "attempt": 1, "result_id": "r1"}
CONTAINER = SimpleNamespace(id="c1")


class Fakes:
    """What the runner gives an ``Ahead``, recording what it was asked."""

    def __init__(self, work=WORK, handed_back=True, claim_takes=0.0):
        self.work, self.handed_back, self.claim_takes = work, handed_back, claim_takes
        self.claims, self.hand_backs, self.discarded = 0, [], []
        self.stop = set()
        self.counted = []

    def claim(self):
        self.claims += 1
        eventlet.sleep(self.claim_takes)
        return self.work

    def prepare(self, work):
        return CONTAINER

    def hand_back(self, work):
        self.hand_backs.append(work["detail_id"])
        return self.handed_back

    def discard(self, work, container):
        self.discarded.append((work["detail_id"], container))

    def verdict(self, detail_id):
        return detail_id in self.stop

    def ahead(self, bound=60.0, **options):
        return Ahead(bound, self.claim, self.prepare, self.hand_back, self.discard, self.verdict,
                     count=self.counted.append, poll=0.01, **options)


def settle(ahead, state, timeout=2.0):
    with eventlet.Timeout(timeout):
        while ahead.state != state:
            eventlet.sleep(0.005)


def test_the_slot_takes_its_prepared_execution_and_container_when_it_frees():
    fakes = Fakes()
    ahead = fakes.ahead()
    ahead.begin(0.0)
    settle(ahead, "ready")
    assert ahead.take() == (WORK, CONTAINER)
    assert ahead.outcome == "started" and fakes.counted == ["started"]
    eventlet.sleep(0.05)
    assert fakes.hand_backs == [] and fakes.discarded == []


def test_one_not_started_within_its_bound_is_handed_back_and_its_container_removed():
    fakes = Fakes()
    ahead = fakes.ahead(bound=0.1)
    ahead.begin(0.0)
    settle(ahead, "gone")
    assert fakes.hand_backs == ["d1"]
    assert fakes.discarded == [("d1", CONTAINER)]
    assert ahead.take() is None
    assert ahead.outcome == "handed_back" and fakes.counted == ["handed_back"]  # counted when it happens


def test_a_cancelled_prepared_execution_is_handed_back_at_once_not_at_its_bound():
    fakes = Fakes()
    ahead = fakes.ahead(bound=60.0)
    ahead.begin(0.0)
    settle(ahead, "ready")
    fakes.stop.add("d1")
    settle(ahead, "gone", timeout=1.0)
    assert fakes.hand_backs == ["d1"] and fakes.discarded == [("d1", CONTAINER)]


def test_one_no_longer_ours_is_forgotten_with_its_container():
    fakes = Fakes(handed_back=False)
    ahead = fakes.ahead(bound=0.05)
    ahead.begin(0.0)
    settle(ahead, "gone")
    assert fakes.discarded == [("d1", CONTAINER)]
    assert ahead.outcome == "not_ours"


def test_a_hand_back_the_scheduler_cannot_hear_keeps_it_for_the_slot_and_asks_again_later():
    fakes = Fakes(handed_back=None)
    ahead = fakes.ahead(bound=0.05, retry=0.2)
    ahead.begin(0.0)
    with eventlet.Timeout(2):
        while not fakes.hand_backs:
            eventlet.sleep(0.005)
    eventlet.sleep(0.05)
    assert ahead.state == "ready" and len(fakes.hand_backs) == 1  # not asked again before ``retry``
    assert ahead.take() == (WORK, CONTAINER)  # never dropped: the slot runs it
    assert fakes.discarded == []


def test_nothing_is_claimed_when_the_slot_frees_before_the_claim_was_due():
    fakes = Fakes()
    ahead = fakes.ahead()
    ahead.begin(10.0)
    assert ahead.take() is None
    eventlet.sleep(0.05)
    assert fakes.claims == 0 and ahead.outcome is None


def test_a_slot_that_frees_while_the_claim_is_under_way_waits_for_it():
    fakes = Fakes(claim_takes=0.1)
    ahead = fakes.ahead()
    ahead.begin(0.0)
    eventlet.sleep(0.01)
    assert ahead.state == "preparing"
    assert ahead.take() == (WORK, CONTAINER)


def test_nothing_is_prepared_for_a_run_none_of_whose_executions_ended_here():
    fakes = Fakes()
    ahead = fakes.ahead()
    ahead.begin(None)
    eventlet.sleep(0.02)
    assert ahead.take() is None and fakes.claims == 0


def test_a_claim_that_finds_nothing_leaves_nothing_to_take():
    fakes = Fakes(work=None)
    ahead = fakes.ahead()
    ahead.begin(0.0)
    settle(ahead, "gone")
    assert ahead.take() is None and ahead.outcome is None


def test_a_slot_that_fails_hands_back_what_it_prepared():
    fakes = Fakes()
    ahead = fakes.ahead()
    ahead.begin(0.0)
    settle(ahead, "ready")
    ahead.close()
    assert fakes.hand_backs == ["d1"] and fakes.discarded == [("d1", CONTAINER)]
    assert ahead.outcome == "handed_back" and fakes.counted == ["handed_back"]


def test_the_next_claim_is_due_a_lead_before_the_runs_last_duration():
    durations = Durations(kept=2)
    assert durations.delay("r1") is None  # none of its run ended here yet: nothing prepared
    durations.note("r1", 10.0)
    assert durations.delay("r1", lead=1.0) == 9.0
    durations.note("r2", 0.3)
    assert durations.delay("r2", lead=1.0) == 0.0
    durations.note("r3", 5.0)
    assert list(durations.last) == ["r2", "r3"]  # bounded: the oldest run forgotten


# ---------------------------------------------------------------- the worker pool follows the slots

def test_a_runner_with_many_slots_gets_a_worker_for_each_and_its_heartbeats_whatever_max_workers_says():
    slots = ExecutionSlots.__new__(ExecutionSlots)
    slots.container = SimpleNamespace(config={"RUNNER_SLOTS": "32"}, service_name="runner")
    container = SimpleNamespace(extensions=[slots, object()], max_workers=10, _worker_pool=GreenPool(10),
                                service_name="runner")
    assert workers_needed(container) == 32 + WORKER_HEADROOM
    Container.grow_workers(container)
    assert container.max_workers == 32 + WORKER_HEADROOM
    assert container._worker_pool.size == 32 + WORKER_HEADROOM


def test_a_worker_pool_bigger_than_needed_is_left_as_set():
    container = SimpleNamespace(extensions=[object()], max_workers=48, _worker_pool=GreenPool(48),
                                service_name="scheduler")
    Container.grow_workers(container)
    assert container.max_workers == 48 and container._worker_pool.size == 48
