"""``?follow=true`` on an execution's logs: server-sent events until the execution ends.

The scheduler stores each running attempt's output about once a second (from
the runner's ``execution_output`` events); this stream polls its kept bytes
over RPC (``get_log_bytes``) and sends what is new, decoded as UTF-8 (invalid
sequences as U+FFFD, a character split between two polls decoded whole):

    event: stdout            (or stderr)
    data: <one line of output per data line; a lone CR ends a line too>

    event: skipped
    data: {"stream": "stdout", "bytes": 1234}     (bytes produced but not kept)

    event: end
    data: {"status": "COMPLETE", "exit_code": 0}

A client that connects late first gets what is kept: the stream's first bytes,
a ``skipped`` event for those omitted, then its last bytes.
"""
import base64
import codecs
import json
import re
import time

from nameko.standalone.rpc import ClusterRpcProxy

from shared.statuses import TERMINAL

POLL_SECONDS = 0.5
MAX_FOLLOW_SECONDS = 6 * 3600
STREAMS = ("stdout", "stderr")
# SSE ends a line at CR, LF or CRLF: each one of them in the output ends a data line
LINE_END = re.compile(r"\r\n|\r|\n")


def sse(event, text):
    lines = LINE_END.split(text)
    if lines and lines[-1] == "":
        lines.pop()
    return f"event: {event}\n" + "".join(f"data: {line}\n" for line in lines) + "\n"


def new_bytes(kept, head, total, seen):
    """What of a stream past offset ``seen`` is kept: (bytes kept before the gap, bytes omitted, bytes after).

    The first ``head`` kept bytes are the stream's offsets [0, head); the rest are
    its last bytes, up to ``total``.
    """
    head = min(head, len(kept))
    tail_start = max(head, total - (len(kept) - head))  # stream offset of the first kept tail byte
    before = kept[seen:head] if seen < head else b""
    omitted = max(0, tail_start - max(seen, head))
    after = kept[head + max(0, seen - tail_start):]
    return before, omitted, after


class Follower:
    """Turns successive log snapshots (``get_log_bytes``) into what is new in each stream."""

    def __init__(self):
        self.attempt = None
        self._reset()

    def _reset(self):
        self.seen = {stream: 0 for stream in STREAMS}
        self.decoders = {stream: codecs.getincrementaldecoder("utf-8")("replace") for stream in STREAMS}

    def new_events(self, logs):
        attempt = logs.get("logs_attempt", logs.get("attempt"))
        if attempt != self.attempt:
            if self.attempt is not None:
                yield sse("attempt", json.dumps({"attempt": attempt}))
            self.attempt = attempt
            self._reset()
        for stream in STREAMS:
            total = logs.get(f"{stream}_total") or 0
            if total <= self.seen[stream]:
                continue
            kept = base64.b64decode(logs.get(stream) or "")
            before, omitted, after = new_bytes(kept, logs.get(f"{stream}_head") or 0, total, self.seen[stream])
            decoder = self.decoders[stream]
            text = decoder.decode(before)
            if omitted:
                text += decoder.decode(b"", final=True)
                decoder.reset()
                if text:
                    yield sse(stream, text)
                text = ""
                yield sse("skipped", json.dumps({"stream": stream, "bytes": omitted}))
            text += decoder.decode(after)
            self.seen[stream] = total
            if text:
                yield sse(stream, text)

    def flush(self):
        """The end of a stream cut inside a character (as U+FFFD), once no more will come."""
        for stream in STREAMS:
            text = self.decoders[stream].decode(b"", final=True)
            if text:
                yield sse(stream, text)


def follow(config, result_id, detail_id, first):
    """The event stream for one execution's logs, starting from the ``first`` snapshot (bytes)."""
    follower = Follower()
    logs = first
    yield from follower.new_events(logs)
    deadline = time.monotonic() + MAX_FOLLOW_SECONDS
    with ClusterRpcProxy(config) as rpc:
        while logs["status"] not in TERMINAL and time.monotonic() < deadline:
            time.sleep(POLL_SECONDS)
            logs = rpc.scheduler.get_log_bytes(result_id, detail_id)
            yield from follower.new_events(logs)
            yield ": keep-alive\n\n"
        detail = rpc.scheduler.get_detail(result_id, detail_id)
    yield from follower.flush()
    yield sse("end", json.dumps({"status": detail["status"], "exit_code": detail["exit_code"],
                                 "reason": detail.get("reason")}))
