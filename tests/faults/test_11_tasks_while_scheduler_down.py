"""Tasks changed while the scheduler is down (killed): it learns them from the events RabbitMQ kept for it,
and a task's DELETE it could not answer in time leaves the task as it was."""

import pytest

from tests.faults.checks import sql
from tests.support import wait_until

pytestmark = pytest.mark.faults


def test_task_changes_while_the_scheduler_is_down_are_learned_and_an_unanswered_delete_changes_nothing(
        build_system, ok_task):
    system = build_system(runners=1)
    api, db = system.api, system.database_url
    moved = ok_task(system)["task_id"]
    assert api.wait_result(api.run(moved, times=1))["status"] == "COMPLETE"

    system.kill("scheduler")
    # a re-import and a new task while no scheduler runs: their events wait in the scheduler's queues
    assert api.post(f"/task/{moved}/", {"operation": "IMPORT"}).status_code == 202
    assert api.wait_task(moved)["status"] == "READY"
    added = ok_task(system)["task_id"]
    # its close waits in RabbitMQ past the gateway's RPC_TIMEOUT: 503, and the task is kept
    refused = api.delete(f"/task/{added}/")
    assert refused.status_code == 503, refused.text
    assert api.get(f"/task/{added}/").status_code == 200

    system.start("scheduler").wait_healthy()

    def learned():
        rows = sql(db, """SELECT k.task_id, k.status, k.deleted FROM known_tasks k JOIN tasks t ON t.id = k.task_id
                          WHERE k.version = t.version""")
        return {task_id: (status, deleted) for task_id, status, deleted in rows} \
            if {row[0] for row in rows} == {moved, added} else None

    copies = wait_until(learned, timeout=30, what="the scheduler to learn both tasks from the kept events")
    assert copies == {moved: ("READY", False), added: ("READY", False)}
    # the close it took too late was refused: the task still runs, and is deleted when asked again
    run = api.run(added, times=1)
    assert api.wait_result(run)["status"] == "COMPLETE"
    assert api.delete(f"/task/{added}/").status_code == 204
    assert api.post(f"/task/{added}/", {"operation": "RUN", "times": 1}).status_code == 404
    assert api.get(f"/result/{run}/").json()["task_id"] == added  # its history stays
