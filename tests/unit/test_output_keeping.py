"""The runner's output handling without an engine: head and tail kept, chunks and frames split anywhere."""
import base64
import random
import struct
from types import SimpleNamespace

import pytest

from services.runner.confinement import log_config
from services.runner.dependencies import Executor
from services.runner.output import logs_report, merge_kept
from shared.docker_engine import (
    Dechunker,
    Demuxer,
    HeadTail,
    read_attached,
    stream_logs,
)
from shared.settings import RunnerSettings, parse


def engine_log(**settings):
    return log_config(parse(RunnerSettings, settings))


def _frame(stream, data):
    return struct.pack(">BxxxL", stream, len(data)) + data


def _chunked(body, sizes):
    """``body`` in HTTP chunks of the given sizes (cycled), with the last empty chunk."""
    out, at, n = [], 0, 0
    while at < len(body):
        size = sizes[n % len(sizes)]
        n += 1
        part = body[at:at + size]
        at += size
        out.append(b"%x\r\n" % len(part) + part + b"\r\n")
    return b"".join(out) + b"0\r\n\r\n"


def _pieces(data, rng, most=50):
    at = 0
    while at < len(data):
        step = rng.randint(1, most)
        yield data[at:at + step]
        at += step


def _fed(limit, pieces):
    keeper = HeadTail(limit)
    for piece in pieces:
        keeper.feed(piece)
    return keeper


def test_a_stream_within_the_limit_is_kept_whole():
    keeper = _fed(10, [b"hello", b" ", b"you!"])
    assert keeper.kept() == (10, b"hello you!")
    assert keeper.total == 10
    assert _fed(10, []).kept() == (0, b"")


def test_a_longer_stream_keeps_its_first_and_last_bytes_and_counts_all():
    stream = bytes(range(256)) * 40
    for sizes in ([1], [3, 7], [4096], [len(stream)]):
        pieces = [stream[i:i + sizes[0]] for i in range(0, len(stream), sizes[0])]
        keeper = _fed(101, pieces)
        head, kept = keeper.kept()
        assert head == 50 and kept == stream[:50] + stream[-51:]
        assert keeper.total == len(stream)


def test_the_keeper_memory_stays_bounded_whatever_is_fed():
    keeper = HeadTail(1000)
    for _ in range(5000):
        keeper.feed(b"x" * 777)
    assert len(keeper.head) == 500 and len(keeper.tail) <= 2 * 500
    assert keeper.total == 5000 * 777


def test_a_smaller_live_limit_keeps_a_prefix_of_the_head_and_the_latest_bytes():
    stream = bytes(range(200))
    keeper = _fed(1000, [stream])
    assert keeper.kept(50) == (25, stream[:25] + stream[-25:])   # nothing left out yet: end from the head
    keeper = _fed(100, [stream])
    assert keeper.kept(40) == (20, stream[:20] + stream[-20:])
    assert keeper.kept(1000) == (50, stream[:50] + stream[-50:])  # never past its own limit


def test_the_report_carries_base64_bytes_head_and_total_per_stream():
    kept = {"stdout": _fed(4, [b"\xff\x00abcdef"]), "stderr": _fed(4, [b"ok"])}
    report = logs_report(kept)
    assert report == {"encoding": "base64",
                      "stdout": base64.b64encode(b"\xff\x00ef").decode(), "stdout_head": 2, "stdout_total": 8,
                      "stderr": base64.b64encode(b"ok").decode(), "stderr_head": 2, "stderr_total": 2}


def test_frames_and_chunks_split_anywhere_come_out_whole_and_in_order():
    rng = random.Random(7)
    frames = [(rng.choice([1, 2]), bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 40))))
              for _ in range(300)]
    body = b"".join(_frame(kind, data) for kind, data in frames)
    expected = {1: b"".join(d for k, d in frames if k == 1), 2: b"".join(d for k, d in frames if k == 2)}
    for sizes in ([1], [2, 9, 5], [8], [4096]):
        wire = _chunked(body, sizes)
        got = {1: bytearray(), 2: bytearray()}
        dechunk, demux = Dechunker(), Demuxer({1: got[1].extend, 2: got[2].extend})
        for piece in _pieces(wire, rng):
            demux.feed(b"".join(dechunk.feed(piece)))
        assert dechunk.done
        assert got == expected


