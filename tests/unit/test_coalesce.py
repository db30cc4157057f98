import eventlet
import pytest

from shared.coalesce import Coalescer


class Backend:
    """A read that takes a while; each answer says when its call began."""

    def __init__(self, pause=0.05, fail=False):
        self.pause, self.fail, self.began = pause, fail, []

    def read(self):
        self.began.append(eventlet.hubs.get_hub().clock())
        call = len(self.began)
        eventlet.sleep(self.pause)
        if self.fail:
            raise LookupError(f"call {call} failed")
        return {"call": call, "began": self.began[-1]}


def test_a_lone_read_is_made_at_once():
    reads, backend = Coalescer(), Backend(pause=0)
    assert reads.call("r1", backend.read)["call"] == 1
    assert reads.call("r1", backend.read)["call"] == 2  # nothing in flight: a call of its own
    assert reads.calls == 2 and not reads.running and not reads.gathering


def test_reads_arriving_during_a_call_share_the_next_one_and_none_is_stale():
    reads, backend = Coalescer(), Backend()
    clock = eventlet.hubs.get_hub().clock
    answers = []

    def client():
        arrived = clock()
        answers.append((arrived, reads.call("r1", backend.read)))

    first = eventlet.spawn(client)
    eventlet.sleep(0.01)  # the first call is running
    others = [eventlet.spawn(client) for _ in range(5)]
    for thread in [first, *others]:
        thread.wait()
    assert len(backend.began) == 2  # six requests, two calls
    assert sorted(answer["call"] for _, answer in answers) == [1, 2, 2, 2, 2, 2]
    for arrived, answer in answers:
        assert answer["began"] >= arrived  # every answer was read after its request came


def test_keys_do_not_share_calls():
    reads, backend = Coalescer(), Backend()
    threads = [eventlet.spawn(reads.call, key, backend.read) for key in ("a", "b", "c")]
    assert sorted(t.wait()["call"] for t in threads) == [1, 2, 3]


def test_a_failed_call_fails_its_batch_and_the_next_read_tries_again():
    reads, backend = Coalescer(), Backend(fail=True)
    first = eventlet.spawn(reads.call, "r1", backend.read)
    eventlet.sleep(0.01)
    batch = [eventlet.spawn(reads.call, "r1", backend.read) for _ in range(3)]
    with pytest.raises(LookupError, match="call 1"):
        first.wait()
    for thread in batch:
        with pytest.raises(LookupError, match="call 2"):
            thread.wait()
    backend.fail = False
    assert reads.call("r1", backend.read)["call"] == 3
    assert not reads.running and not reads.gathering
