"""Orphaned containers on an engine whose only runner is gone, and of results deleted since.

The shared engine is fine here: every container is labelled with its
installation's id (this test's own database), so runners of other tests leave
these alone, and this test's runner leaves theirs alone.
"""
import uuid

import pytest

from tests.faults.checks import sql, wait_finished, wait_running
from tests.support import containers_of, wait_until

pytestmark = pytest.mark.faults


def foreign_container(docker_client, image, installation):
    """A stopped container as another installation's runner (or an old runner: no id) leaves it."""
    labels = {"stevedore.managed": "true", "stevedore.result_id": uuid.uuid4().hex,
              "stevedore.detail_id": uuid.uuid4().hex, "stevedore.attempt": "1",
              "stevedore.runner": "elsewhere"}
    if installation:
        labels["stevedore.installation"] = installation
    return docker_client.containers.create(image, command=["true"], labels=labels)


def test_orphans_of_an_engine_whose_only_runner_was_lost_are_removed_by_the_next_runner_at_its_start(
        build_system, ok_task, docker_client, test_images):
    # a reconcile only at start: the orphans must go in the new runner's first pass
    system = build_system(runners=2, start=False, env={"RUNNER_SLOTS": "2", "RECONCILE_INTERVAL": "3600"})
    system.start("gateway", "registry", "scheduler", "runner-1").wait_healthy()
    api, task = system.api, ok_task(system)
    [(installation,)] = sql(system.database_url, "SELECT id FROM installation")
    kept = api.run(task["task_id"], times=1, command=["sleep", "300"])
    deleted = api.run(task["task_id"], times=1, command=["sleep", "300"])
    wait_running(api, kept), wait_running(api, deleted)
    orphans = containers_of(docker_client, kept) + containers_of(docker_client, deleted)
    assert {c.attrs["Labels"]["stevedore.installation"] for c in orphans} == {installation}
    others = [foreign_container(docker_client, test_images["ok"], "another-installation"),
              foreign_container(docker_client, test_images["ok"], None)]
    try:
        system.kill("runner-1")  # the engine's only runner, for good
        for result_id in (kept, deleted):
            assert wait_finished(api, result_id, timeout=60)["status"] == "ERROR"
        assert api.delete(f"/result/{deleted}/").status_code == 204
        for c in orphans:
            c.reload()
            assert c.status == "running"

        system.start("runner-2")  # another runner id, on the same engine
        wait_until(lambda: not containers_of(docker_client, kept) and not containers_of(docker_client, deleted),
                   timeout=30, what="the orphans to be removed")
        log = system.log("runner-2")
        assert "removing orphaned container" in log and "its result was deleted" in log
        for other in others:  # not this installation's to judge
            other.reload()
    finally:
        for container in orphans + others:
            try:
                container.remove(force=True)
            except Exception:  # removed already, as it should be
                pass
