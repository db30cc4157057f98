"""Issue 17's features together with the rest, on the real parts (review17): labels, constraints, GPUs, items
and matrix, `after`, schedules, PATCH, CANCEL and RERUN_FAILED in one system, and hostile input to each.

A system of its own: runner-1 labelled zone=eu; runner-2 zone=us with GPUs 0 and 1 (this host has none: its
engine refuses a container that asks for them, so a GPU run ends ERROR there, which the rerun test uses).
"""
import os
import uuid

import pytest

from tests.e2e.run_features import (
    after,
    cancel,
    patch,
    refused,
    rerun,
    result,
    run,
    run_now,
    schedule,
)
from tests.support import started_system, wait_until

pytestmark = pytest.mark.e2e

HOST = os.uname().nodename
EU, US = f"{HOST}-runner-1", f"{HOST}-runner-2"


@pytest.fixture(scope="module")
def fleet(vhost_pipeline, request, test_images, docker_client):
    # a long sweep: what a RUN, a fire or a rerun says at once is not the sweep's doing
    with started_system(request, vhost_pipeline, "fleet17", {"SWEEP_INTERVAL": "30", "RUNNER_SLOTS": "2"}, runners=2,
                        per_runner={"runner-1": {"RUNNER_LABELS": "zone=eu"},
                                    "runner-2": {"RUNNER_LABELS": "zone=us", "RUNNER_GPUS": "0,1"}},
                        docker_client=docker_client) as running:
        running.tasks = {behaviour: running.api.register(
            test_images[behaviour], name=f"f17-{behaviour}-{uuid.uuid4().hex[:6]}")
            for behaviour in ("ok", "fail", "sleep")}
        wait_until(lambda: len(live(running)) == 2, timeout=30, what="both runners listed")
        yield running


def live(system):
    answer = system.api.get("/runner/", params={"status": "LIVE"})
    assert answer.status_code == 200, answer.text
    return [runner["runner_id"] for runner in answer.json()]


def runners_of(system, result_id):
    return {detail["runner"] for detail in system.api.details(result_id)}


def test_labels_constraints_matrix_and_after_in_one_run(fleet):
    api, sweep = fleet.api, f"s{uuid.uuid4().hex[:8]}"
    first = run(api, fleet.tasks["ok"], times=1, constraints={"zone": "us"}, labels={"sweep": sweep})
    second = run(api, fleet.tasks["ok"], constraints={"zone": "eu"}, labels={"sweep": sweep, "part": "b"},
                 matrix={"LR": ["0.1", "0.2"], "SEED": ["1"]}, after=after(first["result_id"]), priority=5)
    assert second["params"]["constraints"] == {"zone": "eu"} and second["labels"]["part"] == "b"
    for made, runner in ((first, US), (second, EU)):
        ended = api.wait_result(made["result_id"])
        assert ended["status"] == "COMPLETE" and ended["unschedulable"] is None, ended
        assert runners_of(fleet, made["result_id"]) == {runner}
    assert result(api, second["result_id"])["times"] == 2
    listed = api.get("/result/", params={"label": [f"sweep={sweep}", "part"], "status": "COMPLETE"})
    assert [item["result_id"] for item in listed.json()] == [second["result_id"]]


def test_a_rerun_of_failures_keeps_labels_constraints_and_gpus(fleet):
    api = fleet.api
    body = {"times": 2, "constraints": {"zone": "us"}, "gpus": 1, "labels": {"kind": "gpu-rerun"},
            "items": [{"env": {"A": "1"}}, {"env": {"A": "2"}}]}
    failed = api.wait_result(run(api, fleet.tasks["ok"], **body)["result_id"])
    assert failed["status"] == "ERROR", failed  # this host's engine has no NVIDIA runtime
    again = rerun(api, failed["result_id"])
    assert again.status_code == 202, again.text
    params = again.json()["params"]
    assert (params["constraints"], params["gpus"], again.json()["labels"]) == (
        {"zone": "us"}, 1, {"kind": "gpu-rerun"})
    ended = api.wait_result(again.json()["result_id"])
    assert runners_of(fleet, ended["result_id"]) == {US}
    gpu_ids = [detail["gpu_ids"] for detail in api.details(ended["result_id"])]
    assert all(ids and len(ids) == 1 and ids[0] in ("0", "1") for ids in gpu_ids), gpu_ids


