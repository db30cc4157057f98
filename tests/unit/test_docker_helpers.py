import struct
from types import SimpleNamespace

import docker
import pytest

from services.registry.dependencies import explain_pull_error, pinned_reference
from services.runner.dependencies import Executor
from services.runner.engine import EngineState
from shared.docker_engine import Demuxer, create_container


def test_pull_errors_are_explained():
    assert explain_pull_error("r/x", "manifest unknown").startswith("image not found: r/x")
    assert explain_pull_error("r/x", "Get https://r/v2/: dial tcp: connection refused").startswith(
        "registry unreachable for r/x")
    assert explain_pull_error("r/x", "unauthorized: authentication required").startswith(
        "authentication refused by the registry for r/x")


def test_pinned_reference_prefers_the_pulled_repository():
    image = SimpleNamespace(id="sha256:1", attrs={"RepoDigests": ["other/x@sha256:a", "reg:5000/x@sha256:b"]})
    assert pinned_reference("reg:5000/x", image) == "reg:5000/x@sha256:b"
    hub = SimpleNamespace(id="sha256:1", attrs={"RepoDigests": ["busybox@sha256:c"]})
    assert pinned_reference("docker.io/library/busybox", hub) == "busybox@sha256:c"
    local = SimpleNamespace(id="sha256:1", attrs={"RepoDigests": []})
    assert pinned_reference("x", local) == "sha256:1"


def test_containers_are_confined_and_labelled():
    policy = {"default_memory": 1024 ** 3, "pids_limit": 512, "network": "bridge", "grace": 5,
              "log_limit": 100}
    work = {"detail_id": "d" * 32, "result_id": "r" * 32, "index": 4, "attempt": 2,
            "env": {"A": "1"}, "command": ["echo"], "memory": "256m", "cpus": 0.5}
    options = Executor(client=None, policy=policy).container_options(work, runner="host-1")
    assert options["privileged"] is False
    assert options["security_opt"] == ["no-new-privileges"]
    assert options["cap_drop"] == ["NET_RAW", "MKNOD", "SETFCAP", "AUDIT_WRITE"]
    assert options["pids_limit"] == 512
    assert options["mem_limit"] == 256 * 1024 ** 2
    assert options["nano_cpus"] == 500_000_000
    assert options["environment"] == {"A": "1", "STEVEDORE_RESULT_ID": "r" * 32,
                                      "STEVEDORE_DETAIL_ID": "d" * 32,
                                      "STEVEDORE_EXECUTION_INDEX": "4", "STEVEDORE_ATTEMPT": "2"}
    assert options["labels"]["stevedore.managed"] == "true"
    assert options["labels"]["stevedore.runner"] == "host-1"
    assert options["name"].startswith("stevedore-rrrrrrrr-4-2-")  # result, index, attempt
    assert "volumes" not in options and "devices" not in options
    default = Executor(client=None, policy=policy).container_options({**work, "memory": None}, "h")
    assert default["mem_limit"] == 1024 ** 3


def _frame(stream, data):
    return struct.pack(">BxxxL", stream, len(data)) + data


def demux_logs(body):
    """All of ``body`` through one ``Demuxer``, as (stdout, stderr)."""
    streams = {1: bytearray(), 2: bytearray()}
    Demuxer({kind: kept.extend for kind, kept in streams.items()}).feed(body)
    return bytes(streams[1]), bytes(streams[2])


def test_multiplexed_logs_are_split_by_stream_in_order():
    body = _frame(1, b"a\n") + _frame(2, b"b\n") + _frame(1, b"c") + _frame(0, b"stdin") + _frame(2, b"")
    assert demux_logs(body) == (b"a\nc", b"b\n")
    assert demux_logs(b"") == (b"", b"")
    # a frame cut short keeps what arrived; a partial header is dropped
    assert demux_logs(_frame(1, b"whole") + _frame(2, b"partial")[:-3]) == (b"whole", b"part")
    assert demux_logs(_frame(1, b"whole") + b"\x02\x00\x00") == (b"whole", b"")


