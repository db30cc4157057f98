"""An execution's disk bound (services/runner/disk.py): the RUN's ``disk`` at the door, and the watcher's
decision from what the engine says (a fake engine: the real one is e2e/test_disk.py's)."""
import pytest

from services.runner.disk import DiskWatch, run_limit, sweep_measurers, verdict, volumes_of
from shared import statuses as st
from shared import validation
from shared.errors import ValidationError

GB, MB = 1024 ** 3, 1024 ** 2


@pytest.mark.parametrize("disk, said", [
    ("lots", 'must be a size such as "256m" or "1g"'),
    ("1m", "must be between 6m and 1024g"),
    ("2000g", "must be between 6m and 1024g"),
    ("11g", "must be at most 10g, this installation's ceiling (CONTAINER_MAX_DISK)"),
    (10, 'must be a size such as "256m" or "1g"'),
    ("8 m", 'must be a size such as "256m" or "1g"'),
])
def test_a_run_with_a_bad_or_too_large_disk_is_refused_naming_disk(disk, said):
    with pytest.raises(ValidationError) as refused:
        validation.run_params({"times": 1, "disk": disk}, 10, 8 * GB, 4, 10 * GB)
    assert (refused.value.field, refused.value.message) == ("disk", said)


def test_a_runs_disk_is_kept_with_it_and_left_out_when_not_given():
    assert validation.run_params({"times": 1, "disk": "10g"}, 10, 8 * GB, 4, 10 * GB)["disk"] == "10g"
    assert "disk" not in validation.run_params({"times": 1}, 10, 8 * GB, 4, 10 * GB)


def test_a_rerun_asking_more_disk_than_the_ceiling_now_allows_is_refused():
    with pytest.raises(ValidationError) as refused:
        validation.within_ceilings({"disk": "20g"}, 8 * GB, 4, 10 * GB)
    assert refused.value.field == "disk"


@pytest.mark.parametrize("labels", [{"ga4gh.org/tes": "task"}, {"ga4gh.org/tes": ""}])
def test_a_run_or_task_may_not_carry_the_tes_mark(labels):
    for check in (lambda: validation.run_params({"times": 1, "labels": labels}, 10),
                  lambda: validation.task_labels({"labels": labels})):
        with pytest.raises(ValidationError) as refused:
            check()
        assert refused.value.field == "labels.ga4gh.org/tes" and "reserved" in refused.value.message


def test_the_tes_mark_still_filters_lists():
    assert validation.label_filters(["ga4gh.org/tes=task"]) == ([("ga4gh.org/tes", "task")], [])


def test_an_executions_bound_is_its_runs_disk_else_the_runners_default():
    assert run_limit({"disk": "8m"}, 10 * GB) == (8 * MB, "its disk bound of 8m (the RUN's disk)")
    limit, named = run_limit({}, 10 * GB)
    assert limit == 10 * GB and "CONTAINER_DEFAULT_DISK" in named and "10g" in named
    assert run_limit({"disk": "x"}, GB)[0] == GB  # one that got past the door is not trusted either


def test_the_verdict_names_disk_and_what_was_written():
    named = "its disk bound of 8m (the RUN's disk)"
    assert verdict(8 * MB, 8 * MB, named, "disk") is None
    assert verdict(None, 8 * MB, named, "disk") is None
    status, reason = verdict(9 * MB, 8 * MB, named, "disk")
    assert status == st.ERROR and reason.startswith("disk: it wrote 9437184 bytes") and named in reason
    assert "executors before it" in verdict(9 * MB, 8 * MB, named, "executors[1]", before=1)[1]
    status, reason = verdict("du: /v/0: Permission denied", 8 * MB, named, "disk")
    assert status == st.ERROR and reason.startswith("disk: du: /v/0") and "killed" in reason


def test_only_volumes_are_measured_apart():
    mounts = [{"Type": "volume", "Name": "abc", "Destination": "/scratch"},
              {"Type": "bind", "Source": "/etc", "Destination": "/etc"},
              {"Type": "tmpfs", "Destination": "/tmp"},
              {"Type": "volume", "Name": "abc", "Destination": "/scratch"}]
    assert volumes_of(mounts) == [("abc", "/scratch")]
    assert volumes_of(None) == []


