"""GA4GH TES pieces without a broker: the contract, the state map, the runner's volumes and commands."""
import io
import os
import tarfile
from types import SimpleNamespace

import pytest
from pydantic import ValidationError as PydanticError

from services.gateway.tes import tag_filters
from services.registry.tes import task_name
from services.runner.tes import _left_over, command_of
from services.runner.disk import tes_limit
from services.runner.tes_files import StagingFailed, Stager, _glob, mount_dirs, wildcard_base
from services.scheduler.tes import page_token_of, run_body
from services.scheduler.tes_views import state_of, storable_log, task_view
from stevedore_jobs.contract.checks import Invalid
from stevedore_jobs.contract.tes import parse_task
from stevedore_jobs.contract.tes_views import ListQuery, spec

ALPINE = {"image": "alpine", "command": ["echo", "hi"]}


# ---------------------------------------------------------------- the contract

@pytest.mark.parametrize("body, field", [
    ({}, "executors"),
    ({"executors": []}, "executors"),
    ({"executors": [{"image": "alpine"}]}, "executors[0].command"),
    ({"executors": [{"image": "Not A Ref", "command": ["x"]}]}, "executors[0].image"),
    ({"executors": [{**ALPINE, "env": {"1A": "x"}}]}, "executors[0].env.1A"),
    ({"executors": [ALPINE], "inputs": [{"path": "/a"}]}, "inputs[0].url"),
    ({"executors": [ALPINE], "inputs": [{"path": "relative", "content": "x"}]}, "inputs[0].path"),
    ({"executors": [ALPINE], "inputs": [{"path": "/a/../../etc/passwd", "content": "x"}]}, "inputs[0].path"),
    ({"executors": [ALPINE], "outputs": [{"path": "/", "url": "file:///x"}]}, "outputs[0].path"),
    ({"executors": [ALPINE], "inputs": [{"path": "/d", "content": "x", "type": "DIRECTORY"}]}, "inputs[0].type"),
    ({"executors": [ALPINE], "tags": {"ga4gh.org/tes": "x"}}, "tags.ga4gh.org/tes"),
    ({"executors": [ALPINE], "resources": {"backend_parameters": {"VmSize": "x"},
                                           "backend_parameters_strict": True}}, "resources.backend_parameters.VmSize"),
    ({"executors": [ALPINE] * 21}, "executors"),
    # the container's own filesystems: a volume there hides them (no /dev/null, no /proc)
    ({"executors": [ALPINE], "volumes": ["/proc"]}, "volumes[0]"),
    ({"executors": [ALPINE], "inputs": [{"path": "/dev/shm/in", "content": "x"}]}, "inputs[0].path"),
    ({"executors": [ALPINE], "outputs": [{"path": "/sys/x", "url": "file:///out/x"}]}, "outputs[0].path"),
    # two inputs that would be one file: the one staged last would replace the other, unseen
    ({"executors": [ALPINE], "inputs": [{"path": "/d/a", "content": "x"}, {"path": "/d//a", "content": "y"}]},
     "inputs[1].path"),
    ({"executors": [ALPINE], "inputs": [{"path": "/d/a", "content": "x"}, {"path": "/d/a/b", "content": "y"}]},
     "inputs[1].path"),
    ({"executors": [ALPINE], "inputs": [{"path": "/d/a/b", "content": "x"}, {"path": "/d/a", "content": "y"}]},
     "inputs[1].path"),
    ({"executors": [ALPINE], "inputs": [{"path": "/d", "url": "file:///in/d", "type": "DIRECTORY"},
                                        {"path": "/d", "content": "y"}]}, "inputs[1].path"),
])
def test_a_bad_task_is_refused_naming_the_field_as_tes_spells_it(body, field):
    with pytest.raises(Invalid) as caught:
        parse_task(body)
    assert caught.value.field == field, caught.value


def test_paths_are_normalised_and_loose_backend_parameters_are_accepted():
    task = parse_task({"executors": [{**ALPINE, "workdir": "/a//b/"}], "volumes": ["/v/"],
                       "outputs": [{"path": "/out/*.txt", "url": "file:///o"}],
                       "resources": {"backend_parameters": {"VmSize": "x"}, "preemptible": True, "zones": ["a"],
                                     "ram_gb": 1, "disk_gb": 2.5}})
    assert task.executors[0].workdir == "/a/b" and task.volumes == ["/v"]
    assert task.outputs[0].path == "/out/*.txt"


def test_inputs_may_share_a_directory_and_fill_one_given_as_a_directory():
    task = parse_task({"executors": [ALPINE], "inputs": [
        {"path": "/d/a", "content": "x"}, {"path": "/d/b", "content": "y"},
        {"path": "/e", "url": "file:///in/e", "type": "DIRECTORY"}, {"path": "/e/more", "content": "z"}]})
    assert [item.path for item in task.inputs] == ["/d/a", "/d/b", "/e", "/e/more"]


