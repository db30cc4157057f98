"""``?follow=true`` on an execution's logs: server-sent events until the execution ends.

The scheduler stores each running attempt's output about once a second (from
the runner's ``execution_output`` events); this stream polls it over RPC and
sends what is new:

    event: stdout            (or stderr)
    data: <one line of output per data line>

    event: end
    data: {"status": "COMPLETE", "exit_code": 0}

A client that connects late first gets what is kept (the last LOG_LIMIT_BYTES).
"""
import json
import time

from nameko.standalone.rpc import ClusterRpcProxy

from shared.statuses import TERMINAL

POLL_SECONDS = 0.5
MAX_FOLLOW_SECONDS = 6 * 3600


def sse(event, text):
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return f"event: {event}\n" + "".join(f"data: {line}\n" for line in lines) + "\n"


class Follower:
    """Turns successive log snapshots into what is new in each stream."""

    def __init__(self):
        self.attempt = None
        self.seen = {"stdout": 0, "stderr": 0}

    def new_events(self, logs):
        attempt = logs.get("logs_attempt", logs.get("attempt"))
        if attempt != self.attempt:
            if self.attempt is not None:
                yield sse("attempt", json.dumps({"attempt": attempt}))
            self.attempt, self.seen = attempt, {"stdout": 0, "stderr": 0}
        for stream in ("stdout", "stderr"):
            total = logs.get(f"{stream}_total") or 0
            fresh = total - self.seen[stream]
            if fresh <= 0:
                continue
            kept = logs[stream].encode()
            if fresh > len(kept):
                yield sse("skipped", json.dumps({"stream": stream, "bytes": fresh - len(kept)}))
                fresh = len(kept)
            self.seen[stream] = total
            yield sse(stream, kept[len(kept) - fresh:].decode("utf-8", errors="replace"))


def follow(config, result_id, detail_id, first):
    """The event stream for one execution's logs, starting from the ``first`` snapshot."""
    follower = Follower()
    logs = first
    yield from follower.new_events(logs)
    deadline = time.monotonic() + MAX_FOLLOW_SECONDS
    with ClusterRpcProxy(config) as rpc:
        while logs["status"] not in TERMINAL and time.monotonic() < deadline:
            time.sleep(POLL_SECONDS)
            logs = rpc.scheduler.get_logs(result_id, detail_id)
            yield from follower.new_events(logs)
            yield ": keep-alive\n\n"
        detail = rpc.scheduler.get_detail(result_id, detail_id)
    yield sse("end", json.dumps({"status": detail["status"], "exit_code": detail["exit_code"],
                                 "reason": detail.get("reason")}))
