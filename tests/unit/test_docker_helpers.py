from types import SimpleNamespace

from services.registry.dependencies import explain_pull_error, pinned_reference
from services.runner.dependencies import Executor, tail_bytes


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


def test_tail_bytes_keeps_the_end_and_says_so():
    assert tail_bytes(b"hello", 10) == ("hello", False)
    assert tail_bytes(b"0123456789abc", 4) == ("9abc", True)


def test_containers_are_confined_and_labelled():
    policy = {"default_memory": 1024 ** 3, "pids_limit": 512, "network": "bridge", "grace": 5,
              "log_limit": 100}
    work = {"detail_id": "d" * 32, "result_id": "r" * 32, "index": 4, "attempt": 2,
            "env": {"A": "1"}, "command": ["echo"], "memory": "256m", "cpus": 0.5}
    options = Executor(client=None, policy=policy).container_options(work, runner="host-1")
    assert options["privileged"] is False
    assert options["security_opt"] == ["no-new-privileges"]
    assert options["pids_limit"] == 512
    assert options["mem_limit"] == 256 * 1024 ** 2
    assert options["nano_cpus"] == 500_000_000
    assert options["environment"] == {"A": "1", "STEVEDORE_RESULT_ID": "r" * 32,
                                      "STEVEDORE_DETAIL_ID": "d" * 32,
                                      "STEVEDORE_EXECUTION_INDEX": "4", "STEVEDORE_ATTEMPT": "2"}
    assert options["labels"]["stevedore.managed"] == "true"
    assert options["labels"]["stevedore.runner"] == "host-1"
    assert "volumes" not in options and "devices" not in options
    default = Executor(client=None, policy=policy).container_options({**work, "memory": None}, "h")
    assert default["mem_limit"] == 1024 ** 3
