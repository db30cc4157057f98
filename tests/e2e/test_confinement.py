"""Container confinement on the real engine: profiles, the network without inter-container
traffic, the ceilings of a RUN and of each runner, anonymous volumes removed."""
import base64
import io
import subprocess
import uuid

import docker
import pytest
import requests

from tests.support import containers_of, own_system, wait_until

pytestmark = pytest.mark.e2e

# CapEff bits: what the default profile drops, and some it keeps (ordinary images need them)
DROPPED = {"NET_RAW": 13, "MKNOD": 27, "AUDIT_WRITE": 29, "SETFCAP": 31}
KEPT = {"CHOWN": 0, "DAC_OVERRIDE": 1, "SETGID": 6, "SETUID": 7, "NET_BIND_SERVICE": 10}
PROBE = ["sh", "-c", "id -u; grep -E '^Cap(Eff|Bnd):' /proc/self/status; "
         "mkdir -p /tmp 2>/dev/null; echo x > /tmp/probe && echo TMP_WRITABLE; "
         "(echo x > /probe) 2>/dev/null && echo ROOT_WRITABLE || echo ROOT_READ_ONLY"]


def stdout_of(api, result_id):
    [detail] = api.details(result_id)
    logs = api.get(f"/result/{result_id}/detail/{detail['detail_id']}/logs/").json()
    out = logs["stdout"]
    if logs.get("encoding") == "base64":
        out = base64.b64decode(out).decode("utf-8", "replace")
    return out


def probe(system, task):
    result_id = system.api.run(task["task_id"], command=PROBE)
    assert system.api.wait_result(result_id, timeout=60)["status"] == "COMPLETE"
    lines = stdout_of(system.api, result_id).split("\n")
    caps = {line.split(":")[0]: int(line.split()[1], 16) for line in lines if line.startswith("Cap")}
    return lines, caps


@pytest.fixture(scope="module")
def network_name(docker_client):
    name = f"stv-test-{uuid.uuid4().hex[:8]}"
    yield name
    for network in docker_client.networks.list(names=[name]):
        if network.name == name:  # made by this module's runners
            network.remove()


@pytest.fixture(scope="module")
def confined(request, vhost_pipeline, test_images, network_name):
    """Two runners on a network of their own, the default profile; runner-1 fits only 128m, neither 2 CPUs."""
    env = {"CONTAINER_NETWORK": network_name, "CONTAINER_MAX_MEMORY": "2g", "CONTAINER_MAX_CPUS": "2",
           "SWEEP_INTERVAL": "1"}
    yield from own_system(request, vhost_pipeline, "confined", env, runners=2,
                          per_runner={"runner-1": {"RUNNER_MAX_MEMORY": "128m", "RUNNER_MAX_CPUS": "1"},
                                      "runner-2": {"RUNNER_MAX_CPUS": "1.5"}})


@pytest.fixture(scope="module")
def restricted(request, vhost_pipeline, test_images):
    yield from own_system(request, vhost_pipeline, "restricted",
                          {"CONTAINER_PROFILE": "restricted", "CONTAINER_NETWORK": "none",
                           "CONTAINER_TMP_SIZE": "8m", "CONTAINER_DEFAULT_DISK": "16m", "DISK_CHECK_INTERVAL": "1"})


@pytest.fixture(scope="module")
def confined_tasks(confined, test_images):
    return {name: confined.api.register(test_images[name]) for name in ("ok", "sleep")}


def test_the_restricted_profile_runs_the_image_as_nobody_without_capabilities_on_a_read_only_root(
        restricted, test_images):
    task = restricted.api.register(test_images["ok"])
    lines, caps = probe(restricted, task)
    assert lines[0] == "65534"
    assert caps == {"CapEff": 0, "CapBnd": 0}
    assert "TMP_WRITABLE" in lines and "ROOT_READ_ONLY" in lines
    # and the image's own command works under it
    result_id = restricted.api.run(task["task_id"])
    assert restricted.api.wait_result(result_id, timeout=60)["status"] == "COMPLETE"
    assert stdout_of(restricted.api, result_id) == "hello from stevedore\n"


