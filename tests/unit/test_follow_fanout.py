"""Bounded log followers: one poll per interval per execution, however many follow; a cap on followers.

A fake scheduler answers ``get_log_bytes`` the scheduler's way (``output.as_base64``,
``since``) and counts its reads; a fake sleep stands for each poll interval and
makes the job print a line.
"""
import itertools
import json

import eventlet
import pytest

from services.gateway.follow import BACKLOG, Followers
from services.gateway.log_events import Follower, new_bytes
from services.scheduler.output import STREAMS, as_base64, past

KEY = ("r1", "d1")


class FakeScheduler:
    """An execution printing ``line-<n>`` at each tick; it ends at tick ``end_at``. Keeps ``limit`` bytes."""

    def __init__(self, end_at=10, limit=1 << 20):
        self.out, self.ticks, self.end_at, self.limit = b"", 0, end_at, limit
        self.status, self.attempt = "RUNNING", 1
        self.reads = []  # the ``since`` of each get_log_bytes call (None: a whole read)

    def tick(self):
        self.ticks += 1
        self.out += f"line-{self.ticks}\n".encode()
        if self.ticks >= self.end_at:
            self.status = "COMPLETE"

    def row(self):
        total, half = len(self.out), self.limit // 2
        kept = self.out if total <= self.limit else self.out[:half] + self.out[total - (self.limit - half):]
        head = len(kept) if total <= self.limit else half
        return {"stdout": kept, "stdout_head": head, "stdout_total": total,
                "stderr": b"", "stderr_head": 0, "stderr_total": 0}

    def get_log_bytes(self, result_id, detail_id, streams=STREAMS, since=None):
        self.reads.append(since)
        offsets = since
        if since is not None and since.get("attempt") != self.attempt:
            offsets = {}
        return {"detail_id": detail_id, "status": self.status, "attempt": self.attempt,
                "logs_attempt": self.attempt, **as_base64(self.row(), streams, offsets)}

    def get_detail(self, result_id, detail_id):
        return {"status": self.status, "exit_code": 0, "reason": None}

    def polls(self):
        return sum(1 for since in self.reads if since is not None)


class Interval:
    """The pollers' sleep: one tick of the job, then a turn for every follower to read what came."""

    def __init__(self, scheduler, on_tick=None):
        self.scheduler, self.on_tick, self.count = scheduler, on_tick, 0

    def __call__(self, seconds):
        self.count += 1
        self.scheduler.tick()
        if self.on_tick:
            self.on_tick(self.count)
        for _ in range(3):
            eventlet.sleep(0)


def open_follow(followers, scheduler):
    """What the gateway does on ``?follow=true``: a place, a first whole read, the stream."""
    place = followers.reserve()
    assert place is not None
    return followers.stream(KEY, scheduler, scheduler.get_log_bytes(*KEY), place)


def stdout_of(chunks):
    """The stdout text and the end event of SSE chunks (``skipped`` as ``[n omitted]``)."""
    text, end = "", None
    for chunk in chunks:
        event, *data = [line.split(": ", 1)[-1] for line in chunk.splitlines() if line]
        if event == "stdout":
            text += "".join(line + "\n" for line in data)
        elif event == "skipped":
            text += f"[{json.loads(data[0])['bytes']} omitted]"
        elif event == "end":
            end = json.loads(data[0])
    return text, end


def follow_all(followers, scheduler, n):
    threads = [eventlet.spawn(lambda s: list(s), open_follow(followers, scheduler)) for _ in range(n)]
    return threads


def test_fifty_followers_of_one_execution_share_one_poll_per_interval():
    scheduler = FakeScheduler(end_at=10)
    sleep = Interval(scheduler)
    followers = Followers(limit=100, sleep=sleep)
    threads = follow_all(followers, scheduler, 50)
    outputs = [stdout_of(t.wait()) for t in threads]
    expected = "".join(f"line-{i}\n" for i in range(1, 11))
    assert outputs == [(expected, {"status": "COMPLETE", "exit_code": 0, "reason": None})] * 50
    assert scheduler.polls() == sleep.count == 10  # one poll per interval, not one per follower
    assert scheduler.reads.count(None) == 50       # each follower's own first read
    assert followers.count == 0 and followers.pollers == {}


def test_polls_ask_only_past_what_the_followers_have():
    scheduler = FakeScheduler(end_at=5)
    followers = Followers(sleep=Interval(scheduler))
    [thread] = follow_all(followers, scheduler, 1)
    thread.wait()
    offsets = [since["stdout"] for since in scheduler.reads if since is not None]
    assert offsets == [0, len(b"line-1\n"), len(b"line-1\nline-2\n"), 21, 28]
    answer = scheduler.get_log_bytes(*KEY, since={"attempt": 1, "stdout": 28, "stderr": 0})
    assert answer["stdout_since"] == 28 and answer["stdout"] == "bGluZS01Cg=="  # line-5: only the new bytes travel


