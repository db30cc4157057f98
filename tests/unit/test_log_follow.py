"""``?follow=true``: what is new in each stream, from successive snapshots of kept bytes."""
import base64

from services.gateway.log_events import Follower, new_bytes, sse


def snapshot(stdout, head=None, total=None, attempt=1, status="RUNNING"):
    return {"status": status, "attempt": attempt, "logs_attempt": attempt,
            "stdout": base64.b64encode(stdout).decode(), "stdout_head": len(stdout) if head is None else head,
            "stdout_total": len(stdout) if total is None else total, "stderr": "", "stderr_head": 0,
            "stderr_total": 0}


def test_new_bytes_takes_the_head_then_counts_the_gap_then_the_tail():
    kept = b"HEADtail"  # 4 first bytes, then the last 4 of 100
    assert new_bytes(kept, 4, 100, 0) == (b"HEAD", 92, b"tail")
    assert new_bytes(kept, 4, 100, 2) == (b"AD", 92, b"tail")
    assert new_bytes(kept, 4, 100, 50) == (b"", 46, b"tail")
    assert new_bytes(kept, 4, 100, 98) == (b"", 0, b"il")
    assert new_bytes(b"whole", 5, 5, 2) == (b"ole", 0, b"")
    assert new_bytes(b"end", 0, 10, 0) == (b"", 7, b"end")  # an old row: the tail only


def test_a_character_split_between_two_polls_is_sent_whole():
    follower = Follower()
    euro = "\u20ac".encode()
    first = list(follower.new_events(snapshot(b"price " + euro[:2])))
    second = list(follower.new_events(snapshot(b"price " + euro + b"\n")))
    assert first == [sse("stdout", "price ")] and second == [sse("stdout", "\u20ac\n")]


def test_invalid_bytes_are_replaced_and_omitted_ones_announced():
    follower = Follower()
    events = list(follower.new_events(snapshot(b"a\xff\nZZ", head=3, total=1000)))
    assert events == [sse("stdout", "a\ufffd\n"), 'event: skipped\ndata: {"stream": "stdout", "bytes": 995}\n\n',
                      sse("stdout", "ZZ")]


def test_a_lone_cr_ends_a_data_line_so_nothing_after_it_is_lost():
    assert sse("stdout", "10%\r20%\r\ndone\n") == "event: stdout\ndata: 10%\ndata: 20%\ndata: done\n\n"


def test_a_stream_ending_inside_a_character_is_flushed_at_the_end():
    follower = Follower()
    assert list(follower.new_events(snapshot(b"x\xe2\x82"))) == [sse("stdout", "x")]
    assert list(follower.flush()) == [sse("stdout", "\ufffd")]
