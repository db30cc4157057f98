"""A runner sent SIGTERM: it takes no new work, lets what it holds finish within
RUNNER_STOP_GRACE, then stops the rest and hands it back."""
import signal
import time

import pytest

from tests.faults.checks import assert_truthful, get_json, wait_finished, wait_running

pytestmark = pytest.mark.faults

GRACE = 8
SLEEP_ON_FIRST_ATTEMPT = ('if [ "$STEVEDORE_ATTEMPT" = 1 ]; then sleep 120; fi; '
                          'echo "attempt $STEVEDORE_ATTEMPT"')


def test_stopped_runner_finishes_what_it_holds_within_its_grace_and_hands_back_the_rest(
        build_system, ok_task, docker_client):
    system = build_system(runners=2, start=False,
                          env={"RUNNER_SLOTS": "2", "RUNNER_STOP_GRACE": str(GRACE)})
    system.start("gateway", "registry", "scheduler", "runner-1").wait_healthy()
    api, task = system.api, ok_task(system)
    stopping_id = system.plan["runner-1"][1]["RUNNER_ID"]
    other_id = system.plan["runner-2"][1]["RUNNER_ID"]
    since = time.time()
    short = api.run(task["task_id"], times=1, command=["sh", "-c", "sleep 4; echo done"])
    long = api.run(task["task_id"], times=1, retries=1, command=["sh", "-c", SLEEP_ON_FIRST_ATTEMPT])
    wait_running(api, short), wait_running(api, long)

    proc = system.procs["runner-1"]
    proc.send_signal(signal.SIGTERM)
    stopped_at = time.monotonic()
    # submitted after the SIGTERM: the stopping runner must not take it
    later = api.run(task["task_id"], times=1)

    # what finishes within the grace period is reported as it ended
    assert wait_finished(api, short, timeout=20)["status"] == "COMPLETE"
    # the long one is stopped at the end of the grace period, and the runner exits
    proc.wait(GRACE + 20)
    assert time.monotonic() - stopped_at >= GRACE
    assert get_json(api, f"/result/{later}/")["status"] == "QUEUED"
    [waiting] = api.details(later)
    assert waiting["runner"] is None and waiting["attempt"] == 0

    system.start("runner-2")
    [detail] = assert_truthful(api, docker_client, short, times=1, since=since)
    assert detail["runner"] == stopping_id and detail["attempt"] == 1

    assert wait_finished(api, long, timeout=40)["status"] == "COMPLETE"
    [detail] = assert_truthful(api, docker_client, long, times=1, retries=1, since=since)
    first, second = detail["attempts"]
    assert first["status"] == "ERROR" and first["runner"] == stopping_id
    assert f"runner {stopping_id} was shut down" in first["reason"]
    assert f"stop grace period of {GRACE}s" in first["reason"]
    assert first["exit_code"] is not None
    assert second["status"] == "COMPLETE" and second["runner"] == other_id

    assert wait_finished(api, later, timeout=30)["status"] == "COMPLETE"
    [detail] = assert_truthful(api, docker_client, later, times=1, since=since)
    assert detail["runner"] == other_id and detail["attempt"] == 1