def test_the_dechunker_stops_at_the_last_chunk_and_refuses_a_runaway_size_line():
    dechunk = Dechunker()
    assert b"".join(dechunk.feed(b"3;ext=1\r\nabc\r\n0\r\n\r\nafter")) == b"abc"
    assert dechunk.done
    with pytest.raises(ValueError):
        Dechunker().feed(b"1" * 5000)


def test_frames_of_other_streams_are_skipped_even_when_split():
    got = bytearray()
    demux = Demuxer({1: got.extend})
    wire = _frame(2, b"err") + _frame(0, b"in") + _frame(1, b"out")
    for byte in wire:
        demux.feed(bytes([byte]))
    assert bytes(got) == b"out"


def test_containers_get_a_capped_engine_log():
    config = engine_log(CONTAINER_LOG_MAX_SIZE="8m", CONTAINER_LOG_MAX_FILES="3")
    assert config == {"type": "json-file", "config": {"max-size": "8m", "max-file": "3"}}
    assert engine_log()["config"] == {"max-size": "16m", "max-file": "2"}
    assert engine_log(CONTAINER_LOG_DRIVER="local") == {
        "type": "local", "config": {"max-size": "16m", "max-file": "2", "compress": "false"}}
    with pytest.raises(ValueError, match="CONTAINER_LOG_DRIVER"):
        engine_log(CONTAINER_LOG_DRIVER="syslog")
    policy = {"default_memory": None, "pids_limit": 512, "network": "none", "grace": 5, "log_limit": 100,
              "log_config": config}
    work = {"detail_id": "d" * 32, "result_id": "r" * 32, "index": 0, "attempt": 1, "env": {}, "command": None}
    assert Executor(client=None, policy=policy).container_options(work, "h")["log_config"] == config


@pytest.mark.parametrize("size", ["0m", "16", "1.5g", "16mb", "-1m"])
def test_a_bad_log_size_is_refused_naming_the_setting(size):
    with pytest.raises(ValueError, match="CONTAINER_LOG_MAX_SIZE"):
        engine_log(CONTAINER_LOG_MAX_SIZE=size)



def test_an_attach_that_broke_takes_the_end_from_the_log_with_a_gap_before_it():
    stream = bytes(range(256)) * 4
    followed = _fed(100, [stream[:600]])          # the attach broke after 600
    end = _fed(100, [stream[-70:]])               # the engine's last lines
    merged = merge_kept(followed, end)
    assert merged.kept() == (50, stream[:50] + stream[-50:])
    assert merged.total == 600                    # what the runner saw: a lower bound
    # small, with bytes known missing: not presented as the whole stream
    small = merge_kept(_fed(100, [stream[:20]]), _fed(100, [stream[-10:]]))
    head, kept = small.kept()
    assert (head, kept) == (20, stream[:20] + stream[-10:]) and small.total > len(kept)


def test_an_attach_that_ends_as_the_log_does_is_kept_as_it_is():
    stream = bytes(range(256)) * 4
    followed = _fed(100, [stream])
    assert merge_kept(followed, _fed(100, [stream[-70:]])) is followed
    assert merge_kept(followed, _fed(100, [])) is followed


class _Body:
    """The connection a response body comes on: ``read1`` answers at most ``piece`` bytes."""

    def __init__(self, data, piece):
        self.data, self.piece, self.at = data, piece, 0

    def read1(self, size):
        out = self.data[self.at:self.at + min(size, self.piece)]
        self.at += len(out)
        return out


def _engine(wire, chunked=True, piece=7):
    response = SimpleNamespace(raw=SimpleNamespace(_fp=SimpleNamespace(
        fp=_Body(wire, piece), chunked=chunked, length=None if chunked else len(wire))),
        close=lambda: None)
    api = SimpleNamespace(_get=lambda url, params, stream: response, _url=lambda path, cid: path,
                          _raise_for_status=lambda r: None, _get_raw_response_socket=lambda r: None,
                          _disable_socket_timeout=lambda s: None)
    return SimpleNamespace(api=api)


