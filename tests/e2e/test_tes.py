"""GA4GH TES v1.1 end to end, with py-tes (the GA4GH Python client) as the client (docs/tes.md).

The executors' images are Docker Hub names (``alpine``, ``ubuntu:20.04``) that the
system's IMAGE_MAP sends to a loopback registry of busybox stand-ins; URL inputs
are served from loopback (allowed by TES_ALLOW_NETWORKS); outputs go under a
TES_OUTPUT_DIR of the test's.
"""
import io
import os
import shutil
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
import tes

from tests.conftest import mapped_system
from tests.support import wait_until

pytestmark = pytest.mark.e2e

ENDED = ("COMPLETE", "EXECUTOR_ERROR", "SYSTEM_ERROR", "CANCELED")


@pytest.fixture(scope="module")
def outputs_dir():
    path = tempfile.mkdtemp(prefix="stevedore-tes-out-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def tes_system(request, vhost_pipeline, docker_client, standin_registry, outputs_dir):
    yield from mapped_system(request, vhost_pipeline, docker_client, standin_registry, "tes",
                             env={"TES_OUTPUT_DIR": outputs_dir, "TES_ALLOW_NETWORKS": "127.0.0.0/8",
                                  "DISK_CHECK_INTERVAL": "1"})


@pytest.fixture(scope="module")
def client(tes_system):
    return tes.HTTPClient(tes_system.url, token=tes_system.token, timeout=30)


@pytest.fixture(scope="module")
def served():
    """A loopback HTTP server of input files: {path: bytes}."""
    files = {"/inputs/greeting.txt": b"hello over http\n"}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            body = files.get(self.path)
            self.send_response(200 if body is not None else 404)
            self.send_header("Content-Length", str(len(body or b"")))
            self.end_headers()
            self.wfile.write(body or b"")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def ended(client, task_id, timeout=120):
    return wait_until(lambda: (lambda t: t if t.state in ENDED else None)(client.get_task(task_id, "FULL")),
                      timeout=timeout, interval=0.5, what=f"TES task {task_id} to end")


def executor(command, image="alpine", **more):
    return tes.Executor(image=image, command=command, **more)


def test_inputs_by_content_and_by_url_reach_the_executor(client, served):
    task_id = client.create_task(tes.Task(
        name=f"inputs-{uuid.uuid4().hex[:6]}",
        inputs=[tes.Input(path="/data/in/inline.txt", content="inline content\n"),
                tes.Input(path="/data/in/remote.txt", url=f"{served}/inputs/greeting.txt")],
        executors=[executor(["sh", "-c", "cat /data/in/inline.txt /data/in/remote.txt"])]))
    task = ended(client, task_id)
    assert task.state == "COMPLETE", task
    assert task.logs[0].logs[0].stdout == "inline content\nhello over http\n"
    assert task.logs[0].logs[0].exit_code == 0


def test_two_executors_pass_a_file_and_the_output_is_collected(client, outputs_dir):
    target = os.path.join(outputs_dir, f"result-{uuid.uuid4().hex[:6]}.txt")
    task_id = client.create_task(tes.Task(
        executors=[executor(["sh", "-c", "echo made by one > /work/shared.txt"], image="ubuntu:20.04"),
                   executor(["sh", "-c", "tr a-z A-Z < /work/shared.txt > /out/result.txt; echo two"])],
        volumes=["/work"],
        outputs=[tes.Output(path="/out/result.txt", url=f"file://{target}")]))
    task = ended(client, task_id)
    assert task.state == "COMPLETE", task
    assert [log.exit_code for log in task.logs[0].logs] == [0, 0]
    with open(target) as fh:
        assert fh.read() == "MADE BY ONE\n"
    assert task.logs[0].outputs[0].path == "/out/result.txt"
    # each executor ran its image as the registry imported it, from the loopback registry, pinned
    images = task.logs[0].metadata
    assert "/library/ubuntu@sha256:" in images["executors[0].image"], images
    assert "/library/alpine@sha256:" in images["executors[1].image"], images
    assert int(task.logs[0].outputs[0].size_bytes) == 12


def test_a_failing_executor_with_ignore_error_lets_the_next_run(client):
    task_id = client.create_task(tes.Task(executors=[
        executor(["sh", "-c", "echo failing >&2; exit 3"], ignore_error=True),
        executor(["echo", "second"])]))
    task = ended(client, task_id)
    assert task.state == "COMPLETE", task
    assert [log.exit_code for log in task.logs[0].logs] == [3, 0]
    assert task.logs[0].logs[0].stderr == "failing\n"
    assert task.logs[0].logs[1].stdout == "second\n"


def test_a_stream_redirected_from_a_device_is_the_device(client):
    """No volume over /dev for a stdin of /dev/null: the executor has its devices and reads an empty stdin."""
    task_id = client.create_task(tes.Task(executors=[
        executor(["sh", "-c", "wc -c; echo to null > /dev/null; ls /dev/zero"], stdin="/dev/null")]))
    task = ended(client, task_id)
    assert task.state == "COMPLETE", task
    assert task.logs[0].logs[0].stdout.split() == ["0", "/dev/zero"]


def test_a_failing_executor_without_ignore_error_ends_executor_error(client):
    task_id = client.create_task(tes.Task(executors=[
        executor(["sh", "-c", "exit 4"]), executor(["echo", "never"])]))
    task = ended(client, task_id)
    assert task.state == "EXECUTOR_ERROR", task
    assert [log.exit_code for log in task.logs[0].logs] == [4]


def test_a_cancelled_task_ends_canceled_and_leaves_no_container_or_volume(client, tes_system, docker_client):
    task_id = client.create_task(tes.Task(executors=[executor(["sleep", "60"])], volumes=["/scratch"]))
    wait_until(lambda: client.get_task(task_id).state == "RUNNING", timeout=60, what="the task to run")
    client.cancel_task(task_id)
    task = ended(client, task_id, timeout=60)
    assert task.state == "CANCELED"
    labels = {"label": [f"stevedore.result_id={task_id}", "stevedore.tes=true"]}
    assert wait_until(lambda: not docker_client.containers.list(all=True, filters=labels)
                      and not docker_client.volumes.list(filters=labels) or None, timeout=30, what="clean-up")
    # cancelling a task that ended is answered 200 all the same (TES)
    client.cancel_task(task_id)


FILL = "while true; do head -c 8388608 /dev/zero >> {}; sleep 0.05; done"  # ~100 MB/s at most, without end


@pytest.mark.parametrize("first, where, volumes", [
    ("", "/work/fill", ["/work"]), ("", "/fill", []),
    # its du removed, or replaced by one that says 0: the runner measures with its own, out of the executor's reach
    ("rm -f /bin/du; ", "/work/fill", ["/work"]),
    ("rm -f /bin/du; printf '#!/bin/sh\\necho 0\\n' > /bin/du; chmod +x /bin/du; ", "/work/fill", ["/work"])],
    ids=["its volume", "its writable layer", "its volume without its du", "its volume with a fake du"])
def test_an_executor_writing_without_end_is_stopped_past_disk_gb_and_what_it_wrote_is_removed(
        client, docker_client, first, where, volumes):
    task_id = client.create_task(tes.Task(
        executors=[executor(["sh", "-c", first + FILL.format(where)]), executor(["echo", "never"])],
        volumes=volumes, resources=tes.Resources(disk_gb=0.05)))
    task = ended(client, task_id, timeout=90)
    assert task.state == "EXECUTOR_ERROR", task
    [log] = task.logs
    # stopped within seconds of starting (the check runs every DISK_CHECK_INTERVAL, here 1 s)
    assert (log.logs[0].end_time - log.logs[0].start_time).total_seconds() < 15, log.logs
    assert len(log.logs) == 1 and log.logs[0].exit_code != 0
    assert any("past resources.disk_gb (0.05 GB)" in line for line in log.system_logs), log.system_logs
    labels = {"label": [f"stevedore.result_id={task_id}", "stevedore.tes=true"]}
    assert wait_until(lambda: not docker_client.containers.list(all=True, filters=labels)
                      and not docker_client.volumes.list(filters=labels) or None, timeout=30, what="clean-up")


def test_the_executors_of_a_task_share_one_disk_bound_not_one_each(client):
    # each writes 40 MB into its own writable layer (kept until the task ends): under 0.05 GB alone, past it together
    write = "mkdir -p /fill; for i in 1 2 3 4 5; do head -c 8388608 /dev/zero > /fill/f$i; done; sleep 3"
    task_id = client.create_task(tes.Task(
        executors=[executor(["sh", "-c", write]), executor(["sh", "-c", write]), executor(["echo", "never"])],
        resources=tes.Resources(disk_gb=0.05)))
    task = ended(client, task_id, timeout=90)
    assert task.state == "EXECUTOR_ERROR", task
    [log] = task.logs
    assert len(log.logs) == 2 and log.logs[0].exit_code == 0, log.logs
    assert any("executors[1]" in line and "past resources.disk_gb (0.05 GB)" in line for line in log.system_logs), \
        log.system_logs


def test_what_an_executor_writes_to_a_volume_its_image_declares_counts_against_disk_gb(
        client, docker_client, standin_registry):
    ref = f"{standin_registry.address}/library/declares-volume:latest"  # an image with VOLUME /scratch
    docker_client.images.build(fileobj=io.BytesIO(
        f"FROM {standin_registry.address}/library/alpine:latest\nVOLUME /scratch\n".encode()), tag=ref, rm=True)
    pushed = list(docker_client.images.push(ref, stream=True, decode=True))
    assert not [line for line in pushed if "error" in line], pushed
    docker_client.images.remove(ref)
    task_id = client.create_task(tes.Task(
        executors=[executor(["sh", "-c", FILL.format("/scratch/fill")], image="declares-volume")],
        resources=tes.Resources(disk_gb=0.05)))
    task = ended(client, task_id, timeout=90)
    assert task.state == "EXECUTOR_ERROR", task
    assert any("past resources.disk_gb (0.05 GB)" in line for line in task.logs[0].system_logs), task.logs


def test_an_unsupported_scheme_is_accepted_then_ends_system_error_with_the_reason(client):
    task_id = client.create_task(tes.Task(
        inputs=[tes.Input(path="/data/file1", url="s3://my-object-store/file-1")],
        executors=[executor(["echo", "hello"])]))
    task = ended(client, task_id)
    assert task.state == "SYSTEM_ERROR"
    assert any("s3://" in line for line in task.logs[0].system_logs), task.logs


def test_tags_filter_the_list_and_views_shape_the_task(client, tes_system):
    tag = uuid.uuid4().hex[:8]
    task_id = client.create_task(tes.Task(name=f"tagged-{tag}", tags={"run": tag, "empty": ""},
                                          inputs=[tes.Input(path="/d/x", content="secret")],
                                          executors=[executor(["echo", "tagged"])]))
    ended(client, task_id)
    api = tes_system.api
    listed = api.get("/ga4gh/tes/v1/tasks", params={"tag_key": ["run", "empty"], "tag_value": [tag],
                                                      "view": "BASIC"}).json()
    assert [t["id"] for t in listed["tasks"]] == [task_id]
    assert listed["tasks"][0]["tags"] == {"run": tag, "empty": ""}
    assert "content" not in listed["tasks"][0]["inputs"][0]
    assert api.get("/ga4gh/tes/v1/tasks", params={"name_prefix": f"tagged-{tag}"}).json()["tasks"] == [
        {"id": task_id, "state": "COMPLETE"}]
    assert api.get("/ga4gh/tes/v1/tasks", params={"tag_key": "run", "tag_value": "other"}).json()["tasks"] == []
    full = api.get(f"/ga4gh/tes/v1/tasks/{task_id}", params={"view": "FULL"}).json()
    assert full["inputs"][0]["content"] == "secret" and full["logs"][0]["logs"][0]["stdout"] == "tagged\n"
    # the run is a Stevedore run like any, marked as made for TES
    result = api.get(f"/result/{task_id}/").json()
    assert result["labels"]["ga4gh.org/tes"] == "task" and result["labels"]["run"] == tag
    images = api.get("/task/", params={"label": "ga4gh.org/tes=image"}).json()
    assert {"alpine"} <= {t["repository"] for t in images}


def test_bad_tasks_are_refused_with_400_naming_the_field(tes_system):
    api = tes_system.api
    for body, field in (({}, "executors"), ({"executors": [{"image": "alpine"}]}, "executors[0].command"),
                        ({"executors": [{"image": "alpine", "command": ["x"]}],
                          "inputs": [{"path": "/a/../../etc", "content": "x"}]}, "inputs[0].path"),
                        ({"executors": [{"image": "alpine", "command": ["x"]}],
                          "resources": {"backend_parameters": {"VmSize": "x"}, "backend_parameters_strict": True}},
                         "resources.backend_parameters.VmSize")):
        response = api.post("/ga4gh/tes/v1/tasks", body)
        assert response.status_code == 400, response.text
        assert response.json()["message"].startswith(field + ":"), response.text
    assert api.get("/ga4gh/tes/v1/tasks/" + "0" * 32).status_code == 404
    assert api.get("/ga4gh/tes/v1/tasks", params={"view": "ALL"}).status_code == 400
    assert requests.get(tes_system.url + "/ga4gh/tes/v1/tasks", timeout=10).status_code == 401
    spec = requests.get(tes_system.url + "/ga4gh/tes/v1/openapi.json", timeout=10).json()
    assert "/tasks/{id}:cancel" in spec["paths"]
    info = api.get("/ga4gh/tes/v1/service-info").json()
    assert info["type"] == {"group": "org.ga4gh", "artifact": "tes", "version": "1.1.0"}


def test_each_team_has_its_own_tes_image_tasks_and_nobody_may_take_their_name_or_mark(tes_system):
    from tests.support import Api

    admin, members = tes_system.api, {}
    for team in (f"tes-a-{uuid.uuid4().hex[:6]}", f"tes-b-{uuid.uuid4().hex[:6]}"):
        assert admin.post("/team/", {"name": team}).status_code == 201
        made = admin.post("/token/", {"name": f"member-{team}", "team": team, "role": "member"})
        assert made.status_code == 201, made.text
        members[team] = (Api(tes_system.url, token=made.json()["token"]), made.json()["principal"])
    (first, _), (second, _) = members.values()
    # a squatter cannot register a task where a team's TES tasks would find it, nor mark one as TES's
    for body, field in (({"repository": "alpine", "name": "tes: alpine"}, "name"),
                        ({"repository": "alpine", "name": " TES:alpine"}, "name"),
                        ({"repository": "alpine", "labels": {"ga4gh.org/tes": "image"}}, "labels.ga4gh.org/tes")):
        refused = second.post("/task/", body)
        assert refused.status_code == 400, refused.text
        assert refused.json()["message"].startswith(field + ":"), refused.text
    # each team's TES task runs alpine through a task of its own team, made (and audited) as its member
    ran = {team: api.post("/ga4gh/tes/v1/tasks", {"executors": [{"image": "alpine", "command": ["echo", team]}]})
           for team, (api, _) in members.items()}
    made = {}
    for team, (api, principal) in members.items():
        assert ran[team].status_code == 200, ran[team].text
        task_id = ran[team].json()["id"]
        task = wait_until(lambda: (lambda t: t if t["state"] in ENDED else None)(
            api.get(f"/ga4gh/tes/v1/tasks/{task_id}", params={"view": "FULL"}).json()), timeout=120, what="the task")
        assert task["state"] == "COMPLETE" and task["logs"][0]["logs"][0]["stdout"] == f"{team}\n", task
        [image_task] = api.get("/task/", params={"label": "ga4gh.org/tes=image"}).json()
        assert (image_task["name"], image_task["team"], image_task["submitted_by"]) == ("tes: alpine", team, principal)
        made[team] = image_task["task_id"]
        [entry] = admin.get("/audit/", params={"target_id": image_task["task_id"], "action": "task.register"}).json()
        assert (entry["principal"], entry["team"]) == (principal, team), entry
    assert len(set(made.values())) == 2