def test_a_follower_joining_late_first_gets_what_is_kept_then_the_same_as_the_others():
    scheduler = FakeScheduler(end_at=12, limit=40)  # keeps 20 first and 20 last bytes
    late = []
    followers = Followers(sleep=Interval(scheduler, on_tick=lambda n: n == 8 and late.extend(
        follow_all(followers, scheduler, 3))))
    early = follow_all(followers, scheduler, 3)
    outputs = {stdout_of(t.wait())[0] for t in early}
    assert len(late) == 3
    outputs |= {stdout_of(t.wait())[0] for t in late}
    assert len(outputs) == 2, outputs  # the early ones saw every line, the late ones a gap
    seen_all = "".join(f"line-{i}\n" for i in range(1, 13))
    assert seen_all in outputs
    [with_gap] = outputs - {seen_all}
    assert with_gap.startswith("line-1\nline-2\nline-3\n") and "omitted]" in with_gap
    assert with_gap.endswith("line-11\nline-12\n")
    assert scheduler.polls() == 12


def test_a_follower_that_stops_reading_is_caught_up_by_offsets_without_a_gap():
    scheduler = FakeScheduler(end_at=BACKLOG * 3)
    followers = Followers(sleep=Interval(scheduler))
    slow = iter(open_follow(followers, scheduler))
    next(slow)  # subscribed, then it reads nothing for a while
    others = follow_all(followers, scheduler, 2)
    eventlet.sleep(0)
    while scheduler.ticks < BACKLOG * 2:
        eventlet.sleep(0)
    stalled = [since["stdout"] for since in scheduler.reads[-3:]]
    assert min(stalled) > 7 * BACKLOG  # the polls go on past it, not from its offset (line-1)
    text, end = stdout_of(["event: stdout\ndata: line-1\n\n", *slow])
    assert text == "".join(f"line-{i}\n" for i in range(1, BACKLOG * 3 + 1))
    assert end["status"] == "COMPLETE"
    assert all(stdout_of(t.wait())[0] == text for t in others)


def test_followers_past_the_cap_get_a_503_and_a_gone_follower_frees_its_place():
    scheduler = FakeScheduler(end_at=1000)
    followers = Followers(limit=2, sleep=Interval(scheduler))
    first, second = open_follow(followers, scheduler), open_follow(followers, scheduler)
    assert followers.reserve() is None
    status, headers, body = followers.full_response()
    assert status == 503 and headers["Retry-After"].isdigit()
    assert body["error"] == "UNAVAILABLE" and body["message"].startswith("follow: ")
    second.close()  # eventlet.wsgi closes the body of a response it could not send, started or not
    assert followers.count == 1 and followers.reserve() is not None
    chunks = iter(first)
    next(chunks)
    while scheduler.ticks < 3:
        eventlet.sleep(0)
    assert followers.pollers  # polled while someone follows
    chunks.close()  # the client went away: its write failed, wsgi closed the generator
    eventlet.sleep(0)
    while KEY in followers.pollers:
        eventlet.sleep(0)
    ticks = scheduler.ticks
    for _ in range(10):
        eventlet.sleep(0)
    assert scheduler.ticks == ticks  # nobody follows: no more polls
    assert followers.count == 1  # the place reserved above, never used


def test_a_stream_ends_after_its_deadline_with_the_status_then():
    scheduler = FakeScheduler(end_at=1000)
    now = itertools.count()
    followers = Followers(sleep=Interval(scheduler), clock=lambda: next(now), max_seconds=5)
    text, end = stdout_of(open_follow(followers, scheduler))
    assert end == {"status": "RUNNING", "exit_code": 0, "reason": None}
    assert text.startswith("line-1\n") and followers.count == 0


def test_a_deleted_result_ends_its_followers():
    from shared.errors import NotFound

    scheduler = FakeScheduler(end_at=1000)

    def gone(n):
        if n == 2:
            scheduler.get_log_bytes = lambda *a, **k: (_ for _ in ()).throw(NotFound("no such result", "result_id"))

    followers = Followers(sleep=Interval(scheduler, on_tick=gone))
    outputs = [stdout_of(t.wait()) for t in follow_all(followers, scheduler, 3)]
    assert all(end["status"] is None and "no such result" in end["reason"] for _, end in outputs)
    assert followers.count == 0 and followers.pollers == {}


@pytest.mark.parametrize("since", range(0, 31))
def test_reading_past_an_offset_gives_what_a_whole_read_gives_past_it(since):
    kept = b"0123456789" + b"UVWXYZ"  # the first 10 bytes of 30, then the last 6
    def joined(before, omitted, after):  # with nothing omitted, where "before" ends is moot
        return (before, omitted, after) if omitted else (before + after, 0, b"")

    whole = new_bytes(kept, 10, 30, since)
    cut, head, start = past(kept, 10, 30, since)
    assert start == since
    assert joined(*new_bytes(cut, head, 30, since, since)) == joined(*whole)


