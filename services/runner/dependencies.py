"""The runner's Docker provider, and the Executor that runs one execution on its engine to its end."""
import logging
import time
import uuid
from contextlib import nullcontext

import docker
import requests
from nameko.extensions import DependencyProvider

from services.runner import confinement
from services.runner.disk import DiskWatch, run_limit
from services.runner.engine import (
    ENGINE_ERRORS,
    LABEL,
    Engine,
    EngineState,
    EngineUnavailable,
    PullFailed,
)
from services.runner.following import Following, stopped_as
from services.runner.output import OutputTail
from services.runner.remover import Remover
from services.runner.slots import Holdings
from shared import statuses as st
from shared.docker_engine import LazyDockerClient, create_container, explain
from shared.image_gc import ImageCache
from shared.settings import settings_of
from shared.timeutil import now, parse_docker_time
from shared.validation import memory_bytes
from stevedore_jobs.contract.labels import container_labels

log = logging.getLogger(__name__)

# seconds an engine may stay unreachable before an execution on it ends ERROR (while it runs:
# from the first failed call; after its end: to read its final state); the ENGINE_PATIENCE setting
ENGINE_PATIENCE = 120.0
DRAIN_AT_LEAST = 2.0  # seconds a stopping runner's remover gets, even past its stop grace (a few removals)


class Executor(Following):
    """What a worker gets: its runner's engine (``Engine``), and the verbs that run one execution on it (each
    container followed to its end by ``Following``)."""

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


def _smallest(*values):
    return min((value for value in values if value), default=None)


def _unstarted(verdict):
    """The report of an attempt stopped before its container started: a cancel is CANCELLED."""
    status, reason = stopped_as(verdict)
    if status == st.KILLED:
        status, reason = st.CANCELLED, "cancelled before it started"
    return {"status": status, "reason": reason, "exit_code": None, "start": None, "end": now()}


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
