"""The runner's Docker provider, and the Executor that runs one execution on its engine to its end."""
import logging
import time
import uuid
from contextlib import nullcontext

import docker
import eventlet
import requests
from nameko.extensions import DependencyProvider

from services.runner import confinement
from services.runner.disk import DiskWatch, run_limit
from services.runner.engine import ENGINE_ERRORS, LABEL, Engine, EngineState, EngineUnavailable, PullFailed
from services.runner.output import STREAMS, OutputTail, live_snapshot, logs_report, merge_kept, note_logs
from services.runner.remover import Remover
from services.runner.slots import Holdings
from shared import statuses as st
from shared.docker_engine import LazyDockerClient, create_container, explain, read_logs
from shared.image_gc import ImageCache
from shared.timeutil import now, parse_docker_time
from shared.settings import settings_of
from shared.validation import memory_bytes
from stevedore_jobs.contract.labels import container_labels

log = logging.getLogger(__name__)

WAIT_SLICE = 1.0  # seconds between checks for a cancel, a timeout or new output while waiting
# seconds an engine may stay unreachable before an execution on it ends ERROR (while it runs:
# from the first failed call; after its end: to read its final state); the ENGINE_PATIENCE setting
ENGINE_PATIENCE = 120.0
DRAIN_AT_LEAST = 2.0  # seconds a stopping runner's remover gets, even past its stop grace (a few removals)


