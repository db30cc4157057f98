"""dockerd restarted mid-run: affected executions end truthfully or are retried; nothing is stuck.

dockerd is shared with other developers' tests and a restart stops every
container on it, so this runs last, once.  It is restarted the way .ci/run
starts it.
"""
import os
import signal
import subprocess

import pytest

from tests.faults.checks import assert_truthful, wait_docker, wait_finished, wait_running
from tests.support import wait_until

pytestmark = pytest.mark.faults

# exits at once on the SIGTERM the engine sends its containers when it stops
LONG_FIRST_ATTEMPT = ('trap "exit 143" TERM; '
                      'if [ "$STEVEDORE_ATTEMPT" = 1 ]; then sleep 60 & wait; fi; echo ok')
DOCKERD_LOG = "/tmp/stevedore-faults-dockerd.log"
# the machine's engine, by its pid file: other tests (tests/fuzz, tests/multihost) run dockerds of their own,
# which `pidof dockerd` would find as well
DOCKERD_PID_FILE = "/var/run/docker.pid"


def restart_dockerd():
    with open(DOCKERD_PID_FILE) as fh:
        pid = int(fh.read().strip())
    os.kill(pid, signal.SIGTERM)
    wait_until(lambda: not os.path.exists(f"/proc/{pid}"), timeout=60, interval=0.2,
               what="dockerd to exit")
    with open(DOCKERD_LOG, "ab") as log:
        subprocess.Popen(["dockerd"], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                         start_new_session=True)
    wait_docker()


def test_executions_cut_by_a_dockerd_restart_end_truthfully_or_are_retried(
        build_system, ok_task, docker_client):
    system = build_system(runners=2, env={"RUNNER_SLOTS": "2"})
    api, task = system.api, ok_task(system)
    once = api.run(task["task_id"], times=2, command=["sh", "-c", LONG_FIRST_ATTEMPT])
    retried = api.run(task["task_id"], times=2, retries=1, command=["sh", "-c", LONG_FIRST_ATTEMPT])
    wait_running(api, once, count=2), wait_running(api, retried, count=2)

    restart_dockerd()

    assert wait_finished(api, once, timeout=60)["status"] == "ERROR"
    for detail in assert_truthful(api, docker_client, once, times=2):
        assert detail["status"] == "ERROR" and detail["attempt"] == 1
        assert "killed by signal" in detail["reason"] or "Docker engine" in detail["reason"], detail

    assert wait_finished(api, retried, timeout=60)["status"] == "COMPLETE"
    for detail in assert_truthful(api, docker_client, retried, times=2, retries=1):
        first, second = detail["attempts"]
        assert "killed by signal" in first["reason"] or "Docker engine" in first["reason"], detail
        assert second["status"] == "COMPLETE"
