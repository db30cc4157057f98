"""Deleting results that ended: by DELETE /result/{id}/, and by RESULT_RETENTION_DAYS."""
import time
import uuid
from typing import ClassVar

import pytest
from nameko.events import event_handler
from nameko.testing.services import entrypoint_waiter

from tests.support import own_system, wait_until

pytestmark = pytest.mark.e2e


class DeletionWatcher:
    name = "e2e_deletion_watcher"
    seen: ClassVar[list] = []

    @event_handler("scheduler", "result_deleted")
    def on_result_deleted(self, payload):
        self.seen.append(payload)


def test_delete_removes_an_ended_result_and_refuses_a_running_one(container_factory, api, ready_tasks,
                                                                  session_amqp_uri):
    watcher = container_factory(DeletionWatcher, {"AMQP_URI": session_amqp_uri})
    watcher.start()
    task_id = ready_tasks["ok"]["task_id"]
    done = api.run(task_id, times=2)
    api.wait_result(done)
    kept = api.run(task_id, times=1)
    api.wait_result(kept)
    detail = api.details(done)[0]

    with entrypoint_waiter(watcher, "on_result_deleted", timeout=30,
                           callback=lambda wc, r, e: wc.args[0]["result_id"] == done):
        response = api.delete(f"/result/{done}/")
        assert response.status_code == 204, response.text
    assert DeletionWatcher.seen[-1] == {"result_id": done, "task_id": task_id, "expired": False,
                                        "team": "default", "submitted_by": "admin"}

    for path in (f"/result/{done}/", f"/result/{done}/detail/",
                 f"/result/{done}/detail/{detail['detail_id']}/",
                 f"/result/{done}/detail/{detail['detail_id']}/logs/"):
        gone = api.get(path)
        assert gone.status_code == 404 and gone.json()["error"] == "NOT_FOUND", path
    assert done not in [r["result_id"] for r in api.get("/result/", params={"limit": 1000}).json()]
    again = api.delete(f"/result/{done}/")
    assert again.status_code == 404 and again.json()["message"].startswith("result_id:")
    assert api.get(f"/result/{kept}/").json()["status"] == "COMPLETE"  # the others stay

    running = api.run(ready_tasks["sleep"]["task_id"], times=1, env={"SLEEP": "30"})
    refused = api.delete(f"/result/{running}/")
    assert refused.status_code == 409 and refused.json()["error"] == "CONFLICT"
    assert refused.json()["message"].startswith("result_id:") and "cancel it" in refused.json()["message"]
    api.post(f"/result/{running}/", {"operation": "CANCEL"})
    assert api.wait_result(running, timeout=60)["status"] in ("CANCELLED", "KILLED")
    assert api.delete(f"/result/{running}/").status_code == 204


@pytest.fixture
def short_retention_system(vhost_pipeline, request, test_images):
    """A system of its own that keeps ended results for about two seconds."""
    yield from own_system(request, vhost_pipeline, "retention",
                          {"RESULT_RETENTION_DAYS": str(2 / 86400), "RETENTION_SWEEP_INTERVAL": "0.5"}, runners=2)


def test_results_are_deleted_once_they_ended_longer_ago_than_the_retention(short_retention_system, test_images):
    api = short_retention_system.api
    task = api.register(test_images["ok"], name=f"retention-{uuid.uuid4().hex[:6]}")
    sleeper = api.register(test_images["sleep"], name=f"retention-sleep-{uuid.uuid4().hex[:6]}")
    running = api.run(sleeper["task_id"], times=1, env={"SLEEP": "15"})
    ended = api.run(task["task_id"], times=3)
    finished = api.wait_result(ended)
    assert finished["status"] == "COMPLETE"
    # deleted by the sweep once it ended more than two seconds ago, not before
    wait_until(lambda: api.get(f"/result/{ended}/").status_code == 404, timeout=20, interval=0.2,
               what="the ended result to be deleted")
    assert time.time() - finished["end"] >= 2
    assert api.get(f"/result/{ended}/detail/").status_code == 404
    # a run still going is never touched; once it ended, it goes the same way
    assert api.get(f"/result/{running}/").json()["status"] in ("QUEUED", "RUNNING")
    assert api.wait_result(running, timeout=60)["status"] == "COMPLETE"
    wait_until(lambda: api.get(f"/result/{running}/").status_code == 404, timeout=20, interval=0.2,
               what="the second result to be deleted")
    assert api.get(f"/task/{task['task_id']}/").json()["status"] == "READY"  # tasks stay
