"""The runner's view of its host's Docker engine: run one execution to its end."""
import logging
import time

import docker
import eventlet
import requests
from nameko.extensions import DependencyProvider

from shared.docker_engine import LazyDockerClient

from shared import statuses as st
from shared.timeutil import now, parse_docker_time
from shared.validation import memory_bytes, parse_reference

log = logging.getLogger(__name__)

LABEL = "stevedore"
WAIT_SLICE = 1.0  # seconds between checks for a cancel, a timeout or new output while waiting
LIVE_TAIL_BYTES = 64 * 1024  # how much of each stream a live snapshot carries


def tail_bytes(data, limit):
    """The last ``limit`` bytes of ``data`` as text, and whether anything was cut."""
    truncated = len(data) > limit
    if truncated:
        data = data[-limit:]
    return data.decode("utf-8", errors="replace"), truncated


class OutputTail:
    """Follows one stream of a running container, keeping its last bytes and a byte count."""

    def __init__(self, container, stream, limit):
        self.container, self.stream, self.limit = container, stream, limit
        self.total = 0
        self.tail = bytearray()
        self.thread = eventlet.spawn(self._read)

    def _read(self):
        try:
            for chunk in self.container.logs(stream=True, follow=True, stdout=self.stream == "stdout",
                                             stderr=self.stream == "stderr"):
                self.total += len(chunk)
                self.tail += chunk
                del self.tail[:-self.limit]
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            log.debug("stopped following %s of %s: %s", self.stream, self.container.id, exc)

    def stop(self):
        self.thread.kill()


def live_snapshot(tails):
    logs = {}
    for stream, tail in tails.items():
        logs[stream], _ = tail_bytes(bytes(tail.tail), tail.limit)
        logs[f"{stream}_total"] = tail.total
        logs[f"{stream}_truncated"] = tail.total > len(tail.tail)
    return logs