def test_the_restricted_profile_bounds_the_disk_of_the_volumes_an_image_declares(
        restricted, test_images, image_registry, docker_client):
    # its root is read-only, but a VOLUME of its image is writable (here by anyone): it counts against its disk
    ref = f"{image_registry.address}/stevedore-test/busybox:open-volume-{uuid.uuid4().hex[:6]}"
    dockerfile = f"FROM {test_images['ok']}\nRUN [\"/bin/busybox\", \"mkdir\", \"-m\", \"1777\", \"/scratch\"]\n" \
                 "VOLUME /scratch\n"
    docker_client.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=ref, rm=True)
    for line in docker_client.images.push(ref, stream=True, decode=True):
        assert "error" not in line, line
    docker_client.images.remove(ref, noprune=True)
    task = restricted.api.register(ref)
    fill = "echo filling; while true; do head -c 1048576 /dev/zero >> /scratch/fill; sleep 0.05; done"
    result_id = restricted.api.run(task["task_id"], command=["sh", "-c", fill])
    assert restricted.api.wait_result(result_id, timeout=60)["status"] == "ERROR"
    [detail] = restricted.api.details(result_id)
    assert detail["reason"].startswith("disk: it wrote ") and "16m" in detail["reason"], detail
    assert stdout_of(restricted.api, result_id) == "filling\n"
    wait_until(lambda: not containers_of(docker_client, result_id), timeout=30, what="its container removed")


def test_the_default_profile_keeps_root_and_common_capabilities_but_drops_raw_sockets_and_devices(
        confined, confined_tasks):
    lines, caps = probe(confined, confined_tasks["ok"])
    assert lines[0] == "0"
    assert "TMP_WRITABLE" in lines and "ROOT_WRITABLE" in lines
    for name, bit in DROPPED.items():
        assert not caps["CapEff"] & (1 << bit), f"{name} is still effective"
        assert not caps["CapBnd"] & (1 << bit), f"{name} is still in the bounding set"
    for name, bit in KEPT.items():
        assert caps["CapEff"] & (1 << bit), f"{name} was dropped"


def test_executions_on_the_dedicated_network_do_not_reach_each_other(confined, confined_tasks, docker_client,
                                                                     network_name):
    api = confined.api
    server = api.run(confined_tasks["ok"]["task_id"], timeout=120, command=[
        "sh", "-c", "mkdir -p /tmp/www && echo served > /tmp/www/index.html && httpd -f -p 8080 -h /tmp/www"])
    try:
        def address():
            for container in containers_of(docker_client, server):
                container.reload()
                if container.status == "running":
                    return container.attrs["NetworkSettings"]["Networks"][network_name]["IPAddress"]
            return None

        ip = wait_until(address, timeout=60, what="the serving execution to run")
        network = docker_client.networks.get(network_name)  # made by the runner for its first execution
        assert network.attrs["Driver"] == "bridge"
        assert network.attrs["Options"]["com.docker.network.bridge.enable_icc"] == "false"
        # this machine reaches it on the bridge: it serves
        served = wait_until(lambda: _get(f"http://{ip}:8080/"), timeout=20, what="httpd to answer")
        assert served == "served\n"
        # another execution does not: its packets are dropped (a time-out, not a refusal); on a
        # bridge with inter-container traffic on, the same command prints the page
        client = api.run(confined_tasks["ok"]["task_id"], command=[
            "sh", "-c", f"printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {ip} 8080 2>&1; echo rc=$?"])
        api.wait_result(client, timeout=60)
        out = stdout_of(api, client)
        assert "nc: timed out" in out and "rc=1" in out and "served" not in out, out
    finally:
        api.post(f"/result/{server}/", {"operation": "CANCEL"})
    assert api.wait_result(server, timeout=60)["status"] == "KILLED"


def _get(url):
    try:
        return requests.get(url, timeout=2).text
    except requests.RequestException:
        return None


@pytest.mark.parametrize("field, value", [("memory", "4g"), ("memory", "1024g"), ("cpus", 3), ("cpus", 1024)])
def test_a_run_above_the_operators_ceiling_is_refused_naming_the_field(confined, confined_tasks, field, value):
    response = confined.api.post(f"/task/{confined_tasks['ok']['task_id']}/",
                                 {"operation": "RUN", "times": 1, field: value})
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["error"] == "VALIDATION_ERROR" and body["message"].startswith(f"{field}: ")
    assert "CONTAINER_MAX_" in body["message"]


