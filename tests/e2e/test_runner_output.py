"""A runner under a flood of output: memory and the engine's log stay bounded, the head and the
tail are kept, heartbeats go on, and a chatty job cancelled or timed out ends KILLED.

A system of its own (one runner, its own database and vhost) with a small cap on the
engine's log, so that the cap is seen at work.
"""
import os
import threading
import time
import uuid

import docker
import pytest

from tests.support import containers_of, started_system, wait_until

pytestmark = pytest.mark.e2e

LOG_MAX_SIZE = 4 * 1024 ** 2
LOG_MAX_FILES = 2
RSS_BOUND = 200 * 1024 ** 2  # bytes: the runner's resident memory, whatever the output
LOG_SLACK = 1024 ** 2        # the engine checks its cap before a write: one message over it at most
STOP_GRACE = 2


@pytest.fixture(scope="module")
def flood(request, vhost_pipeline, test_images):
    env = {"CONTAINER_LOG_MAX_SIZE": f"{LOG_MAX_SIZE // 1024 ** 2}m", "CONTAINER_LOG_MAX_FILES": str(LOG_MAX_FILES),
           "STOP_GRACE_PERIOD": str(STOP_GRACE)}
    with started_system(request, vhost_pipeline, "runout", env) as system:
        task = system.api.register(test_images["ok"], name=f"runout-{uuid.uuid4().hex[:6]}")
        assert task["status"] == "READY", task
        yield system, task


def rss(pid):
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def engine_log_bytes(docker_client, container_id):
    """Bytes of a container's json-file log: its LogPath and the rotated files beside it."""
    try:
        path = docker_client.api.inspect_container(container_id)["LogPath"]
        folder, name = os.path.split(path)
        return sum(os.path.getsize(os.path.join(folder, entry)) for entry in os.listdir(folder)
                   if entry.startswith(name))
    except (OSError, docker.errors.NotFound):
        return 0


class Sampler:
    """Samples the runner's RSS and the container's log size until stopped."""

    def __init__(self, pid, docker_client, result_id):
        self.pid, self.docker, self.result_id = pid, docker_client, result_id
        self.rss, self.log, self.container = 0, 0, None
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self.done.wait(0.1):
            self.rss = max(self.rss, rss(self.pid))
            if self.container is None:
                found = containers_of(self.docker, self.result_id)
                self.container = found[0].id if found else None
            if self.container:
                self.log = max(self.log, engine_log_bytes(self.docker, self.container))

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.done.set()
        self.thread.join()


def test_a_huge_output_keeps_its_head_and_tail_with_runner_memory_and_engine_log_bounded(flood, docker_client):
    system, task = flood
    filler = 2_000_000_000
    command = ["sh", "-c", f"printf 'HEAD-MARK\\n'; head -c {filler} /dev/zero; printf 'TAIL-MARK\\n'"]
    result_id = system.api.run(task["task_id"], command=command)
    with Sampler(system.procs["runner-1"].pid, docker_client, result_id) as sampler:
        result = system.api.wait_result(result_id, timeout=600)
    [detail] = system.api.details(result_id)
    assert result["status"] == "COMPLETE", detail
    assert sampler.container, "the container was never seen"
    assert 0 < sampler.log <= LOG_MAX_SIZE * LOG_MAX_FILES + LOG_SLACK, sampler.log  # still capped
    assert sampler.rss < RSS_BOUND, f"runner RSS reached {sampler.rss} bytes"
    logs = system.api.get(f"/result/{result_id}/detail/{detail['detail_id']}/logs/").json()
    produced = filler + len("HEAD-MARK\nTAIL-MARK\n")
    print(f"runner RSS at most {sampler.rss / 1024 ** 2:.0f} MiB, engine log at most "
          f"{sampler.log / 1024 ** 2:.1f} MiB, stdout total seen {logs['stdout_total']} of {produced}")
    # read by attaching to the container: every byte counted, though the engine's log rotated
    assert logs["stdout_total"] == produced
    assert logs["stdout_truncated"] is True
    limit = 1024 ** 2  # LOG_LIMIT_BYTES
    raw = system.api.get(f"/result/{result_id}/detail/{detail['detail_id']}/logs/stdout/")
    half = limit // 2
    assert raw.content == b"HEAD-MARK\n" + b"\0" * (half - 10) + b"\0" * (limit - half - 10) + b"TAIL-MARK\n"
    assert (raw.headers["Stevedore-Head-Bytes"], raw.headers["Stevedore-Omitted-Bytes"]) == (
        str(half), str(produced - limit))


def test_a_chatty_job_keeps_its_lease_and_ends_killed_when_cancelled(flood):
    system, task = flood
    result_id = system.api.run(task["task_id"], command=["yes"])
    wait_until(lambda: system.api.details(result_id)[0]["status"] == "RUNNING", timeout=60,
               what="the execution to run")
    [detail] = system.api.details(result_id)
    path = f"/result/{result_id}/detail/{detail['detail_id']}/logs/"
    # past twice the lease (8 s): a runner whose heartbeats starve loses it, and the attempt is retaken
    time.sleep(16)
    [detail] = system.api.details(result_id)
    assert detail["status"] == "RUNNING" and detail["attempt"] == 1, detail
    assert system.api.get(path).json()["stdout_total"] > 1024 ** 2, "no live output"
    response = system.api.post(f"/result/{result_id}/", {"operation": "CANCEL"})
    assert response.status_code == 202, response.text
    result = system.api.wait_result(result_id, timeout=STOP_GRACE + 20)
    [detail] = system.api.details(result_id)
    assert result["status"] == "KILLED" and detail["reason"] == "cancelled", detail
    assert detail["attempt"] == 1, "the execution was taken back from its runner"
    logs = system.api.get(f"/result/{result_id}/detail/{detail['detail_id']}/logs/").json()
    assert logs["stdout"].startswith("y\ny\n") and logs["stdout"].endswith("y\n")


def test_a_chatty_job_that_outlives_its_timeout_ends_killed(flood):
    system, task = flood
    result_id = system.api.run(task["task_id"], command=["yes"], timeout=10)
    result = system.api.wait_result(result_id, timeout=10 + STOP_GRACE + 30)
    [detail] = system.api.details(result_id)
    assert result["status"] == "ERROR"  # a run with a timed-out execution failed
    assert detail["status"] == "KILLED" and detail["reason"].startswith("timeout"), detail
    assert detail["attempt"] == 1, detail
