"""Runner labels, constraints and GPUs, and the runner list, on the real parts (issue 17 parts 3 and 4).

A system of its own: runner-1 labelled zone=eu,disk=ssd; runner-2 zone=us with GPUs 0 and 1 (this host has
none: its engine refuses a container that asks for them, which is what the GPU test asserts); runner-3,
zone=ap, started only once a run waits for it.
"""
import json
import os
import subprocess
import sys
import uuid

import pytest
import requests

from services.runner.confinement import with_gpus
from shared.docker_engine import create_container
from tests.browser import Browser
from tests.support import ARTIFACTS, started_system, wait_until

pytestmark = pytest.mark.e2e

HOST = os.uname().nodename
EU, US, AP = f"{HOST}-runner-1", f"{HOST}-runner-2", f"{HOST}-runner-3"
COMMAND = os.path.join(os.path.dirname(sys.executable), "stevedore")


@pytest.fixture(scope="module")
def fleet(vhost_pipeline, request, test_images, docker_client):
    with started_system(request, vhost_pipeline, "fleet", {"SWEEP_INTERVAL": "1", "RUNNER_SLOTS": "2"}, runners=2,
                        per_runner={"runner-1": {"RUNNER_LABELS": "zone=eu,disk=ssd"},
                                    "runner-2": {"RUNNER_LABELS": "zone=us", "RUNNER_GPUS": "0,1"}},
                        more={"runner-3": ("runner", {"RUNNER_ID": AP, "RUNNER_LABELS": "zone=ap",
                                                      "METRICS_PORT": "0"})},
                        start=("gateway", "registry", "scheduler", "runner-1", "runner-2"),
                        docker_client=docker_client) as running:
        running.tasks = {behaviour: running.api.register(
            test_images[behaviour], name=f"f-{behaviour}-{uuid.uuid4().hex[:6]}")
            for behaviour in ("ok", "sleep")}
        yield running


def run(system, behaviour="ok", times=1, **params):
    answer = system.api.post(f"/task/{system.tasks[behaviour]['task_id']}/",
                             {"operation": "RUN", "times": times, **params})
    assert answer.status_code == 202, answer.text
    return answer.json()


def runners(system, **query):
    answer = system.api.get("/runner/", params=query)
    assert answer.status_code == 200, answer.text
    return {runner["runner_id"]: runner for runner in answer.json()}


def test_constrained_executions_land_only_on_the_runners_whose_labels_match(fleet):
    wait_until(lambda: {EU, US} <= set(runners(fleet)), timeout=30, what="both runners listed")
    eu = run(fleet, times=6, constraints={"zone": "eu"})
    us = run(fleet, times=6, constraints={"zone": "us"})
    both = run(fleet, times=4, constraints={"zone": "eu", "disk": "ssd"})
    for result, runner in ((eu, EU), (us, US), (both, EU)):
        finished = fleet.api.wait_result(result["result_id"])
        assert finished["status"] == "COMPLETE", finished
        assert finished["unschedulable"] is None
        assert {detail["runner"] for detail in fleet.api.details(result["result_id"])} == {runner}
    assert fleet.api.get(f"/result/{eu['result_id']}/").json()["params"]["constraints"] == {"zone": "eu"}


def test_a_run_no_live_runner_can_take_says_so_and_starts_once_a_matching_runner_appears(fleet):
    waiting = run(fleet, times=2, constraints={"zone": "ap"})
    assert waiting["status"] == "QUEUED"
    assert "no live runner has the labels zone=ap" in (waiting["unschedulable"] or ""), waiting
    mismatched = run(fleet, times=1, constraints={"zone": "eu", "disk": "hdd"})
    assert "disk=hdd" in mismatched["unschedulable"] and "zone=eu" in mismatched["unschedulable"]
    fleet.api.post(f"/result/{mismatched['result_id']}/", {"operation": "CANCEL"})
    fleet.start("runner-3")
    finished = fleet.api.wait_result(waiting["result_id"], timeout=90)
    assert finished["status"] == "COMPLETE" and finished["unschedulable"] is None
    assert {detail["runner"] for detail in fleet.api.details(waiting["result_id"])} == {AP}