class Executor(Engine):
    """What a worker gets: its runner's engine (``Engine``), and the verbs that run one execution on it."""

    def container_options(self, work, runner):
        policy = self.policy
        env = dict(work.get("env") or {})
        env.update(work.get("secret_env") or {})  # opened for this claim: the container's env alone (guarantees.md)
        env.update({
            "STEVEDORE_RESULT_ID": work["result_id"],
            "STEVEDORE_DETAIL_ID": work["detail_id"],
            "STEVEDORE_EXECUTION_INDEX": str(work["index"]),
            "STEVEDORE_ATTEMPT": str(work["attempt"]),
        })
        if work.get("times") is not None:  # from a scheduler that sends it
            env["STEVEDORE_TIMES"] = str(work["times"])
        # an execution that asks for no memory gets the default, within this runner's ceiling
        memory = memory_bytes(work.get("memory")) or _smallest(
            policy["default_memory"], (self.state.ceilings or (None, None))[0])
        # this installation's id, as the scheduler's claim gives it (services/runner/reconcile.py)
        installation = {f"{LABEL}.installation": work["installation"]} if work.get("installation") else {}
        options = {
            "command": work.get("command"),
            "environment": env,
            "labels": {
                # the RUN's labels first, each under a prefix of their own: never one of Stevedore's below
                **container_labels(work.get("labels")),
                f"{LABEL}.managed": "true",
                f"{LABEL}.result_id": work["result_id"],
                f"{LABEL}.detail_id": work["detail_id"],
                f"{LABEL}.attempt": str(work["attempt"]),
                f"{LABEL}.runner": runner,
                **installation,
            },
            # result, index, attempt; a claim handed back may come back with the same attempt number
            "name": f"stevedore-{work['result_id'][:8]}-{work['index']}-{work['attempt']}-{uuid.uuid4().hex[:6]}",
            "detach": True,
            "network_mode": self.state.network or policy["network"],
            **confinement.security_options(policy),
        }
        if policy.get("log_config"):  # the engine's copy of the output, capped: disk per execution bounded
            options["log_config"] = policy["log_config"]
        if memory:
            options["mem_limit"] = memory
            options["memswap_limit"] = memory
        if work.get("cpus"):
            options["nano_cpus"] = int(float(work["cpus"]) * 1e9)
        return confinement.with_gpus(options, work.get("gpu_ids"))

    def run(self, work, runner, on_started, should_stop, on_output=lambda logs: None, credentials=None,
            pull_timer=nullcontext, timings=None, on_starting=None):
        """Run one attempt; returns the report of how it ended.

        Its container is set aside for removal once the end is reported (``dispose``),
        or removed before this returns when the runner has no background remover.
        ``timings``, a dict, gets the monotonic times of the lifecycle's steps: ``begin``,
        ``created``, ``started`` (start returned), ``exited`` (its wait returned) and
        ``outcome`` (its final state and output read): the runner's phase metrics.

        ``credentials`` and ``pull_timer`` are passed to :meth:`ensure_image` for a pull.
        Raises ``EngineUnavailable`` when the engine cannot be reached before
        any container started: the attempt did not run and can be handed back.

        ``on_started(start, container_id)`` is called once the container runs;
        ``on_output(logs)`` about once a second while new output appears;
        ``should_stop()`` is asked while waiting and, when it answers, the
        container is stopped (SIGTERM, then SIGKILL after the grace period) and
        the attempt ends as it says: ``(status, reason)``, or KILLED "cancelled"
        for a plain true.  ``on_starting()``, if given, is called once its container
        is created, as its attach and start begin (the slot prepares its next execution: ahead.py).
        """
        timings = {} if timings is None else timings
        timings["begin"] = time.monotonic()
        self.note_use(work["image"])
        if work["image"] not in self.state.images:
            failed = self._ensure_image(work["image"], credentials, pull_timer, runner)
            if failed:
                return failed
        verdict = should_stop()
        if verdict:
            return _unstarted(verdict)
        try:
            self.ensure_network()
        except docker.errors.APIError as exc:
            return self._failed(f"could not prepare network {self.policy['network']}: {explain(exc)}")
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            raise EngineUnavailable(f"could not prepare network {self.policy['network']}: {explain(exc)}") from exc
        options = self.container_options(work, runner)
        try:
            try:
                container = create_container(self.client, work["image"], options)
            except docker.errors.ImageNotFound:
                # removed from the engine since this runner last saw it: pull it again
                self.state.images.discard(work["image"])
                failed = self._ensure_image(work["image"], credentials, pull_timer, runner)
                if failed:
                    return failed
                container = create_container(self.client, work["image"], options)
        except docker.errors.APIError as exc:
            if "network" in explain(exc).lower():  # removed by hand? made again for the next one
                self.state.network = None
            return self._failed(f"could not create the container: {explain(exc)}")
        except ValueError as exc:  # e.g. a command string stored before RUNs were split (docker-py's shlex)
            return self._failed(f"could not create the container: {exc}")
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            # at most created, never started: nothing ran
            raise EngineUnavailable(f"could not create the container: {explain(exc)}") from exc
        timings["created"] = time.monotonic()
        watch = self.disk_watch(work, container)
        try:
            return watch.judged(self._run_created(container, work, on_started, watch.stop_if_over(should_stop),
                                                  on_output, timings, on_starting))
        finally:
            watch.stop()
            self._set_aside(container)

    def prepare(self, work, runner):
        """Create the container of an execution claimed ahead, not started (services/runner/ahead.py), or None
        when it cannot be made now: a TES task, an image or network not known here yet (no pull ahead), or a
        create that failed (the slot then runs it as any other, and reports what the create says)."""
        if work.get("tes") or work["image"] not in self.state.images or self.state.network is None:
            return None
        self.note_use(work["image"])
        try:
            container = create_container(self.client, work["image"], self.container_options(work, runner))
        except ENGINE_ERRORS as exc:
            log.info("could not create the container of execution %s ahead: %s", work["detail_id"], explain(exc))
            return None
        self.state.answered()
        return container

    def run_prepared(self, container, work, on_started, should_stop, on_output=lambda logs: None, timings=None,
                     on_starting=None):
        """``run`` of an execution whose container ``prepare`` created: started now, unless it must stop."""
        timings = {} if timings is None else timings
        timings["created"] = time.monotonic()
        watch = self.disk_watch(work, container)
        should_stop = watch.stop_if_over(should_stop)
        try:
            verdict = should_stop()
            if verdict:
                return _unstarted(verdict)
            return watch.judged(self._run_created(container, work, on_started, should_stop, on_output, timings,
                                                  on_starting))
        finally:
            watch.stop()
            self._set_aside(container)

    def _ensure_image(self, image, credentials, pull_timer, runner):
        """``ensure_image``, remembered; the report of a failed pull, else None.

        Raises ``EngineUnavailable`` when the engine cannot be reached.
        """
        try:
            self.ensure_image(image, credentials, pull_timer)
        except PullFailed as exc:
            return self._failed(f"could not pull the image on runner {runner}: {exc}")
        except docker.errors.APIError as exc:
            return self._failed(f"could not pull the image on runner {runner}: {explain(exc)}")
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            raise EngineUnavailable(f"could not check image {image}: {explain(exc)}") from exc
        self.state.images.add(image)
        return None

    def resume(self, container_id, work, on_started, should_stop, on_output=lambda logs: None):
        """Re-attach to the container of an attempt this runner started before a restart.

        Like ``run`` from where that left off: start it if it was only
        created, follow it if it runs, collect it if it has ended.  What it wrote
        while no runner read it comes from the engine's capped log (an attach that
        replays the log first): its totals are then lower bounds.
        """
        try:
            container = self.client.containers.get(container_id)
        except docker.errors.NotFound:
            return self._failed("its container vanished while its runner was restarting")
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            return self._failed(f"could not re-attach to its container: {explain(exc)}")
        watch = self.disk_watch(work, container)
        should_stop = watch.stop_if_over(should_stop)
        try:
            state = container.attrs["State"]
            if state.get("Status") == "created":
                return watch.judged(self._run_created(container, work, on_started, should_stop, on_output))
            start = parse_docker_time(state.get("StartedAt")) or now()
            on_started(start, container.id)
            elapsed = max(0.0, now() - start)
            tail = OutputTail(self.client, container.id, self.policy["log_limit"], replay=True)
            return watch.judged(self._follow(container, start, work, should_stop, on_output, elapsed, tail))
        finally:
            watch.stop()
            self._set_aside(container)

    def disk_watch(self, work, container, limit=None, subject="disk", before=0):
        """A ``DiskWatch`` of ``container`` (watching from now): its RUN's ``disk``, else the runner's default
        (``limit``: a TES task's, with ``subject`` and ``before``)."""
        named = None
        if limit is None:
            limit, named = run_limit(work, self.policy.get("default_disk") or confinement.DEFAULT_DISK)
        else:
            limit, named = limit
        watch = DiskWatch(self.client, limit, named, self.policy.get("disk_check_interval") or 2, subject,
                          self.policy.get("disk_measure_image"), before)
        watch.watch(container)
        return watch

    def _run_created(self, container, work, on_started, should_stop, on_output, timings=None, on_starting=None):
        if on_starting is not None:  # the engine's attach and start take most of a slot's turnaround
            on_starting()
        # attached before it starts: every byte it writes reaches the runner
        tail = OutputTail(self.client, container.id, self.policy["log_limit"])
        if tail.error:
            return self._failed(f"could not attach to the container: {tail.error}")
        try:
            self._start(container)
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            tail.stop()
            return self._failed(f"could not start the container: {explain(exc)}")
        if timings is not None:
            timings["started"] = time.monotonic()
        # the start is reported once the container outlives its first wait slice; one
        # that ends within it is reported once, by its end, with the engine's StartedAt
        return self._follow(container, None, work, should_stop, on_output, 0.0, tail, on_started, timings)

    def _start(self, container):
        """Start a created container; once more if its network's name was shared meanwhile.

        Runners of one engine making the dedicated network at once can make two of
        that name for a moment, and a container does not start on an ambiguous name.
        """
        try:
            container.start()
        except docker.errors.APIError as exc:
            if "ambiguous" not in explain(exc) or self.policy["network"] in ("none", "bridge"):
                raise
            log.info("network %s is ambiguous: removing its duplicates, then starting again",
                     self.policy["network"])
            confinement.settle_network(self.client, self.policy["network"])
            container.start()

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
                            stopped = _verdict(verdict)
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


