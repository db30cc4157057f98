"""A host's Docker engine gone for good while an execution runs there (issue 13).

The runner cannot reach its engine any more; its heartbeats go on, so nothing
takes the execution back, and without a bound it would wait for ever.  It
ends ERROR, saying so, within ENGINE_PATIENCE (10 s here: FAST in conftest.py).
Run in a module of its own: it kills one of its rig's engines.
"""
import pytest

from tests.multihost.conftest import FAST
from tests.support import wait_until

pytestmark = pytest.mark.multihost

PATIENCE = float(FAST["ENGINE_PATIENCE"])


def test_an_execution_on_an_engine_gone_for_good_ends_error_within_the_patience(rig):
    api = rig.api
    result_id = api.run(rig.task["task_id"], times=1, env={"SLEEP": "600"})

    def running():
        [detail] = api.details(result_id)
        return detail if detail["status"] == "RUNNING" else None

    detail = wait_until(running, timeout=120, what="the execution to run on a host")
    host = next(h for h in rig.hosts if h.runner_id == detail["runner"])
    host.engine.proc.kill()  # SIGKILL: its socket stays, refusing; nothing brings it back
    host.engine.proc.wait(30)

    # the patience, the last wait slice and the report's way through RabbitMQ and the scheduler
    result = api.wait_result(result_id, timeout=PATIENCE + 30)
    [detail] = api.details(result_id)
    assert result["status"] == "ERROR", detail
    assert detail["status"] == "ERROR" and detail["runner"] == host.runner_id, detail
    assert detail["reason"].startswith(f"the Docker engine could not be reached for {PATIENCE:g}s"), detail
    assert detail["attempt"] == 1, "the lease was lost: heartbeats stopped while the engine was gone"
