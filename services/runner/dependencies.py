"""The runner's view of its host's Docker engine: run one execution to its end."""
import logging
import time

import docker
import requests
from nameko.extensions import DependencyProvider

from shared import statuses as st
from shared.timeutil import now, parse_docker_time
from shared.validation import memory_bytes, parse_reference

log = logging.getLogger(__name__)

LABEL = "stevedore"
WAIT_SLICE = 2.0  # seconds between checks for a cancel or a timeout while waiting


def tail_bytes(data, limit):
    """The last ``limit`` bytes of ``data`` as text, and whether anything was cut."""
    truncated = len(data) > limit
    if truncated:
        data = data[-limit:]
    return data.decode("utf-8", errors="replace"), truncated


class Executor:
    """What a worker gets: one Docker client and the operator's container policy."""

    def __init__(self, client, policy):
        self.client = client
        self.policy = policy

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

    def run(self, work, runner, on_started, should_stop, credentials=None):
        """Run one attempt; returns the report of how it ended.

        ``credentials`` is passed to :meth:`ensure_image` for a pull.

        ``on_started(start, container_id)`` is called once the container runs;
        ``should_stop()`` is asked while waiting and, when true, the container is
        stopped (SIGTERM, then SIGKILL after the grace period) and ends KILLED.
        """
        try:
            self.ensure_image(work["image"], credentials)
        except (docker.errors.APIError, requests.exceptions.RequestException) as exc:
            return self._failed(f"could not pull image {work['image']}: {explain(exc)}")
        if should_stop():
            return {"status": st.CANCELLED, "reason": "cancelled before it started",
                    "exit_code": None, "start": None, "end": now()}
        try:
            container = self.client.containers.create(work["image"], **self.container_options(work, runner))
        except (docker.errors.APIError, requests.exceptions.RequestException) as exc:
            return self._failed(f"could not create the container: {explain(exc)}")
        try:
            return self._run_created(container, work, on_started, should_stop)
        finally:
            self._remove(container)

    def _run_created(self, container, work, on_started, should_stop):
        try:
            container.start()
        except (docker.errors.APIError, requests.exceptions.RequestException) as exc:
            return self._failed(f"could not start the container: {explain(exc)}")
        container.reload()
        start = parse_docker_time(container.attrs["State"].get("StartedAt")) or now()
        on_started(start, container.id)

        timeout = work.get("timeout")
        deadline = time.monotonic() + timeout if timeout else None
        stopped_because = None
        while True:
            try:
                outcome = container.wait(timeout=WAIT_SLICE)
                break
            except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError):
                pass
            if stopped_because is None:
                if deadline is not None and time.monotonic() >= deadline:
                    stopped_because = f"timeout: still running after {timeout:g}s"
                elif should_stop():
                    stopped_because = "cancelled"
                if stopped_because:
                    self._stop(container)

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
            except (docker.errors.APIError, requests.exceptions.RequestException) as exc:
                data = f"[stevedore: could not read {stream}: {explain(exc)}]".encode()
            logs[stream], logs[f"{stream}_truncated"] = tail_bytes(data, limit)
        return {"logs": logs}

    def _stop(self, container):
        try:
            container.stop(timeout=self.policy["grace"])
        except (docker.errors.APIError, requests.exceptions.RequestException) as exc:
            log.warning("could not stop container %s: %s", container.id, explain(exc))

    def _remove(self, container):
        try:
            container.remove(force=True)
        except docker.errors.NotFound:
            pass
        except (docker.errors.APIError, requests.exceptions.RequestException) as exc:
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
        self.client = docker.DockerClient(base_url=self.base_url, version="auto", timeout=60)

    def stop(self):
        self.client.close()

    kill = stop

    def get_dependency(self, worker_ctx):
        return Executor(self.client, self.policy)