def test_a_tes_task_is_a_run_of_one_execution_with_its_tags_as_labels():
    # its mark (ga4gh.org/tes=task), a label no RUN may carry, is added once the RUN is checked
    body = run_body({"tags": {"project": "x"}, "resources": {"ram_gb": 0.5, "cpu_cores": 2}})
    assert body == {"times": 1, "labels": {"project": "x"}, "memory": "512m", "cpus": 2}


def test_tag_keys_and_values_pair_by_position_a_key_alone_asks_it_be_set():
    query = ListQuery.model_validate({"tag_key": ["a", "b", "c"], "tag_value": ["1", ""]})
    assert tag_filters(query) == ["a=1", "b", "c"]


def test_the_served_tes_spec_has_every_route_and_model():
    served = spec()
    assert set(served["paths"]) == {"/service-info", "/tasks", "/tasks/{id}", "/tasks/{id}:cancel"}
    assert {"NewTask", "Task", "ListTasksResponse", "ServiceInfo", "Error"} <= set(served["components"]["schemas"])


# ---------------------------------------------------------------- states and views

def result(status="QUEUED", cancel=False, waiting=(), **more):
    return SimpleNamespace(id="r" * 32, status=status, cancel_requested=cancel, tes={
        "task": {"name": "n", "executors": [ALPINE], "inputs": [{"path": "/a", "content": "secret"}]},
        "waiting": list(waiting)}, labels={"k": "v", "ga4gh.org/tes": "task"}, submitted_at=0.0, **more)


def detail(status="QUEUED", runner=None, failure=None, start=None):
    return SimpleNamespace(id="d" * 32, status=status, runner=runner, start=start, end=None, reason=None,
                           attempt=1, tes_log={"failure": failure, "executors": [
                               {"start_time": 1.0, "end_time": 2.0, "exit_code": 3, "stdout": "o", "stderr": "e"}]})


@pytest.mark.parametrize("run, execution, state", [
    (result(waiting=["t"]), detail(), "INITIALIZING"),
    (result(), detail(), "QUEUED"),
    (result(), detail(runner="r1"), "INITIALIZING"),
    (result("RUNNING"), detail("RUNNING", "r1"), "RUNNING"),
    (result("RUNNING", cancel=True), detail("RUNNING", "r1"), "CANCELING"),
    (result("COMPLETE"), detail("COMPLETE"), "COMPLETE"),
    (result("ERROR"), detail("ERROR", failure="EXECUTOR_ERROR"), "EXECUTOR_ERROR"),
    (result("ERROR"), detail("ERROR", failure="SYSTEM_ERROR"), "SYSTEM_ERROR"),
    (result("ERROR"), detail("ERROR"), "SYSTEM_ERROR"),
    (result("KILLED"), detail("KILLED"), "CANCELED"),
    (result("CANCELLED"), detail("CANCELLED"), "CANCELED"),
])
def test_the_state_map(run, execution, state):
    assert state_of(run, execution) == state


def test_views_show_more_in_turn_and_basic_hides_contents_and_output():
    run, execution = result("ERROR"), detail("ERROR", failure="EXECUTOR_ERROR", start=1.0)
    assert task_view(run, execution, "MINIMAL") == {"id": run.id, "state": "EXECUTOR_ERROR"}
    basic = task_view(run, execution, "BASIC")
    assert basic["inputs"] == [{"path": "/a"}] and basic["tags"] == {"k": "v"}
    assert basic["logs"][0]["logs"] == [{"start_time": "1970-01-01T00:00:01.000Z",
                                         "end_time": "1970-01-01T00:00:02.000Z", "exit_code": 3}]
    full = task_view(run, execution, "FULL")
    assert full["inputs"][0]["content"] == "secret" and full["logs"][0]["logs"][0]["stdout"] == "o"
    run.tes["images"] = ["localhost:5000/library/alpine@sha256:" + "a" * 64]
    assert task_view(run, execution, "BASIC")["logs"][0]["metadata"]["executors[0].image"] == run.tes["images"][0]


def test_a_runners_tes_log_is_stored_bounded_and_without_nul():
    stored = storable_log({"failure": "NOPE", "executors": [{"exit_code": True, "stdout": "a\x00b" * 10 ** 6},
                                                            "junk"], "outputs": [{"url": 1}], "system_logs": ["x"]})
    assert stored["failure"] is None and stored["executors"][0]["exit_code"] == -1
    assert "\x00" not in stored["executors"][0]["stdout"] and len(stored["executors"][0]["stdout"]) <= 256 * 1024
    assert storable_log("not a dict") is None


# ---------------------------------------------------------------- the runner's side