def test_a_schedules_run_no_runner_can_take_says_so_at_once_and_is_patched_cancelled_and_waited_for(fleet):
    api = fleet.api
    made = schedule(api, fleet.tasks["ok"], {"times": 2, "constraints": {"zone": "mars"}, "gpus": 1,
                                            "labels": {"fired": "yes"}}, concurrency_policy="Forbid")
    fired = run_now(api, made["schedule_id"])
    assert fired.status_code == 202, fired.text
    stranded = fired.json()
    # said by the fire itself (the sweep is 30 s away), as a RUN's answer says it
    assert "zone=mars and 1 GPU" in (stranded["unschedulable"] or ""), stranded
    assert stranded["labels"] == {"fired": "yes"}
    held = refused(run_now(api, made["schedule_id"]), "concurrency_policy", 409)  # Forbid: it is still QUEUED
    assert "it waits for a runner: no live runner has the labels zone=mars" in held["message"], held
    refused(patch(api, stranded["result_id"], {"constraints": {"zone": "eu"}}), "constraints")  # set by the RUN
    refused(patch(api, stranded["result_id"], {"gpus": 0}), "gpus")
    changed = patch(api, stranded["result_id"], {"priority": 7})
    assert changed.status_code == 200, changed.text
    assert changed.json()["status"] == "QUEUED" and "zone=mars" in changed.json()["unschedulable"]
    waiting = run(api, fleet.tasks["ok"], times=1, after=after(stranded["result_id"]))
    assert waiting["status"] == "QUEUED" and waiting["waiting_for"], waiting
    assert cancel(api, stranded["result_id"]).status_code == 202
    ended = api.wait_result(stranded["result_id"])
    assert ended["status"] == "CANCELLED" and ended["unschedulable"] is None, ended
    dependent = api.wait_result(waiting["result_id"])
    assert dependent["status"] == "CANCELLED" and stranded["result_id"] in dependent["reason"], dependent
    api.delete(f"/schedule/{made['schedule_id']}/")


@pytest.mark.parametrize("path", ["/result/", "/task/"])
@pytest.mark.parametrize("query", ["label=a%3Db%3Dc", "label=%3D", "label=%C3%A9", "label=a%00",
                                   "label=a%3D%0A", "label=" + "a" * 5000, "label=a&label=b%3D%20",
                                   "label=stevedore.managed%3D%3D1"])
def test_hostile_label_filters_are_a_400_json_naming_label(fleet, path, query):
    answer = fleet.api.get(f"{path}?{query}")
    assert answer.status_code == 400, answer.text
    assert answer.json()["message"].startswith("label"), answer.text


def test_paging_with_several_label_filters_and_a_status_keeps_them_all(fleet):
    api, sweep = fleet.api, f"p{uuid.uuid4().hex[:8]}"
    made = {run(api, fleet.tasks["ok"], times=1, labels={"sweep": sweep, "page": "yes"})["result_id"]
            for _ in range(3)}
    for result_id in made:
        api.wait_result(result_id)
    seen, url = [], f"/result/?label=sweep%3D{sweep}&label=page&status=COMPLETE&limit=1"
    while url:
        answer = api.get(url)
        assert answer.status_code == 200, answer.text
        seen += [item["result_id"] for item in answer.json()]
        link = answer.headers.get("Link")
        if link:
            assert f"sweep%3D{sweep}" in link and "label=page" in link and "status=COMPLETE" in link, link
        url = link[1:link.index(">")] if link else None
    assert sorted(seen) == sorted(made)


def test_the_runner_list_pages_and_filters_and_refuses_what_it_cannot_take(fleet):
    api = fleet.api
    first = api.get("/runner/", params={"limit": 1, "status": "LIVE"})
    assert first.status_code == 200 and [r["runner_id"] for r in first.json()] == [EU], first.text
    link = first.headers["Link"]
    assert "status=LIVE" in link and "limit=1" in link, link
    rest = api.get(link[1:link.index(">")])
    assert [r["runner_id"] for r in rest.json()] == [US] and "Link" not in rest.headers
    assert api.get("/runner/", params={"status": "LOST"}).json() == []
    for query, field in (({"status": "live"}, "status"), ({"after": "a/b"}, "after"),
                         ({"after": "a\x01"}, "after"), ({"limit": "0"}, "limit")):
        refused(api.get("/runner/", params=query), field)


def test_twenty_label_filters_of_the_longest_keys_and_values_are_answered(fleet):
    prefix = ".".join(["a" * 63] * 3 + ["b" * 61])  # 253 characters, the longest a prefix may be
    filters = [f"{prefix}/{'k' * 61}{i:02d}={'v' * 63}" for i in range(20)]
    for path in ("/result/", "/task/"):
        answer = fleet.api.get(path, params={"label": filters, "limit": 1000})
        assert answer.status_code == 200 and answer.json() == [], (answer.status_code, answer.text[:300])
