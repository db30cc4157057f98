"""Every execution's disk is bounded (docs/deployment.md#disk-of-an-execution), on the real engine: its
writable layer and the volumes its image declares, measured every DISK_CHECK_INTERVAL (1 s here), the
volumes by a du of the runner's own that the job cannot reach."""
import io

import pytest

from tests.support import MEASURE_IMAGE, containers_of, own_system, wait_until

pytestmark = pytest.mark.e2e

MB = 1024 ** 2
# about 20 MB/s at most, without end; it says so first (its output must be kept)
FILL = "echo filling; while true; do head -c 1048576 /dev/zero >> {}; sleep 0.05; done"


@pytest.fixture(scope="module")
def disk_system(request, vhost_pipeline):
    yield from own_system(request, vhost_pipeline, "disk", {"DISK_CHECK_INTERVAL": "1", "CONTAINER_DEFAULT_DISK": "24m",
                                                            "CONTAINER_MAX_DISK": "1g"})


@pytest.fixture(scope="module")
def ok_task(disk_system, test_images):
    return disk_system.api.register(test_images["ok"], name="disk-ok")


@pytest.fixture(scope="module")
def volume_task(disk_system, docker_client, image_registry, test_images):
    """A task of an image declaring ``VOLUME /scratch`` (an anonymous volume: in no writable layer)."""
    ref = f"{image_registry.address}/stevedore-test/declares-volume:latest"
    docker_client.images.build(fileobj=io.BytesIO(f"FROM {test_images['ok']}\nVOLUME /scratch\n".encode()),
                               tag=ref, rm=True)
    pushed = list(docker_client.images.push(ref, stream=True, decode=True))
    assert not [line for line in pushed if "error" in line], pushed
    docker_client.images.remove(ref, noprune=True)
    return disk_system.api.register(ref, name="disk-volume")


def ended_past_its_bound(system, docker_client, result_id, bound):
    result = system.api.wait_result(result_id, timeout=90)
    [detail] = system.api.details(result_id)
    assert result["status"] == "ERROR" and detail["status"] == "ERROR", detail
    assert detail["reason"].startswith("disk: it wrote ") and f"past its disk bound of {bound}" in detail["reason"], \
        detail["reason"]
    assert detail["exit_code"] == 137, detail  # killed (SIGKILL), as at its memory limit
    assert detail["duration"] < 20, detail  # within seconds of passing it
    logs = system.api.get(f"/result/{result_id}/detail/{detail['detail_id']}/logs/").json()
    assert logs["stdout"].startswith("filling"), logs  # its output kept
    # nothing left: its container (with its anonymous volumes) and the runner's measuring containers
    wait_until(lambda: not containers_of(docker_client, result_id), timeout=30, what="its container removed")
    wait_until(lambda: not docker_client.containers.list(all=True, filters={"label": "stevedore.disk-measure"}),
               timeout=30, what="no measuring container left")
    return detail


def test_a_job_writing_without_end_to_its_root_filesystem_ends_error_naming_disk(
        disk_system, docker_client, ok_task):
    result_id = disk_system.api.run(ok_task["task_id"], command=["sh", "-c", FILL.format("/fill")], disk="8m")
    ended_past_its_bound(disk_system, docker_client, result_id, "8m (the RUN's disk)")


def test_a_job_writing_to_a_volume_of_its_image_is_bounded_by_the_default_even_without_its_du(
        disk_system, docker_client, volume_task):
    # it removes the du of its own image first: the runner's du, in a container of its own, measures it all the same
    command = ["sh", "-c", "rm -f /bin/du; " + FILL.format("/scratch/fill")]
    result_id = disk_system.api.run(volume_task["task_id"], command=command)
    ended_past_its_bound(disk_system, docker_client, result_id, "24m (the runner's CONTAINER_DEFAULT_DISK")
    assert f"DISK_MEASURE_IMAGE '{MEASURE_IMAGE}' is not on" not in disk_system.log("runner-1")


def test_a_sparse_file_past_the_bound_counts_at_its_apparent_size_in_the_writable_layer(
        disk_system, docker_client, ok_task):
    # one hole of 1 GiB holds almost no block, but the engine's SizeRw counts its apparent size: killed, the safe way
    command = ["sh", "-c", "echo filling; truncate -s 1073741824 /sparse; sleep 60"]
    result_id = disk_system.api.run(ok_task["task_id"], command=command, disk="8m")
    detail = ended_past_its_bound(disk_system, docker_client, result_id, "8m (the RUN's disk)")
    assert int(detail["reason"].split("it wrote ")[1].split(" ")[0]) >= 1024 ** 3, detail["reason"]


def test_a_job_under_its_bound_completes(disk_system, volume_task):
    write = "head -c 4194304 /dev/zero > /fill; head -c 4194304 /dev/zero > /scratch/fill; sleep 3; echo done"
    result_id = disk_system.api.run(volume_task["task_id"], command=["sh", "-c", write], disk="16m")
    assert disk_system.api.wait_result(result_id, timeout=60)["status"] == "COMPLETE"


@pytest.mark.parametrize("disk, said", [
    ("lots", 'disk: must be a size such as "256m" or "1g"'),
    ("2g", "disk: must be at most 1g, this installation's ceiling (CONTAINER_MAX_DISK)"),
    (64, 'disk: must be a size such as "256m" or "1g"'),
])
def test_a_run_with_a_bad_or_too_large_disk_is_400_naming_disk(disk_system, ok_task, disk, said):
    answer = disk_system.api.post(f"/task/{ok_task['task_id']}/", {"operation": "RUN", "times": 1, "disk": disk})
    assert answer.status_code == 400, answer.text
    assert answer.json()["message"].startswith(said), answer.text


def test_a_run_may_not_carry_the_tes_mark(disk_system, ok_task):
    answer = disk_system.api.post(f"/task/{ok_task['task_id']}/", {"operation": "RUN", "times": 1,
                                                                     "labels": {"ga4gh.org/tes": "task"}})
    assert answer.status_code == 400, answer.text
    assert answer.json()["message"].startswith("labels.ga4gh.org/tes:"), answer.text