class FakeApi:
    """The engine calls a DiskWatch makes, answered from ``layer`` and ``volumes`` (bytes)."""

    def __init__(self, layer, mounts=(), du_code=0, du_said=b"", image=True):
        self.layer, self.mounts, self.du_code, self.du_said, self.image = layer, list(mounts), du_code, du_said, image
        self.made, self.removed, self.execs = [], [], []

    def containers(self, **_):
        return [{"SizeRw": self.layer}]

    def inspect_container(self, _):
        return {"Mounts": self.mounts, "State": {"Status": "running"},
                "Config": {"Labels": {"stevedore.result_id": "r", "user.stevedore/x": "y"}}}

    def create_host_config(self, **options):
        return options

    def create_container(self, image, **options):
        import docker
        if not self.image:
            raise docker.errors.ImageNotFound("no such image")
        self.made.append((image, options))
        return {"Id": f"m{len(self.made)}"}

    def start(self, _):
        pass

    def wait(self, _):
        return {"StatusCode": self.du_code}

    def logs(self, _, stdout=True, stderr=False, **__):
        return self.du_said if stderr else b"".join(b"%d\t/v/%d\n" % (size // 1024, i)
                                                    for i, size in enumerate(m["size"] for m in self.mounts))

    def remove_container(self, measurer, force=False):
        self.removed.append(measurer)

    def exec_create(self, _, command):
        self.execs.append(command)
        return {"Id": "e"}


class FakeClient:
    def __init__(self, api):
        self.api = api
        self.images = self

    def get(self, _):
        import docker
        raise docker.errors.ImageNotFound("no such image")


class Container:
    id = "c" * 64


def test_a_container_without_volumes_is_its_writable_layer_and_needs_no_du():
    api = FakeApi(layer=5 * MB)
    assert DiskWatch(FakeClient(api), 8 * MB, "b", 1, measure_image="du:local").measure(Container()) == 5 * MB
    assert api.made == [] and api.execs == []


def test_volumes_are_measured_read_only_in_a_container_of_the_runner_and_it_is_removed():
    volume = {"Type": "volume", "Name": "anon", "Destination": "/scratch", "size": 7 * MB}
    api = FakeApi(layer=2 * MB, mounts=[volume])
    watch = DiskWatch(FakeClient(api), 8 * MB, "b", 1, measure_image="du:local", before=MB)
    assert watch.measure(Container()) == 10 * MB
    [(image, options)] = api.made
    [mount] = options["host_config"]["mounts"]
    assert image == "du:local" and options["entrypoint"] == ["du"] and mount["ReadOnly"] is True
    assert mount["Source"] == "anon" and options["host_config"]["network_mode"] == "none"
    assert options["host_config"]["cap_drop"] == ["ALL"] and api.execs == []  # nothing run in the measured one
    # named before it is made, labelled with the measured one's result (a test system's clean-up finds it)
    assert options["name"].startswith("stevedore-du-") and watch.measurer == options["name"]
    assert options["labels"] == {"stevedore.result_id": "r", "stevedore.disk-measure": "true"}
    watch.stop()
    assert api.removed == [options["name"]] and watch.measurer is None


def test_a_du_that_fails_is_a_verdict_not_a_pass():
    volume = {"Type": "volume", "Name": "anon", "Destination": "/scratch", "size": 0}
    api = FakeApi(layer=0, mounts=[volume], du_code=1, du_said=b"du: /v/0/x: Permission denied\n")
    used = DiskWatch(FakeClient(api), 8 * MB, "b", 1, measure_image="du:local").measure(Container())
    assert isinstance(used, str) and "Permission denied" in used


def test_without_the_measuring_image_volumes_are_measured_inside_as_before(caplog):
    volume = {"Type": "volume", "Name": "anon", "Destination": "/scratch", "size": 0}
    api = FakeApi(layer=0, mounts=[volume], image=False)
    api.exec_start = lambda _, demux: (b"3072\t/scratch\n", b"")
    api.exec_inspect = lambda _: {"ExitCode": 0}
    watch = DiskWatch(FakeClient(api), 8 * MB, "b", 1, measure_image="du:local")
    assert watch.measure(Container()) == 3 * MB
    assert api.execs == [["du", "-sxk", "/scratch"]] and watch.measure_image is None
    assert "DISK_MEASURE_IMAGE" in caplog.text


def test_measuring_containers_left_behind_are_swept_once_no_measure_can_be_under_way():
    class Api:
        removed = []

        def containers(self, all, filters):
            assert filters == {"label": "stevedore.disk-measure=true"}
            return [{"Id": "old", "Created": 1000, "State": "exited"},
                    {"Id": "young", "Created": 1050, "State": "exited"},  # perhaps a measure being read
                    {"Id": "stuck", "Created": 900, "State": "created"}]

        def remove_container(self, container_id, force):
            self.removed.append(container_id)

    client = type("Client", (), {"api": Api()})()
    assert sweep_measurers(client, clock=lambda: 1100) == 2
    assert client.api.removed == ["old", "stuck"]