def test_create_options_go_through_docker_py_conversion():
    calls = {}
    api = SimpleNamespace(_version="1.41", create_container=lambda **kw: calls.update(kw) or {"Id": "c1"})
    client = SimpleNamespace(api=api, containers=SimpleNamespace(prepare_model=lambda attrs: attrs))
    policy = {"default_memory": 1024 ** 3, "pids_limit": 512, "network": "none", "grace": 5, "log_limit": 100}
    work = {"detail_id": "d" * 32, "result_id": "r" * 32, "index": 0, "attempt": 1, "env": {},
            "command": ["true"], "memory": None}
    options = Executor(client=None, policy=policy).container_options(work, runner="h")
    assert create_container(client, "img@sha256:1", options) == {"Id": "c1"}
    assert calls["image"] == "img@sha256:1" and calls["command"] == ["true"]
    host = calls["host_config"]
    assert host["SecurityOpt"] == ["no-new-privileges"] and host["PidsLimit"] == 512
    assert host["CapDrop"] == ["NET_RAW", "MKNOD", "SETFCAP", "AUDIT_WRITE"] and not host.get("Privileged")
    assert host["NetworkMode"] == "none" and host["Memory"] == 1024 ** 3 and host["MemorySwap"] == 1024 ** 3
    assert calls["labels"]["stevedore.managed"] == "true"


def test_a_remote_registrys_words_are_cut_to_a_bound_in_a_reason():
    reason = explain_pull_error("localhost:5000/app:1", "unauthorized: " + "x" * 100000)
    assert reason.startswith("authentication refused by the registry for localhost:5000/app:1: unauthorized: xxx")
    assert len(reason) < 700 and reason.endswith("more characters]")
    assert explain_pull_error("a:1", "manifest unknown") == "image not found: a:1 (manifest unknown)"


def test_containers_carry_the_installation_id_the_claim_gave():
    policy = {"default_memory": None, "pids_limit": 64, "network": "none", "grace": 1, "log_limit": 100}
    work = {"detail_id": "d" * 32, "result_id": "r" * 32, "index": 0, "attempt": 1}
    executor = Executor(client=None, policy=policy)
    labelled = executor.container_options({**work, "installation": "i" * 32}, runner="h")
    assert labelled["labels"]["stevedore.installation"] == "i" * 32
    # a claim from a scheduler that could not say: no label (such containers are judged as old ones)
    assert "stevedore.installation" not in executor.container_options(work, runner="h")["labels"]


def test_a_stored_command_string_that_cannot_be_split_ends_the_attempt_in_error():
    # a RUN accepted before commands were split at submit; nothing reaches an engine
    client = docker.DockerClient(base_url="unix:///nonexistent/docker.sock", version="1.41")
    policy = {"default_memory": None, "pids_limit": 64, "network": "none", "grace": 1, "log_limit": 100}
    work = {"detail_id": "d" * 32, "result_id": "r" * 32, "index": 0, "attempt": 1, "image": "img",
            "command": "echo 'unbalanced"}
    outcome = Executor(client, policy, EngineState(images={"img"})).run(
        work, "h", on_started=lambda *a: pytest.fail("started"), should_stop=lambda: None)
    assert outcome["status"] == "ERROR" and outcome["exit_code"] is None
    assert outcome["reason"].startswith("could not create the container: No closing quotation")


def test_a_pull_error_never_shows_what_a_remote_server_answered():
    from shared.docker_engine import explain_pull_error

    page = "<html><body>" + "internal admin console, secret row " * 20 + "</body></html>"
    text = (f'error parsing HTTP 404 response body: invalid character \'<\' looking for beginning of '
            f'value: "{page}"')
    reason = explain_pull_error("10.0.0.5:8080/x:1", text)
    assert "admin console" not in reason and "<html>" not in reason
    assert reason.startswith("image not found") or "response body not shown" in reason
    quoted = explain_pull_error("r/x:1", 'unknown: "' + "y" * 300 + '"\x1b[31m')
    assert "y" * 100 not in quoted and "\x1b" not in quoted
    # the engine's own short words stay: they say what to do
    assert "connection refused" in explain_pull_error(
        "127.0.0.1:1/x:1", 'Get "https://127.0.0.1:1/v2/": dial tcp 127.0.0.1:1: connect: connection refused')
