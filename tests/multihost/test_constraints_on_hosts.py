"""Runner labels across hosts (issue 17 part 3): a RUN's constraints send its executions only to the hosts
whose runners have those labels, as the hosts' own engines witness (hosts 1 and 2: zone=eu; host 3: zone=us;
each host=hN: conftest.py)."""
import collections
import time

import pytest

from tests.faults.checks import all_details, wait_finished
from tests.multihost.test_runners_on_hosts import starts_by_engine
from tests.support import wait_until

pytestmark = pytest.mark.multihost


def listed(api):
    answer = api.get("/runner/")
    assert answer.status_code == 200, answer.text
    return {runner["runner_id"]: runner for runner in answer.json()}


def test_constrained_runs_run_only_on_the_hosts_whose_labels_match(rig):
    hosts = {host.runner_id: host for host in rig.hosts}
    wait_until(lambda: {r for r, v in listed(rig.api).items() if v["status"] == "LIVE"} >= set(hosts),
               timeout=60, what="the three hosts' runners listed LIVE")
    runners = listed(rig.api)
    assert runners["host-1"]["labels"] == {"host": "h1", "zone": "eu"}
    assert runners["host-3"]["labels"] == {"host": "h3", "zone": "us"}

    since = time.time()
    eu = rig.api.run(rig.task["task_id"], times=20, env={"SLEEP": "0.3"}, constraints={"zone": "eu"})
    us = rig.api.run(rig.task["task_id"], times=6, env={"SLEEP": "0.3"}, constraints={"host": "h3"})
    for result_id, expected in ((eu, {"host-1", "host-2"}), (us, {"host-3"})):
        result = wait_finished(rig.api, result_id, timeout=120)
        assert result["status"] == "COMPLETE", result
        details = all_details(rig.api, result_id)
        shares = collections.Counter(detail["runner"] for detail in details)
        assert set(shares) <= expected, shares
        # the engines agree: only the matching hosts started its containers
        starts = starts_by_engine(rig.hosts, result_id, since)
        started_on = {runner for runner, counted in starts.items() if sum(counted.values())}
        assert started_on == set(shares), (starts, shares)
    assert len(collections.Counter(d["runner"] for d in all_details(rig.api, eu))) == 2  # shared by both

    nowhere = rig.api.run(rig.task["task_id"], times=1, constraints={"zone": "ap"})
    result = rig.api.get(f"/result/{nowhere}/").json()
    assert result["status"] == "QUEUED" and "zone=ap" in result["unschedulable"], result
    rig.api.post(f"/result/{nowhere}/", {"operation": "CANCEL"})