def test_a_stream_redirected_to_a_device_mounts_nothing_over_dev():
    task = {"executors": [{"command": ["x"], "stdin": "/dev/null", "stdout": "/dev/stdout", "stderr": "/out/err"}]}
    assert mount_dirs(task) == ["/out"]
    assert parse_task({"executors": [{**ALPINE, "stdin": "/dev/null"}]}).executors[0].stdin == "/dev/null"


def test_the_shared_directories_are_the_fewest_that_hold_every_path():
    task = {"inputs": [{"path": "/data/in/a.txt"}, {"path": "/data/ref", "type": "DIRECTORY"}],
            "outputs": [{"path": "/data/out/x.txt"}, {"path": "/results/*/*.bam"}],
            "volumes": ["/data", "/scratch"],
            "executors": [{"stdout": "/logs/out.txt"}, {"stdin": "/data/in/a.txt"}]}
    assert mount_dirs(task) == ["/data", "/logs", "/results", "/scratch"]
    assert wildcard_base("/results/*/*.bam") == "/results"


def test_redirected_streams_go_through_sh_with_their_paths_quoted():
    assert command_of({"command": ["echo", "hi"]}) == ["echo", "hi"]
    assert command_of({"command": ["cat"], "stdin": "/in/a b", "stdout": "/out/o", "stderr": "/out/e"}) == [
        "/bin/sh", "-c", "exec \"$@\" <'/in/a b' >/out/o 2>/out/e", "sh", "cat"]


def test_wildcards_never_cross_a_slash():
    pattern = _glob("/out/*.txt")
    assert pattern.fullmatch("/out/a.txt") and not pattern.fullmatch("/out/sub/a.txt")
    assert _glob("/out/[ab]?.log").fullmatch("/out/a1.log") and not _glob("/out/[ab]?.log").fullmatch("/out/c1.log")


def settings(tmp_path, **more):
    return SimpleNamespace(tes_input_dirs=(str(tmp_path / "in"),), tes_output_dir=str(tmp_path / "out"),
                           tes_download_max_bytes=1000, tes_download_timeout=5, tes_allow_networks=(), **more)


def test_inputs_from_other_schemes_or_outside_the_allowed_directories_fail_staging(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "secret").write_text("no")
    os.symlink(tmp_path / "secret", tmp_path / "in" / "link")
    stager = Stager(settings(tmp_path))
    for url, words in (("s3://bucket/x", "s3://"), (f"file://{tmp_path}/secret", "TES_INPUT_DIRS"),
                       (f"file://{tmp_path}/in/link", "TES_INPUT_DIRS"),
                       ("http://127.0.0.1:1/x", "refused"), ("http://169.254.169.254/latest", "refused")):
        with pytest.raises(StagingFailed, match=words):
            stager.archives({"inputs": [{"path": "/d/x", "url": url}]}, ["/d"])