class Executor:
    """What a worker gets: one Docker client and the operator's container policy."""

    def __init__(self, client, policy):
        self.client = client
        self.policy = policy

    def engine_ok(self):
        """Whether this host's engine answers; a runner without one must not take work."""
        try:
            return bool(self.client.ping())
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            log.warning("Docker engine at %s does not answer: %s", self.client.base_url, exc)
            return False

    # -------------------------------------------------------------- image

    def ensure_image(self, image, credentials=None):
        """Make sure ``image`` (name@sha256:... or an image id) is on this engine.

        ``credentials()`` is asked only when a pull is needed; it answers the
        private registry's ``{"username", "password"}`` or None.
        """
        try:
            self.client.images.get(image)
            return
        except docker.errors.ImageNotFound:
            pass
        name, tag, digest = parse_reference(image)
        auth = credentials() if credentials else None
        self.client.images.pull(name, tag=digest or tag, auth_config=auth)

    # -------------------------------------------------------------- run

    def container_options(self, work, runner):
        policy = self.policy
        env = dict(work.get("env") or {})
        env.update({
            "STEVEDORE_RESULT_ID": work["result_id"],
            "STEVEDORE_DETAIL_ID": work["detail_id"],
            "STEVEDORE_EXECUTION_INDEX": str(work["index"]),
            "STEVEDORE_ATTEMPT": str(work["attempt"]),
        })
        memory = memory_bytes(work.get("memory")) or policy["default_memory"]
        options = {
            "command": work.get("command"),
            "environment": env,
            "labels": {
                f"{LABEL}.managed": "true",
                f"{LABEL}.result_id": work["result_id"],
                f"{LABEL}.detail_id": work["detail_id"],
                f"{LABEL}.attempt": str(work["attempt"]),
                f"{LABEL}.runner": runner,
            },
            "name": f"stevedore-{work['detail_id'][:12]}-{work['attempt']}",
            "detach": True,
            "privileged": False,
            "security_opt": ["no-new-privileges"],
            "pids_limit": policy["pids_limit"],
            "network_mode": policy["network"],
        }
        if memory:
            options["mem_limit"] = memory
            options["memswap_limit"] = memory
        if work.get("cpus"):
            options["nano_cpus"] = int(float(work["cpus"]) * 1e9)
        return options

    def run(self, work, runner, on_started, should_stop, on_output=lambda logs: None, credentials=None):
        """Run one attempt; returns the report of how it ended.

        ``credentials`` is passed to :meth:`ensure_image` for a pull.

        ``on_started(start, container_id)`` is called once the container runs;
        ``on_output(logs)`` about once a second while new output appears;
        ``should_stop()`` is asked while waiting and, when true, the container is
        stopped (SIGTERM, then SIGKILL after the grace period) and ends KILLED.
        """
        try:
            self.ensure_image(work["image"], credentials)
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            return self._failed(f"could not pull image {work['image']}: {explain(exc)}")
        if should_stop():
            return {"status": st.CANCELLED, "reason": "cancelled before it started",
                    "exit_code": None, "start": None, "end": now()}
        try:
            container = self.client.containers.create(work["image"], **self.container_options(work, runner))
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            return self._failed(f"could not create the container: {explain(exc)}")
        try:
            return self._run_created(container, work, on_started, should_stop, on_output)
        finally:
            self._remove(container)

    def _run_created(self, container, work, on_started, should_stop, on_output):
        try:
            container.start()
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            return self._failed(f"could not start the container: {explain(exc)}")
        container.reload()
        start = parse_docker_time(container.attrs["State"].get("StartedAt")) or now()
        on_started(start, container.id)

        timeout = work.get("timeout")
        deadline = time.monotonic() + timeout if timeout else None
        stopped_because = None
        tails = {stream: OutputTail(container, stream, LIVE_TAIL_BYTES) for stream in ("stdout", "stderr")}
        reported = (0, 0)
        try:
            while True:
                try:
                    outcome = container.wait(timeout=WAIT_SLICE)
                    break
                except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError):
                    pass
                produced = (tails["stdout"].total, tails["stderr"].total)
                if produced != reported:
                    reported = produced
                    on_output(live_snapshot(tails))
                if stopped_because is None:
                    if deadline is not None and time.monotonic() >= deadline:
                        stopped_because = f"timeout: still running after {timeout:g}s"
                    elif should_stop():
                        stopped_because = "cancelled"
                    if stopped_because:
                        self._stop(container)
        finally:
            for tail in tails.values():
                tail.stop()

        container.reload()
        state = container.attrs["State"]
        # Docker stamps StartedAt once start() returns, which can be after a
        # very short process has already finished: never report end < start
        end = max(start, parse_docker_time(state.get("FinishedAt")) or now())
        exit_code = outcome.get("StatusCode")
        report = {"start": start, "end": end, "exit_code": exit_code}
        report.update(self._logs(container))
        if stopped_because:
            report.update(status=st.KILLED, reason=stopped_because)
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
            report.update(status=st.ERROR, reason=reason)
        return report

    def _logs(self, container):
        limit = self.policy["log_limit"]
        logs = {}
        for stream in ("stdout", "stderr"):
            try:
                data = container.logs(stdout=stream == "stdout", stderr=stream == "stderr")
            except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
                data = f"[stevedore: could not read {stream}: {explain(exc)}]".encode()
            logs[stream], logs[f"{stream}_truncated"] = tail_bytes(data, limit)
            logs[f"{stream}_total"] = len(data)
        return {"logs": logs}

    def _stop(self, container):
        try:
            container.stop(timeout=self.policy["grace"])
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            log.warning("could not stop container %s: %s", container.id, explain(exc))

    def _remove(self, container):
        try:
            container.remove(force=True)
        except docker.errors.NotFound:
            pass
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            log.warning("could not remove container %s: %s", container.id, explain(exc))

    @staticmethod
    def _failed(reason):
        stamp = now()
        return {"status": st.ERROR, "reason": reason, "exit_code": None, "start": None, "end": stamp}


def explain(exc):
    if isinstance(exc, docker.errors.APIError):
        return str(exc.explanation or exc)
    return str(exc)


class DockerExecutor(DependencyProvider):
    def setup(self):
        config = self.container.config
        self.base_url = config.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
        self.policy = {
            "default_memory": memory_bytes(config.get("CONTAINER_DEFAULT_MEMORY") or None),
            "pids_limit": int(config.get("CONTAINER_PIDS_LIMIT") or 1024),
            "network": config.get("CONTAINER_NETWORK") or "bridge",
            "grace": int(config.get("STOP_GRACE_PERIOD") or 10),
            "log_limit": int(config.get("LOG_LIMIT_BYTES") or 1024 * 1024),
        }
        # made in setup, not start: extensions start concurrently and a slot may ask for it at once
        self.client = LazyDockerClient(self.base_url, timeout=60)

    def stop(self):
        self.client.close()

    kill = stop

    def get_dependency(self, worker_ctx):
        return Executor(self.client, self.policy)