def test_the_runner_list_shows_a_runner_added_and_a_runner_killed(fleet):
    if "runner-3" not in fleet.procs:
        fleet.start("runner-3")
    wait_until(lambda: runners(fleet).get(AP, {}).get("status") == "LIVE", timeout=30, what="runner-3 LIVE")
    listed = runners(fleet)
    assert listed[EU]["labels"] == {"zone": "eu", "disk": "ssd"} and listed[EU]["gpus"] == []
    assert listed[US]["labels"] == {"zone": "us"} and listed[US]["gpus"] == ["0", "1"]
    assert listed[US]["gpus_free"] == 2 and listed[US]["slots"] == 2
    assert listed[EU]["engine"].startswith("Docker ")
    assert all(runner["status"] == "LIVE" for runner in listed.values())
    fleet.kill("runner-3")
    wait_until(lambda: runners(fleet)[AP]["status"] == "LOST", timeout=40, what="runner-3 LOST")
    assert set(runners(fleet, status="LIVE")) == {EU, US}
    assert set(runners(fleet, status="LOST")) == {AP}
    # paged by id, as other lists are
    first = fleet.api.get("/runner/", params={"limit": 1})
    assert first.status_code == 200 and len(first.json()) == 1 and 'rel="next"' in first.headers["Link"]
    assert fleet.api.get("/runner/", params={"status": "GONE"}).status_code == 400
    # a run only runner-3 could take says so again
    stranded = run(fleet, times=1, constraints={"zone": "ap"})
    wait_until(lambda: "zone=ap" in (fleet.api.get(f"/result/{stranded['result_id']}/").json()["unschedulable"]
                                     or ""), timeout=20, what="unschedulable again")
    fleet.api.post(f"/result/{stranded['result_id']}/", {"operation": "CANCEL"})


def test_a_gpu_run_reaches_only_the_gpu_runner_which_hands_it_its_device_and_the_engine_refuses_it(fleet):
    result = run(fleet, times=2, gpus=1)
    finished = fleet.api.wait_result(result["result_id"])
    details = fleet.api.details(result["result_id"])
    assert {detail["runner"] for detail in details} == {US}
    for detail in details:
        assert detail["status"] == "ERROR"
        assert detail["gpu_ids"] in (["0"], ["1"])
        # this host's engine has no NVIDIA runtime: the start is refused, in the engine's words
        assert detail["reason"].startswith("could not start the container"), detail["reason"]
        assert "nvidia" in detail["reason"].lower() or "gpu" in detail["reason"].lower(), detail["reason"]
    assert finished["status"] == "ERROR"
    too_many = run(fleet, times=1, gpus=3)
    assert "3 GPUs" in too_many["unschedulable"]
    fleet.api.post(f"/result/{too_many['result_id']}/", {"operation": "CANCEL"})
    # the GPUs are free again once the executions ended
    wait_until(lambda: runners(fleet)[US]["gpus_free"] == 2, timeout=20, what="GPUs freed")


def test_the_container_is_created_with_its_own_gpus_as_an_nvidia_device_request(fleet, docker_client, test_images):
    docker_client.images.pull(test_images["ok"])
    options = with_gpus({"labels": {"stevedore.test": "fleet"}, "detach": True}, ["1"])
    container = create_container(docker_client, test_images["ok"], options)
    try:
        requested = docker_client.api.inspect_container(container.id)["HostConfig"]["DeviceRequests"]
        assert requested == [{"Driver": "nvidia", "Count": 0, "DeviceIDs": ["1"], "Capabilities": [["gpu"]],
                              "Options": {}}]
        assert docker_client.api.inspect_container(container.id)["Config"]["Labels"]["stevedore.gpus"] == "1"
    finally:
        docker_client.api.remove_container(container.id, force=True)


@pytest.mark.parametrize("body, field", [
    ({"constraints": {"zone": 1}}, "constraints.zone"),
    ({"constraints": {"bad key!": "x"}}, "constraints"),
    ({"constraints": "zone=eu"}, "constraints"),
    ({"constraints": {f"k{i}": "v" for i in range(17)}}, "constraints"),
    ({"gpus": 17}, "gpus"),
    ({"gpus": -1}, "gpus"),
    ({"gpus": "one"}, "gpus"),
])
def test_bad_constraints_and_gpus_are_refused_naming_the_field(fleet, body, field):
    answer = fleet.api.post(f"/task/{fleet.tasks['ok']['task_id']}/", {"operation": "RUN", "times": 1, **body})
    assert answer.status_code == 400, answer.text
    assert answer.json()["message"].startswith(f"{field}:"), answer.json()