def test_the_served_openapi_states_the_ceilings(confined):
    spec = confined.api.get("/openapi.json").json()
    body = spec["paths"]["/task/{task_id}/"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    run = body["discriminator"]["mapping"]["RUN"].removeprefix("#/components/schemas/")
    props = spec["components"]["schemas"][run]["properties"]
    assert props["cpus"]["anyOf"][0]["maximum"] == 2
    assert "2g" in props["memory"]["description"]


def test_a_runner_with_a_small_ceiling_leaves_a_big_execution_to_one_that_fits(confined, confined_tasks):
    api, task_id = confined.api, confined_tasks["ok"]["task_id"]
    small_runner, big_runner = (confined.plan[label][1]["RUNNER_ID"] for label in ("runner-1", "runner-2"))
    seen = set()
    for _ in range(5):  # the small runner is alive and takes what fits it (its default memory clipped)
        result_id = api.run(task_id, times=6, memory="64m")
        assert api.wait_result(result_id, timeout=120)["status"] == "COMPLETE"
        seen |= {d["runner"] for d in api.details(result_id)}
        if small_runner in seen:
            break
    assert small_runner in seen
    big = api.run(task_id, times=6, memory="512m")
    assert api.wait_result(big, timeout=120)["status"] == "COMPLETE"
    assert {d["runner"] for d in api.details(big)} == {big_runner}


def test_an_execution_no_runner_fits_says_why_it_waits(confined, confined_tasks):
    api = confined.api
    result_id = api.run(confined_tasks["ok"]["task_id"], times=2, cpus=2)

    def reasons():
        found = {d["reason"] for d in api.details(result_id)}
        return found if all(reason and reason.startswith("waiting for a runner that fits") for reason in found) \
            else None

    [reason] = wait_until(reasons, timeout=30, what="the waiting executions to say why")
    assert "cpus 2 (the largest gives 1.5)" in reason
    assert {d["status"] for d in api.details(result_id)} == {"QUEUED"}
    assert api.post(f"/result/{result_id}/", {"operation": "CANCEL"}).status_code == 202
    assert api.wait_result(result_id, timeout=30)["status"] == "CANCELLED"


def test_anonymous_volumes_go_with_their_container(confined, test_images, image_registry, docker_client):
    ref = f"{image_registry.address}/stevedore-test/busybox:volume-{uuid.uuid4().hex[:6]}"
    dockerfile = f"FROM {test_images['sleep']}\nVOLUME /data\n".encode()
    docker_client.images.build(fileobj=io.BytesIO(dockerfile), tag=ref, rm=True)
    for line in docker_client.images.push(ref, stream=True, decode=True):
        assert "error" not in line, line
    docker_client.images.remove(ref, noprune=True)
    task = confined.api.register(ref)
    assert task["status"] == "READY", task
    result_id = confined.api.run(task["task_id"], env={"SLEEP": "4"})

    def volume():
        for container in containers_of(docker_client, result_id):
            container.reload()
            names = [m["Name"] for m in container.attrs["Mounts"] if m["Type"] == "volume"]
            if names:
                return names[0]
        return None

    name = wait_until(volume, timeout=60, what="the execution's container with its volume")
    assert docker_client.volumes.get(name)
    assert confined.api.wait_result(result_id, timeout=60)["status"] == "COMPLETE"
    wait_until(lambda: not containers_of(docker_client, result_id), timeout=30, what="its container removed")
    with pytest.raises(docker.errors.NotFound):
        docker_client.volumes.get(name)


@pytest.mark.parametrize("network", ["host", "container:stevedore-anything"])
def test_a_runner_refuses_to_start_on_a_shared_network_stack(network, tmp_path):
    from stevedore_jobs.host import spawn

    log_file = tmp_path / "runner.log"
    # a broker address where nothing listens: the runner must stop before it would connect
    proc = spawn("runner", {"CONTAINER_NETWORK": network, "RUNNER_ID": f"refused-{uuid.uuid4().hex[:6]}",
                            "METRICS_PORT": "0", "AMQP_URI": "pyamqp://guest:guest@127.0.0.1:1/"},
                 log_file=str(log_file))
    try:
        code = proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise
    assert code != 0
    assert f"CONTAINER_NETWORK={network!r}: is refused" in log_file.read_text(errors="replace")
