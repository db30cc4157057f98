"""Runners on separate hosts, each with its own Docker engine, share the work (issue 6).

The hosts are network namespaces with a dockerd each (see hosts.py and
docs/multihost.md).  What the engines themselves recorded is the witness:
their images, their pull events, the containers they started and for whom.
"""
import collections
import datetime
import re
import time

import docker
import pytest
import requests

from tests.faults.checks import TERMINAL, all_details, assert_truthful, get_json, wait_finished
from tests.support import wait_until

pytestmark = pytest.mark.multihost

TIMES = 60
SLEEP = "0.5"
RECONNECT_WITHIN = 40  # seconds from the link coming back to the host running work


class Engines:
    """The hosts' engines seen as one, for ``assert_truthful``'s engine checks."""

    def __init__(self, hosts):
        self.clients = [host.engine.client for host in hosts]

    def events(self, **query):
        return [event for client in self.clients for event in client.events(**query)]

    @property
    def containers(self):
        clients = self.clients

        class Containers:
            def list(self, **query):
                return [c for client in clients for c in client.containers.list(**query)]

        return Containers()


def has_image(engine, reference):
    try:
        engine.client.images.get(reference)
        return True
    except docker.errors.ImageNotFound:
        return False


def image_pulls(engine, since):
    return [event["Actor"]["ID"] for event in engine.client.events(
        since=int(since) - 1, until=int(time.time()) + 1, decode=True,
        filters={"type": "image", "event": "pull"})]


def starts_by_engine(hosts, result_id, since):
    """{runner id of the host: {runner label of each container its engine started}}."""
    seen = {}
    for host in hosts:
        events = host.engine.client.events(
            since=int(since) - 1, until=int(time.time()) + 1, decode=True,
            filters={"type": "container", "event": "start", "label": [f"stevedore.result_id={result_id}"]})
        seen[host.runner_id] = collections.Counter(e["Actor"]["Attributes"]["stevedore.runner"]
                                                   for e in events)
    return seen


def test_sixty_executions_are_shared_by_three_hosts_each_pulling_the_image_by_digest(rig):
    digest = rig.task["digest"]
    for host in rig.hosts:
        assert not has_image(host.engine, digest), f"{host.runner_id} had the image before its first run"
    assert has_image(rig.control, digest)  # the registry service's engine pulled it at registration
    # the registry refuses anonymous pulls: the hosts must pull with the task's credentials
    assert requests.get(f"http://{rig.registry.address}/v2/", timeout=10).status_code == 401

    since = time.time()
    result_id = rig.api.run(rig.task["task_id"], times=TIMES, env={"SLEEP": SLEEP}, retries=2)
    wait_finished(rig.api, result_id, timeout=120)
    details = assert_truthful(rig.api, Engines(rig.hosts), result_id, TIMES, retries=2, since=since)

    assert all(d["status"] == "COMPLETE" for d in details), [d for d in details if d["status"] != "COMPLETE"]
    shares = collections.Counter(d["runner"] for d in details)
    assert set(shares) == {host.runner_id for host in rig.hosts}, shares

    starts = starts_by_engine(rig.hosts, result_id, since)
    for host in rig.hosts:
        # each engine pulled the image by its digest, and ran only its own runner's containers
        assert has_image(host.engine, digest), host.runner_id
        assert digest in image_pulls(host.engine, since), (host.runner_id, image_pulls(host.engine, since))
        started = starts[host.runner_id]
        assert set(started) == {host.runner_id}, (host.runner_id, started)
        assert sum(started.values()) == shares[host.runner_id], (host.runner_id, started, shares)