def cli(system, *args):
    environ = {key: value for key, value in os.environ.items() if not key.startswith("STEVEDORE_")}
    environ.update({"STEVEDORE_URL": system.url, "STEVEDORE_TOKEN": system.token})
    return subprocess.run([COMMAND, *args], env=environ, capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL, check=False)


def test_stevedore_runner_ls_and_run_with_constraint_and_gpus(fleet):
    listed = cli(fleet, "runner", "ls")
    assert listed.returncode == 0, listed.stderr
    line = next(row for row in listed.stdout.splitlines() if row.startswith(US))
    assert "LIVE" in line and "zone=us" in line and "2/2 (0,1)" in line
    as_json = json.loads(cli(fleet, "runner", "ls", "--json", "--status", "LIVE").stdout)
    assert {runner["runner_id"] for runner in as_json} >= {EU, US}

    ran = cli(fleet, "run", fleet.tasks["ok"]["name"], "--times", "2", "--constraint", "zone=eu", "--wait")
    assert ran.returncode == 0, ran.stderr
    result_id = ran.stdout.split()[1] if ran.stdout.startswith("result") else ran.stdout.split()[0]
    assert {detail["runner"] for detail in fleet.api.details(result_id)} == {EU}

    queued = cli(fleet, "run", fleet.tasks["ok"]["name"], "--constraint", "zone=mars", "--gpus", "1")
    assert queued.returncode == 0, queued.stderr
    shown = cli(fleet, "result", "show", queued.stdout.strip())
    assert "unschedulable" in shown.stdout and "zone=mars and 1 GPU" in shown.stdout, shown.stdout
    cli(fleet, "cancel", queued.stdout.strip())
    bad = cli(fleet, "run", fleet.tasks["ok"]["name"], "--constraint", "zone")
    assert bad.returncode == 2 and "--constraint: expected KEY=VALUE" in bad.stderr

    scheduled = cli(fleet, "schedule", "add", fleet.tasks["ok"]["name"], "@weekly", "--suspend",
                    "--constraint", "zone=eu", "--constraint", "disk=ssd", "--gpus", "2")
    assert scheduled.returncode == 0, scheduled.stderr
    schedule = fleet.api.get(f"/schedule/{scheduled.stdout.strip()}/").json()
    assert schedule["run"]["constraints"] == {"zone": "eu", "disk": "ssd"} and schedule["run"]["gpus"] == 2
    fleet.api.delete(f"/schedule/{schedule['schedule_id']}/")


@pytest.fixture(scope="module")
def browser(fleet):
    running = Browser(fleet.url, os.path.join(fleet.log_dir, "browser.log"),
                      os.path.join(ARTIFACTS, "screenshots")).start()
    yield running
    running.stop()


def test_the_runners_page_lists_each_runner_with_its_labels_gpus_and_status(fleet, browser):
    lost = [AP] if AP in runners(fleet) else []
    seen = browser.run("runners_page", token=fleet.token, live=[EU, US], lost=lost)
    assert seen["nav_current"]
    assert "zone=eu" in seen["rows"][EU] and "disk=ssd" in seen["rows"][EU] and "LIVE" in seen["rows"][EU]
    assert "2 free of 0, 1" in seen["rows"][US] and "busy / 2" in seen["rows"][US]
    assert seen["statuses"][EU] == "LIVE" and all(seen["statuses"][runner] == "LOST" for runner in lost)


def test_a_run_from_the_form_with_runner_labels_and_gpus_says_it_is_unschedulable(fleet, browser):
    seen = browser.run("run_with_constraints", token=fleet.token, task_id=fleet.tasks["ok"]["task_id"])
    assert seen["labels_error"].startswith("'bad!' is not a label name"), seen
    assert seen["gpus_error"] == "must be an integer from 0 to 16", seen
    assert "zone=mars" in seen["fields"] and "no live runner has the labels zone=mars and 1 GPU" in seen["fields"]
    result = fleet.api.get(f"/result/{seen['result_id']}/").json()
    assert result["params"]["constraints"] == {"zone": "mars"} and result["params"]["gpus"] == 1
    fleet.api.post(f"/result/{seen['result_id']}/", {"operation": "CANCEL"})


def test_the_runners_page_is_served_with_its_script(fleet):
    page = requests.get(fleet.url + "/ui/runners", timeout=10)
    assert page.status_code == 200 and 'src="/static/runners.js?v=' in page.text
    assert 'href="/ui/runners"' in page.text