def test_the_log_body_is_read_piece_by_piece_yielding_after_each_and_says_if_it_was_cut():
    body = _frame(1, b"out\n") + _frame(2, b"err\n") + _frame(1, b"more")
    pauses = []
    got = {1: bytearray(), 2: bytearray()}
    wire = _chunked(body, [5, 11])
    assert stream_logs(_engine(wire), "c1", {1: got[1].extend, 2: got[2].extend},
                       pause=lambda: pauses.append(1)) is True
    assert (bytes(got[1]), bytes(got[2])) == (b"out\nmore", b"err\n")
    assert len(pauses) >= len(wire) // 7 - 1  # a yield after every piece read
    # the connection dropped before the last chunk: not the whole log
    cut = {1: bytearray(), 2: bytearray()}
    assert stream_logs(_engine(wire[:-5]), "c1", {1: cut[1].extend, 2: cut[2].extend}) is False
    # a body with a length instead of chunks
    plain = {1: bytearray(), 2: bytearray()}
    assert stream_logs(_engine(body, chunked=False), "c1", {1: plain[1].extend, 2: plain[2].extend}) is True
    assert bytes(plain[1]) == b"out\nmore"


def test_the_attach_stream_is_read_raw_with_frames_split_across_reads_yielding_after_each():
    rng = random.Random(13)
    # every byte value, NUL and 0xff included, in frames of both streams and of every size
    frames = [(rng.choice([1, 2]), bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 300))))
              for _ in range(200)] + [(1, b"\x00\xff" * 70000)]
    wire = b"".join(_frame(kind, data) for kind, data in frames)
    expected = {1: b"".join(d for k, d in frames if k == 1), 2: b"".join(d for k, d in frames if k == 2)}
    for piece in (1, 3, 8, 9, 4096, 1 << 20):
        closed, pauses = [], []
        response = SimpleNamespace(raw=SimpleNamespace(_fp=SimpleNamespace(fp=_Body(wire, piece))),
                                   close=lambda closed=closed: closed.append(1))
        got = {1: bytearray(), 2: bytearray()}
        read_attached(response, Demuxer({1: got[1].extend, 2: got[2].extend}),
                      pause=lambda pauses=pauses: pauses.append(1), read_size=1 << 16)
        assert got == expected, piece
        assert closed == [1]
        assert len(pauses) >= len(wire) // min(piece, 1 << 16)  # a yield after every piece read


def _policy():
    return {"log_limit": 100, "engine_patience": 1.0}


class _Tail:
    """An ``OutputTail`` after the fact: what it read, and whether the engine closed it."""

    def __init__(self, data, done):
        self.kept = {"stdout": _fed(100, [data]), "stderr": _fed(100, [])}
        self.done = done

    @property
    def totals(self):
        return tuple(keeper.total for keeper in self.kept.values())

    def finish(self, patience):
        return self.done


def test_an_attach_closed_with_its_container_is_the_whole_output_and_no_log_is_read(monkeypatch):
    monkeypatch.setattr("services.runner.following.read_logs", lambda *a, **k: pytest.fail("log read"))
    stream = bytes(range(256)) * 4
    logs = Executor(client=None, policy=_policy())._logs(SimpleNamespace(id="c1"), _Tail(stream, True), False)
    assert (logs["stdout_head"], logs["stdout_total"]) == (50, len(stream))
    assert base64.b64decode(logs["stdout"]) == stream[:50] + stream[-50:]


def test_a_broken_attach_takes_its_end_from_the_engines_log(monkeypatch):
    stream = bytes(range(256)) * 4
    monkeypatch.setattr("services.runner.following.read_logs",
                        lambda *a, **k: {"stdout": _fed(100, [stream[-300:]]), "stderr": _fed(100, [])})
    executor = Executor(client=None, policy=_policy())
    for tail, broken in ((_Tail(stream[:600], False), False), (_Tail(stream[:600], True), True)):
        logs = executor._logs(SimpleNamespace(id="c1"), tail, broken)
        assert base64.b64decode(logs["stdout"]) == stream[:50] + stream[-50:]
        assert logs["stdout_head"] == 50 and logs["stdout_total"] == 600  # what the runner saw: a lower bound
    # no attach could be made (a resume): the log is all there is
    logs = executor._logs(SimpleNamespace(id="c1"), _Tail(b"", False), True)
    assert base64.b64decode(logs["stdout"]) == stream[-300:][:50] + stream[-50:]
    assert logs["stdout_total"] == 300