def test_a_host_cut_off_mid_run_loses_its_executions_to_the_others_and_the_run_ends_truthfully(rig):
    api = rig.api
    cut = rig.hosts[-1]
    others = {host.runner_id for host in rig.hosts[:-1]}
    since = time.time()
    # executions long enough that the cut host surely holds some when cut off
    result_id = api.run(rig.task["task_id"], times=TIMES, env={"SLEEP": "1"}, retries=2)

    def cut_host_runs_something():
        running = get_json(api, f"/result/{result_id}/detail/", status="RUNNING", limit=1000) or []
        return [d for d in running if d["runner"] == cut.runner_id]

    held = wait_until(cut_host_runs_something, timeout=60, interval=0.1,
                      what=f"{cut.runner_id} to run an execution")
    cut.link.cut()
    cut_at = time.time()
    try:
        # the run ends while the host is still cut off
        result = wait_finished(api, result_id, timeout=120)
        details = all_details(api, result_id)
    finally:
        cut.link.restore()
        rig.restored_at = time.time()

    counts = result["counts"]
    assert sum(counts.values()) == TIMES and counts["QUEUED"] == counts["RUNNING"] == 0, result
    assert all(d["status"] in TERMINAL for d in details)
    lost = [d for d in details
            if any(a["runner"] == cut.runner_id and a["status"] == "ERROR"
                   and "was lost" in (a["reason"] or "") for a in d["attempts"])]
    # what it ran when cut off was lost (unless its report got out just before the cut)
    assert lost, "no execution of the cut host was lost"
    for detail in held:
        late = [d for d in details if d["detail_id"] == detail["detail_id"]][0]
        assert late in lost or (late["runner"] == cut.runner_id and late["end"] <= cut_at + 1), late
    for detail in lost:
        # retried elsewhere, and completed there
        assert detail["status"] == "COMPLETE", detail
        assert detail["runner"] in others, detail
    for detail in details:
        if detail["status"] == "COMPLETE" and detail["runner"] == cut.runner_id:
            assert detail["end"] <= cut_at + 1, detail  # nothing finished on the cut host after the cut

    # every attempt ran at most once, by the engines' records; none completed twice
    after = assert_truthful(api, Engines(rig.hosts), result_id, TIMES, retries=2, since=since)
    assert all(d["status"] == "COMPLETE" for d in after), [d for d in after if d["status"] != "COMPLETE"]
    completions = collections.Counter(
        d["detail_id"] for d in after for a in d["attempts"] if a["status"] == "COMPLETE")
    assert set(completions.values()) == {1}
    rig.cut_run = (result_id, snapshot(details))  # the next test checks the late reports


def snapshot(details):
    return {d["detail_id"]: (d["status"], d["attempt"], d["runner"], len(d["attempts"])) for d in details}


def slots_running_since(log_text, since):
    """The runner's slots that started an execution after ``since`` (its log's local time)."""
    slots = set()
    for match in re.finditer(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),\d+ INFO \S+: slot (\d+) runs ",
                             log_text, re.M):
        if datetime.datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S").timestamp() >= since:
            slots.add(int(match.group(2)))
    return slots


def test_the_cut_host_takes_work_again_soon_after_its_link_is_back_and_its_late_reports_change_nothing(rig):
    cut = rig.hosts[-1]
    cut.link.restore()  # (restored by the test before; idempotent)
    restored_at = getattr(rig, "restored_at", time.time())
    slots = int(rig.system.env["RUNNER_SLOTS"])
    while True:
        result_id = rig.api.run(rig.task["task_id"], times=12, env={"SLEEP": "0.2"}, retries=2)
        wait_finished(rig.api, result_id, timeout=60)
        runners = {d["runner"] for d in all_details(rig.api, result_id)}
        # a slot runs new work only once the report it was retrying when cut off got through
        back = slots_running_since(rig.system.log(cut.runner_id), restored_at)
        if len(back) == slots or time.time() - restored_at > RECONNECT_WITHIN:
            break
    assert cut.runner_id in runners or back, runners
    assert len(back) == slots, back
    # bounded by the broker's AMQP heartbeat timeout (see config.yml HEARTBEAT)
    assert time.time() - restored_at <= RECONNECT_WITHIN, time.time() - restored_at

    if hasattr(rig, "cut_run"):
        cut_result, before = rig.cut_run
        time.sleep(2)  # let the scheduler fold the late reports
        assert snapshot(all_details(rig.api, cut_result)) == before


def test_a_host_that_cannot_pull_the_image_says_so_in_the_reason(rig):
    api = rig.api
    digest = rig.gone_task["digest"]
    name, sha = digest.split("@")
    repository = name.split("/", 1)[1]
    # the image goes from the registry after registration: no host has it, none can pull it
    deleted = requests.delete(f"http://{rig.registry.address}/v2/{repository}/manifests/{sha}",
                              auth=(rig.auth["username"], rig.auth["password"]), timeout=10)
    assert deleted.status_code == 202, deleted.text

    result_id = api.run(rig.gone_task["task_id"], times=6)
    result = wait_finished(api, result_id, timeout=60)
    assert result["counts"]["ERROR"] == 6, result
    for detail in all_details(api, result_id):
        assert detail["reason"].startswith(f"could not pull the image on runner {detail['runner']}: "
                                           f"image not found: {digest}"), detail
        assert detail["start"] is None, detail
