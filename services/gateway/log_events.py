"""An execution's output as server-sent events (``?follow=true`` on its logs; see follow.py).

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

    : keep-alive                                  (a comment, when a poll brought nothing new)

    event: error                                  (the last event when the token or sign-in session
    data: {"error": "UNAUTHORIZED", "message": ...}  the stream was opened with is revoked, expired or
                                                  signed out: no ``end`` follows, the stream closes)

A client that connects late first gets what is kept: the stream's first bytes,
a ``skipped`` event for those omitted, then its last bytes.
"""
import base64
import codecs
import json
import re

STREAMS = ("stdout", "stderr")
# SSE ends a line at CR, LF or CRLF: each one of them in the output ends a data line
LINE_END = re.compile(r"\r\n|\r|\n")
KEEPALIVE = ": keep-alive\n\n"


def sse(event, text):
    lines = LINE_END.split(text)
    if lines and lines[-1] == "":
        lines.pop()
    return f"event: {event}\n" + "".join(f"data: {line}\n" for line in lines) + "\n"


def new_bytes(kept, head, total, seen, since=0):
    """What of a stream past offset ``seen`` is kept: (bytes kept before the gap, bytes omitted, bytes after).

    The first ``head`` kept bytes are the stream's offsets [since, since + head);
    the rest are its last bytes, up to ``total`` (``since`` <= ``seen``).
    """
    head = min(head, len(kept))
    head_end = since + head
    tail_start = max(head_end, total - (len(kept) - head))  # stream offset of the first kept tail byte
    before = kept[seen - since:head] if seen < head_end else b""
    omitted = max(0, tail_start - max(seen, head_end))
    after = kept[head + max(0, seen - tail_start):]
    return before, omitted, after


def attempt_of(logs):
    return logs.get("logs_attempt", logs.get("attempt"))


class Follower:
    """Turns successive log answers (``get_log_bytes``, whole or ``since``) into what is new in each stream."""

    def __init__(self):
        self.attempt = None
        self._reset()

    def _reset(self):
        self.seen = {stream: 0 for stream in STREAMS}
        self.decoders = {stream: codecs.getincrementaldecoder("utf-8")("replace") for stream in STREAMS}

    def new_events(self, logs):
        attempt = attempt_of(logs)
        if attempt != self.attempt:
            if self.attempt is not None:
                yield sse("attempt", json.dumps({"attempt": attempt}))
            self.attempt = attempt
            self._reset()
        for stream in STREAMS:
            total = logs.get(f"{stream}_total") or 0
            if total <= self.seen[stream]:
                continue
            since = logs.get(f"{stream}_since") or 0
            kept = base64.b64decode(logs.get(stream) or "")
            decoder = self.decoders[stream]
            if since > self.seen[stream]:  # an answer from past what this follower has: say what it missed
                yield from self._skip(stream, since - self.seen[stream], "")
                self.seen[stream] = since
            before, omitted, after = new_bytes(kept, logs.get(f"{stream}_head") or 0, total,
                                               self.seen[stream], since)
            text = decoder.decode(before)
            if omitted:
                yield from self._skip(stream, omitted, text)
                text = ""
            text += decoder.decode(after)
            self.seen[stream] = total
            if text:
                yield sse(stream, text)

    def _skip(self, stream, omitted, text):
        decoder = self.decoders[stream]
        text += decoder.decode(b"", final=True)
        decoder.reset()
        if text:
            yield sse(stream, text)
        yield sse("skipped", json.dumps({"stream": stream, "bytes": omitted}))

    def flush(self):
        """The end of a stream cut inside a character (as U+FFFD), once no more will come."""
        for stream in STREAMS:
            text = self.decoders[stream].decode(b"", final=True)
            if text:
                yield sse(stream, text)


DENIED_MESSAGE = ("authorization: the token or sign-in session this stream was opened with no longer "
                  "lets it in (revoked, expired or signed out); the stream is closed")


def denied_event():
    """The last event of a stream whose token or session no longer lets it in: the API's 401 body."""
    return sse("error", json.dumps({"error": "UNAUTHORIZED", "message": DENIED_MESSAGE}))


def end_event(detail):
    return sse("end", json.dumps({"status": detail["status"], "exit_code": detail.get("exit_code"),
                                  "reason": detail.get("reason")}))
