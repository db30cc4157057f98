"""Following a started container to its end: waiting for it (a cancel, a timeout, an engine away meanwhile),
its output read as it goes, its final state and logs read once it ended, and the report of how it ended.

``Executor`` (services/runner/dependencies.py) creates and starts containers and follows them with this."""
import logging
import time

import docker
import eventlet
import requests

from services.runner.engine import ENGINE_ERRORS, Engine
from services.runner.output import (
    STREAMS,
    live_snapshot,
    logs_report,
    merge_kept,
    note_logs,
)
from shared import statuses as st
from shared.docker_engine import explain, read_logs
from shared.timeutil import now, parse_docker_time

log = logging.getLogger(__name__)

WAIT_SLICE = 1.0  # seconds between checks for a cancel, a timeout or new output while waiting


class Following(Engine):
    """An engine's container followed to its end (``_follow``), and the reports of how an attempt ended."""

    def _follow(self, container, start, work, should_stop, on_output, elapsed, tail, on_started=None,
                timings=None):
        """Wait for the container's end, stopping it on a timeout or when asked; report it.

        ``tail`` reads its output meanwhile (``OutputTail``), also while it is being stopped.

        With ``start`` None the container was just started and its start not yet
        reported: after the first wait slice it is read from the engine and given
        to ``on_started`` with the output so far (None: none yet), which the start's
        report carries instead of a live output message of its own; if the
        container ends within that slice, only the end is reported (with the
        start), one report and one engine call fewer.

        An engine that cannot be reached for ``ENGINE_PATIENCE`` seconds in a row
        ends the attempt ERROR with what was followed of its output.
        """
        timeout = work.get("timeout")
        deadline = time.monotonic() + timeout - elapsed if timeout else None
        patience = self.policy["engine_patience"]
        stopped = None          # (status, reason) when we stopped it
        engine_trouble = None   # what the engine said when it could not be reached
        unreachable_since = None  # when the engine stopped answering (monotonic), while it does not
        broken = False          # the attach broke: its end is read from the engine's log
        reported = (0, 0)
        try:
            while True:
                try:
                    outcome = container.wait(timeout=WAIT_SLICE)
                    break
                except docker.errors.NotFound:
                    return self._failed(f"its container was removed while it ran{_note(engine_trouble)}",
                                        start=start or now(), tail=tail)
                except ENGINE_ERRORS as exc:
                    if _timed_out(exc):
                        unreachable_since = None
                    else:
                        # the engine is away (restarting?): keep trying, without spinning, for a while
                        if engine_trouble is None:
                            log.warning("Docker engine unreachable while following container %s: %s",
                                        container.id, explain(exc))
                        engine_trouble = explain(exc)
                        if unreachable_since is None:
                            unreachable_since = time.monotonic()
                        elif time.monotonic() - unreachable_since >= patience:
                            log.warning("Docker engine unreachable for %gs while following container %s; "
                                        "giving up", patience, container.id)
                            return self._failed(
                                f"the Docker engine could not be reached for {patience:g}s while it ran "
                                f"({engine_trouble}): its end is unknown", start=start or now(), tail=tail)
                        time.sleep(WAIT_SLICE)
                if start is None:
                    start = self._started_at(container)
                    preview = None
                    if tail.totals != reported:  # its first output rides in the start's report
                        reported = tail.totals
                        preview = live_snapshot(tail)
                    on_started(start, container.id, preview)
                if unreachable_since is None and not tail.reading and (
                        tail.error or engine_trouble) and self._running(container):
                    # the attach broke (an engine restart) and the container runs on: attach
                    # again for live output and its end; the head stays the first attach's
                    broken = True
                    tail = tail.again()
                if tail.totals != reported:
                    reported = tail.totals
                    on_output(live_snapshot(tail))
                if stopped is None:
                    if deadline is not None and time.monotonic() >= deadline:
                        stopped = (st.KILLED, f"timeout: still running after {timeout:g}s")
                    else:
                        verdict = should_stop()
                        if verdict:
                            stopped = stopped_as(verdict)
                    if stopped:
                        self._stop(container)
            exited = time.monotonic()
            state, trouble = self._final_state(container)
            logs = self._logs(container, tail, broken or engine_trouble or trouble)
            if timings is not None:
                timings.update(exited=exited, outcome=time.monotonic())
        finally:
            tail.stop()

        engine_trouble = engine_trouble or trouble
        if start is None:
            start = parse_docker_time(state.get("StartedAt")) or now()
        # Docker stamps StartedAt once start() returns, which can be after a
        # very short process has already finished: never report end < start
        end = max(start, parse_docker_time(state.get("FinishedAt")) or now())
        exit_code = outcome.get("StatusCode")
        report = {"start": start, "end": end, "exit_code": exit_code, "container_id": container.id,
                  "logs": logs}
        if stopped:
            status, reason = stopped
            report.update(status=status, reason=reason)
        elif exit_code == 0:
            report.update(status=st.COMPLETE, reason=None)
        elif state.get("OOMKilled"):
            report.update(status=st.ERROR, reason="out of memory: killed at its memory limit")
        else:
            error = (outcome.get("Error") or {}).get("Message") if outcome.get("Error") else None
            reason = f"exited with code {exit_code}"
            if exit_code is not None and exit_code > 128:
                reason += f" (killed by signal {exit_code - 128})"
            if error:
                reason += f": {error}"
            killed = exit_code is None or exit_code > 128
            report.update(status=st.ERROR, reason=reason + _note(engine_trouble, killed))
        return report

    def _final_state(self, container):
        """The container's State once it ended, waiting out an engine that is restarting.

        Returns (state, what the engine said if it was unreachable meanwhile).
        """
        deadline = time.monotonic() + self.policy["engine_patience"]
        trouble = None
        while True:
            try:
                container.reload()
                return container.attrs["State"], trouble
            except docker.errors.NotFound:
                return {}, trouble or "the container was removed"
            except ENGINE_ERRORS as exc:
                trouble = explain(exc)
                if time.monotonic() > deadline:
                    return {}, trouble
                time.sleep(WAIT_SLICE)

    def _logs(self, container, tail, broken):
        """The ended container's output in the report's shape, memory bounded whatever its size.

        An attach the engine closed when the container ended has all of it.  One
        that broke (``broken``: an engine restart; or it did not end) misses
        bytes: its end is read from the engine's capped log (``merge_kept``),
        streamed, and totals count what the runner saw (lower bounds).
        """
        limit = self.policy["log_limit"]
        if tail.finish(self.policy["engine_patience"]) and not broken:
            return logs_report(tail.kept)
        try:
            end = read_logs(self.client, container.id, limit, pause=eventlet.sleep)
        except ENGINE_ERRORS as exc:
            # what was read, if anything, is better than nothing
            return logs_report(tail.kept if any(tail.totals) else note_logs(explain(exc), limit))
        if not any(tail.totals):  # no attach could be made: the log is all there is
            return logs_report(end)
        return logs_report({stream: merge_kept(tail.kept[stream], end[stream]) for stream in STREAMS})

    @staticmethod
    def _failed(reason, start=None, tail=None):
        """An ERROR report; with ``tail``, the output followed so far comes with it."""
        stamp = now()
        report = {"status": st.ERROR, "reason": reason, "exit_code": None, "start": start,
                  "end": max(stamp, start or stamp)}
        if tail is not None:
            tail.stop()
            report["logs"] = logs_report(tail.kept)
        return report


def stopped_as(verdict):
    """What ``should_stop()`` answered, as (status, reason): a plain true is a cancel."""
    return verdict if isinstance(verdict, tuple) else (st.KILLED, "cancelled")


def _timed_out(exc):
    """A wait that merely ran out of time (docker-py over a unix socket says so in a ConnectionError)."""
    return isinstance(exc, requests.exceptions.ReadTimeout) or "timed out" in str(exc).lower()


def _note(engine_trouble, killed=True):
    if not engine_trouble:
        return ""
    note = f"; the Docker engine could not be reached while it ran ({engine_trouble})"
    return note + (": it was probably stopped by an engine restart" if killed else "")
