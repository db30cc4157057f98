"""A host's Docker engine restarted while an execution prints there: the engine stops the
container as it shuts down and the runner's attach ends; the execution ends truthfully, with
the bytes it printed before and as it was stopped (from the attach, or from the engine's capped
log where the attach missed them). Run in a module of its own: it restarts one of its rig's engines.
"""
import pytest

from tests.multihost.conftest import FAST
from tests.support import wait_until

pytestmark = pytest.mark.multihost

PATIENCE = float(FAST["ENGINE_PATIENCE"])
# prints, then waits; says so when the engine's shutdown sends it SIGTERM
JOB = "trap 'printf \"term\\377\\n\"; exit 143' TERM; printf 'before\\000\\n'; sleep 600 & wait"


def test_an_engine_restart_ends_the_execution_truthfully_with_its_output(rig):
    api = rig.api
    result_id = api.run(rig.task["task_id"], times=1, command=["sh", "-c", JOB])

    def printing():
        [detail] = api.details(result_id)
        if detail["status"] != "RUNNING":
            return None
        logs = api.get(f"/result/{result_id}/detail/{detail['detail_id']}/logs/").json()
        return detail if logs["stdout_total"] else None

    detail = wait_until(printing, timeout=120, what="the execution to run and print on a host")
    host = next(h for h in rig.hosts if h.runner_id == detail["runner"])
    host.engine.restart()

    result = api.wait_result(result_id, timeout=PATIENCE + 60)
    [detail] = api.details(result_id)
    assert result["status"] == "ERROR", detail
    assert detail["status"] == "ERROR" and detail["runner"] == host.runner_id, detail
    assert detail["exit_code"] == 143 and detail["reason"].startswith("exited with code 143"), detail
    assert detail["attempt"] == 1, detail
    raw = api.get(f"/result/{result_id}/detail/{detail['detail_id']}/logs/stdout/")
    assert raw.status_code == 200
    # the head from the attach (raw bytes); the end, if the attach missed it, from the engine's json-file
    # log, which gives U+FFFD for the byte that is not UTF-8
    assert raw.content.startswith(b"before\x00\n"), raw.content
    assert raw.content.endswith((b"term\xff\n", "term\ufffd\n".encode())), raw.content