def test_a_file_input_and_content_are_staged_into_their_directorys_archive(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.txt").write_text("from a file")
    archives = Stager(settings(tmp_path)).archives({"inputs": [
        {"path": "/d/sub/a.txt", "url": f"file://{tmp_path}/in/a.txt"}, {"path": "/d/b.txt", "content": "inline"}]},
        ["/d"])
    with tarfile.open(fileobj=archives["/d"]) as tar:
        assert tar.extractfile("sub/a.txt").read() == b"from a file"
        assert tar.extractfile("b.txt").read() == b"inline"


def _tar(files):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return [buffer.getvalue()]


def test_outputs_are_written_under_the_output_dir_wildcards_as_tes_says(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    stager = Stager(settings(tmp_path))
    task = {"outputs": [{"path": "/w/r/*.txt", "path_prefix": "/w", "url": f"file://{out}/set"},
                        {"path": "/w/one.log", "url": f"file://{out}/one.log"}]}
    archives = {"/w/r": _tar({"r/a.txt": b"A", "r/b.bin": b"B", "r/c.txt": b"CC"}), "/w/one.log": _tar({"one.log": b"1"})}
    logs = stager.collect(task, lambda path: archives[path])
    assert sorted((entry["path"], entry["size_bytes"]) for entry in logs) == [
        ("/w/one.log", "1"), ("/w/r/a.txt", "1"), ("/w/r/c.txt", "2")]
    assert (out / "set" / "r" / "c.txt").read_bytes() == b"CC" and not (out / "set" / "r" / "b.bin").exists()
    for url in ("file:///etc/passwd", f"file://{out}/../escape", "s3://bucket/key"):
        with pytest.raises(StagingFailed):
            stager.collect({"outputs": [{"path": "/w/one.log", "url": url}]}, lambda path: archives["/w/one.log"])


def test_the_tes_task_of_an_image_is_named_for_it_within_the_name_limit():
    assert task_name("alpine") == "tes: alpine"
    long = "registry.example.org/" + "a" * 230
    assert len(task_name(long)) <= 200 and task_name(long) != task_name(long + "b")


@pytest.mark.parametrize("labels, why", [
    ({"stevedore.runner": "me", "stevedore.detail_id": "held", "stevedore.attempt": "1"}, None),
    ({"stevedore.runner": "me", "stevedore.detail_id": "gone", "stevedore.attempt": "1"}, "no longer runs"),
    ({"stevedore.runner": "other", "stevedore.detail_id": "live", "stevedore.attempt": "1"}, None),
    ({"stevedore.runner": "other", "stevedore.detail_id": "lost", "stevedore.attempt": "1"}, "now ERROR"),
    ({"stevedore.runner": "other", "stevedore.detail_id": "live", "stevedore.attempt": "2"}, "attempt 1"),
    ({"stevedore.runner": "other", "stevedore.detail_id": "deleted", "stevedore.installation": "ours"},
     "no longer known"),
    ({"stevedore.runner": "other", "stevedore.detail_id": "deleted", "stevedore.installation": "theirs"}, None),
    ({"stevedore.runner": "other", "stevedore.detail_id": "deleted"}, None),
])
def test_tes_leftovers_are_this_runners_unheld_ones_and_others_whose_attempt_no_longer_runs(labels, why):
    known = {"live": {"status": "RUNNING", "attempt": 1, "runner": "other"},
             "lost": {"status": "ERROR", "attempt": 1, "runner": "other"}}
    said = _left_over(labels, "me", {"held"}, known, "ours")
    assert (said is None) if why is None else (why in said), said


def test_an_executors_disk_bound_is_its_disk_gb_within_the_operators_cap():
    cap = 10 * 1024 ** 3
    assert tes_limit({"resources": {"disk_gb": 0.5}}, cap) == (512 * 1024 ** 2, "resources.disk_gb (0.5 GB)")
    assert tes_limit({"resources": {"disk_gb": 100}}, cap)[0] == cap
    assert "TES_DISK_BYTES" in tes_limit({"resources": {"disk_gb": 100}}, cap)[1]
    assert tes_limit({}, cap)[0] == cap


@pytest.mark.parametrize("body, field", [
    ({"repository": "alpine", "name": "tes: alpine"}, "name"),
    ({"repository": "alpine", "name": "Tes:alpine"}, "name"),
    ({"repository": "alpine", "labels": {"ga4gh.org/tes": "image"}}, "labels.ga4gh.org/tes"),
])
def test_the_names_and_mark_of_tes_image_tasks_are_refused_to_a_registration(body, field):
    from shared import validation
    from shared.errors import ValidationError

    with pytest.raises(ValidationError) as refused:
        validation.new_task(body)
        validation.task_labels(body)
    assert refused.value.field == field
    assert validation.new_task({"repository": "alpine", "name": "my tes: alpine"})[0] == "my tes: alpine"


def test_the_sweep_learns_the_installation_itself_and_removes_this_runners_unheld_leftovers():
    from docker.models.volumes import Volume

    from services.runner.tes import sweep

    labels = {"stevedore.tes": "true", "stevedore.runner": "me", "stevedore.detail_id": "gone",
              "stevedore.attempt": "1", "stevedore.installation": "ours"}
    container = SimpleNamespace(id="c" * 64, attrs={"Labels": labels})
    volume = Volume(attrs={"Name": "v", "Labels": {**labels, "stevedore.detail_id": "held"}})
    removed = []
    engine = SimpleNamespace(remove=removed.append, client=SimpleNamespace(
        containers=SimpleNamespace(list=lambda **_: [container]), volumes=SimpleNamespace(list=lambda **_: [volume])))
    asked = []
    assert sweep(engine, "me", {"held"}, lambda ids: {}, lambda: asked.append(1) or "ours") == 1
    assert removed == [container.id] and asked == [1]
    # another installation's (runner ids repeat across installations) is left alone
    assert sweep(engine, "me", {"held"}, lambda ids: {}, lambda: "theirs") == 0


def test_a_page_token_holds_the_last_tasks_place_and_a_token_of_before_is_still_taken():
    token = page_token_of("a" * 32, 1767225600.123456)
    assert token == "a" * 32 + "_1767225600.123456" and page_token_of("a" * 32, 1.5, placed=False) == "a" * 32
    assert float(token.partition("_")[2]) == 1767225600.123456  # given back exactly
    for taken in (token, "a" * 32, page_token_of("b" * 32, 1767225600.0)):
        assert ListQuery.model_validate({"page_token": taken}).page_token == taken
    for refused in ("a" * 32 + "_", "a" * 32 + "_1e9", "a" * 32 + "_nan", "A" * 32, "a" * 32 + "_1.5_2"):
        with pytest.raises(PydanticError):
            ListQuery.model_validate({"page_token": refused})