def _smallest(*values):
    return min((value for value in values if value), default=None)


def _unstarted(verdict):
    """The report of an attempt stopped before its container started: a cancel is CANCELLED."""
    status, reason = _verdict(verdict)
    if status == st.KILLED:
        status, reason = st.CANCELLED, "cancelled before it started"
    return {"status": status, "reason": reason, "exit_code": None, "start": None, "end": now()}


def _verdict(verdict):
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


class DockerExecutor(DependencyProvider):
    holdings = Holdings()  # its stop deadline: the remover drains within it

    def setup(self):
        # a bad setting (CONTAINER_NETWORK=host, ...) stops the runner here, with a message naming it
        settings = settings_of(self.container)
        self.base_url = settings.docker_host
        self.policy = confinement.read_policy(settings)
        self.policy.update({
            "grace": settings.stop_grace_period,
            "log_limit": settings.log_limit_bytes,
            "log_config": confinement.log_config(settings),
            "engine_patience": settings.engine_patience,
        })
        # made in setup, not start: extensions start concurrently and a slot may ask for it at once
        self.client = LazyDockerClient(self.base_url, timeout=60)
        self.state = EngineState()  # the engine's health and what was learnt of it, for every worker
        engine = Engine(self.client, self.policy, self.state)
        # finished containers removed after their end is reported, off the slots' path (remover.py)
        self.remover = Remover(engine.remove_quietly, settings.runner_remove_backlog)
        # the images it pulled, removed least recently used first past their bounds (shared/image_gc.py)
        self.cache = ImageCache(self.client, settings, keep=(settings.disk_measure_image,),
                                local_engine=str(self.base_url).startswith(("unix://", "http+unix://")))

    def start(self):
        self.container.spawn_managed_thread(self.remover.run, identifier="container-remover")

    def stop(self):
        # the slots have ended (entrypoints stop first): what they left here goes within what is left of
        # the stop grace (at least DRAIN_AT_LEAST), the rest to reconcile
        deadline = self.holdings.stop_deadline
        self.remover.drain(max(DRAIN_AT_LEAST, deadline - time.monotonic() if deadline else 0.0))
        self.remover.close()
        self.client.close()

    def kill(self):
        self.remover.close()
        self.client.close()

    def get_dependency(self, worker_ctx):
        return Executor(self.client, self.policy, self.state, self.remover, self.cache)