def test_an_answer_for_a_new_attempt_starts_it_afresh():
    follower = Follower()
    first = {"status": "RUNNING", "attempt": 1, "logs_attempt": 1,
             **as_base64({"stdout": b"try one\n", "stdout_head": 8, "stdout_total": 8})}
    again = {"status": "RUNNING", "attempt": 2, "logs_attempt": 2,
             **as_base64({"stdout": b"try two\n", "stdout_head": 8, "stdout_total": 8}, since={})}
    events = list(follower.new_events(first)) + list(follower.new_events(again))
    assert stdout_of(events)[0] == "try one\ntry two\n"
    assert events[1].startswith("event: attempt")


def provider_with(value):
    from types import SimpleNamespace

    from services.gateway.follow import FollowersProvider

    provider = FollowersProvider()
    provider.container = SimpleNamespace(config={"FOLLOW_MAX": value}, spawn_managed_thread=eventlet.spawn)
    provider.setup()
    return provider.followers


def test_follow_max_is_read_at_start_and_a_bad_value_stops_the_gateway_naming_it():
    assert provider_with("7").limit == 7 and provider_with("").limit == 100
    assert provider_with("0").reserve() is None  # 0: follow off
    for bad in ("many", "-1", "1.5"):
        with pytest.raises(ValueError, match="FOLLOW_MAX"):
            provider_with(bad)


def test_a_scheduler_from_before_since_is_read_whole_and_followers_still_get_each_line_once():
    from nameko.exceptions import IncorrectSignature

    scheduler = FakeScheduler(end_at=6)
    newer = scheduler.get_log_bytes

    def older(result_id, detail_id, streams=STREAMS, **since):
        if since:
            raise IncorrectSignature("get_log_bytes() got an unexpected keyword argument 'since'")
        return newer(result_id, detail_id, streams)

    scheduler.get_log_bytes = older
    followers = Followers(sleep=Interval(scheduler))
    outputs = [stdout_of(t.wait())[0] for t in follow_all(followers, scheduler, 3)]
    assert outputs == ["".join(f"line-{i}\n" for i in range(1, 7))] * 3
    assert scheduler.reads.count(None) == 3 + 6  # three first reads, then one whole read per interval


class Admission:
    """A stream's token or session (services/gateway/auth.py ``Admission``): it lets the stream in for
    ``holds_for`` checks, then no more."""

    def __init__(self, holds_for):
        self.holds_for, self.calls = holds_for, 0

    def holds(self):
        self.calls += 1
        return self.calls <= self.holds_for


class Clock:
    """The followers' clock: each poll interval (a tick of the job) is half a second."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def tick(self, n):
        self.now += 0.5


def test_a_stream_whose_token_or_session_stops_letting_it_in_ends_with_an_error_and_frees_its_place():
    scheduler, clock = FakeScheduler(end_at=1000), Clock()
    followers = Followers(sleep=Interval(scheduler, on_tick=clock.tick), clock=clock, check_seconds=1)
    place = followers.reserve()
    chunks = list(followers.stream(KEY, scheduler, scheduler.get_log_bytes(*KEY), place, Admission(3)))
    text, end = stdout_of(chunks)
    assert end is None  # no end's status for whom may no longer read
    event, data = chunks[-1].splitlines()[:2]
    assert event == "event: error" and json.loads(data.split(": ", 1)[1])["error"] == "UNAUTHORIZED"
    assert text.startswith("line-1\n") and scheduler.ticks < 10
    for _ in range(10):  # the poller's next turn finds no follower left
        eventlet.sleep(0)
    assert followers.count == 0 and followers.pollers == {}


def test_a_streams_token_is_asked_again_once_per_check_interval_not_once_per_chunk():
    scheduler, clock = FakeScheduler(end_at=20), Clock()
    followers = Followers(sleep=Interval(scheduler, on_tick=clock.tick), clock=clock, check_seconds=1)
    admission = Admission(1000)
    place = followers.reserve()
    text, end = stdout_of(followers.stream(KEY, scheduler, scheduler.get_log_bytes(*KEY), place, admission))
    assert end["status"] == "COMPLETE" and text.count("\n") == 20
    assert 5 <= admission.calls <= 11  # 20 answers over 10 seconds: about one check a second


def test_a_poller_reads_as_the_follower_who_started_it():
    from services.gateway.follow import CallerBound

    asked = []

    class Scheduler:
        def get_detail(self, *key, caller=None):
            asked.append((key, caller))
            return {"status": "RUNNING"}

    member = {"principal": "alice", "role": "member", "team": "ml", "address": None}
    assert CallerBound(Scheduler(), member).get_detail("r", "d") == {"status": "RUNNING"}
    assert asked == [(("r", "d"), member)]
