"""A running container's output as the runner reads it and reports it.

Both streams are read by attaching to the container (``OutputTail``), each
kept as its head and tail (``HeadTail``) with its byte total; what a report
carries is ``logs_report``'s shape (the logs contract shared with the scheduler).
"""
import base64
import logging

import eventlet

from services.runner.engine import ENGINE_ERRORS
from shared.docker_engine import Demuxer, HeadTail, attach_output, explain, read_attached

log = logging.getLogger(__name__)

LIVE_LIMIT_BYTES = 128 * 1024  # how much of each stream a live snapshot carries (head and tail)

STREAMS = ("stdout", "stderr")


def logs_report(kept, limit=None):
    """The ``logs`` of a report (the logs contract shared with the scheduler): each stream's kept bytes in
    base64, how many of them are its first bytes (the rest are its last), and its byte total."""
    logs = {"encoding": "base64"}
    for stream, keeper in kept.items():
        head, data = keeper.kept(limit)
        logs[stream] = base64.b64encode(data).decode("ascii")
        logs[f"{stream}_head"] = head
        logs[f"{stream}_total"] = keeper.total
    return logs


def note_logs(text, limit):
    """Keepers holding only a note of ours (the engine's log could not be read)."""
    kept = {stream: HeadTail(limit) for stream in STREAMS}
    for stream, keeper in kept.items():
        keeper.feed(f"[stevedore: could not read {stream}: {text}]".encode())
    return kept


class OutputTail:
    """Reads a container's output by attaching to it, both streams in one engine call, keeping
    each stream's head and tail (``HeadTail``) and its byte total.

    Attached before the container starts, it sees every byte the container
    writes, raw and in order, whatever the engine's log driver keeps: totals are
    exact.  The engine waits for an attached reader, so this one reads until the
    engine closes the attach (the container's output ended, or the engine went),
    in big pieces, yielding to the other greenthreads after each one
    (``read_attached``): a container printing flat out never starves the
    runner's heartbeats, and is never held up by its runner.

    ``replay``: the engine's log first (a container already running, found again
    after a runner restart): totals are then lower bounds.  ``kept``: the keepers
    to go on feeding (an attach made again after one broke).  An attach that
    could not be made leaves ``error`` set and no reader.
    """

    def __init__(self, client, container_id, limit, replay=False, kept=None):
        self.client, self.container_id = client, container_id
        self.kept = kept or {stream: HeadTail(limit) for stream in STREAMS}
        self.done = False  # the engine closed the attach
        self.error = None
        self.thread = self.response = None
        try:
            self.response = attach_output(client, container_id, replay=replay)
        except ENGINE_ERRORS as exc:
            self.error = explain(exc)
            return
        self.thread = eventlet.spawn(self._read)

    def _read(self):
        demux = Demuxer({1: self.kept["stdout"].feed, 2: self.kept["stderr"].feed})
        try:
            read_attached(self.response, demux, pause=eventlet.sleep)
            self.done = True
        except ENGINE_ERRORS as exc:
            self.error = explain(exc)
            log.debug("the attach to %s broke: %s", self.container_id, exc)

    @property
    def reading(self):
        return self.thread is not None and not self.thread.dead

    @property
    def totals(self):
        return tuple(keeper.total for keeper in self.kept.values())

    def again(self):
        """A new attach feeding the same keepers (this one broke while the container runs):
        what was written between the two is not seen."""
        self.stop()
        return OutputTail(self.client, self.container_id, None, kept=self.kept)

    def finish(self, patience):
        """Wait (up to ``patience`` seconds) for the engine to close the attach after the container
        ended; True when it did."""
        if self.thread is not None:
            try:
                with eventlet.Timeout(patience, False):
                    self.thread.wait()
            except Exception as exc:  # an engine answer of a shape not foreseen: the log is read
                log.warning("reading the output of %s failed: %r", self.container_id, exc)
        self.stop()
        return self.done

    def stop(self):
        if self.thread is not None:
            self.thread.kill()
        if self.response is not None:
            self.response.close()  # also when the reader never ran


def merge_kept(followed, end):
    """One stream's output from two readings: ``followed`` from its start (see ``OutputTail``)
    and ``end``, the engine's capped log of it read once the container ended.

    Followed bytes that already end as the log does are all there.  Else the end
    was missed (the attach broke): the head from the attach, the tail from the
    log, and bytes known missing between them.
    """
    merged = HeadTail(followed.limit)
    _, ours = followed.kept()
    _, theirs = end.kept()
    last = theirs[len(theirs) - min(len(theirs), end.total, merged.tail_cap):]  # the stream's last bytes
    if ours.endswith(last):
        return followed
    merged.head[:] = followed.head
    merged.tail[:] = last
    merged.gap = True
    merged.total = max(followed.total, len(merged.head) + len(merged.tail) + 1)
    return merged


def live_snapshot(tail):
    """A running container's output so far: each stream's head so far and latest tail, within
    ``LIVE_LIMIT_BYTES`` (the shape of the final logs)."""
    return logs_report(tail.kept, LIVE_LIMIT_BYTES)
