"""The container policy: profiles, refused networks, ceilings, the dedicated network (no engine)."""
import logging
from types import SimpleNamespace

import docker
import pytest

from services.runner import confinement
from services.runner.confinement import read_policy
from services.runner.dependencies import Executor
from services.runner.engine import EngineState
from services.scheduler.executions.claims import _ceiling
from shared import validation
from shared.docker_engine import create_container
from shared.errors import ValidationError
from shared.settings import RunnerSettings, SchedulerSettings, SettingError, parse

WORK = {"detail_id": "d" * 32, "result_id": "r" * 32, "index": 0, "attempt": 1, "env": {},
        "command": ["true"], "memory": None, "cpus": None}


@pytest.fixture(autouse=True)
def no_settling(monkeypatch):
    monkeypatch.setattr(confinement, "SETTLE_SECONDS", 0)
    monkeypatch.setattr(confinement, "SETTLE_PAUSE", 0)


def runner_policy(**settings):
    return read_policy(parse(RunnerSettings, settings))


def policy(**settings):
    return {**runner_policy(**settings), "grace": 5, "log_limit": 100}


def created_with(options):
    calls = {}
    api = SimpleNamespace(_version="1.41", create_container=lambda **kw: calls.update(kw) or {"Id": "c1"})
    client = SimpleNamespace(api=api, containers=SimpleNamespace(prepare_model=lambda attrs: attrs))
    create_container(client, "img@sha256:1", options)
    return calls


def test_default_profile_drops_what_batch_jobs_do_not_need_and_keeps_the_rest():
    options = Executor(None, policy()).container_options(WORK, "h")
    calls = created_with(options)
    host = calls["host_config"]
    assert host["CapDrop"] == ["NET_RAW", "MKNOD", "SETFCAP", "AUDIT_WRITE"]
    assert "CapAdd" not in host and not host.get("Privileged")
    assert host["SecurityOpt"] == ["no-new-privileges"] and host["PidsLimit"] == 1024
    assert not host.get("ReadonlyRootfs") and "Tmpfs" not in host and not calls.get("user")
    assert host["NetworkMode"] == "stevedore"


def test_restricted_profile_is_nobody_without_capabilities_on_a_read_only_root():
    options = Executor(None, policy(CONTAINER_PROFILE="restricted", CONTAINER_TMP_SIZE="16m")
                       ).container_options(WORK, "h")
    calls = created_with(options)
    host = calls["host_config"]
    assert calls["user"] == "65534:65534"
    assert host["CapDrop"] == ["ALL"] and host["ReadonlyRootfs"] is True
    assert host["Tmpfs"] == {"/tmp": f"rw,nosuid,nodev,size={16 * 1024 ** 2}"}
    assert host["SecurityOpt"] == ["no-new-privileges"] and host["PidsLimit"] == 1024


@pytest.mark.parametrize("network", ["host", "HOST", "container:abc123", "container:stevedore-runner"])
def test_sharing_the_host_or_a_container_network_stack_is_refused_at_start(network):
    with pytest.raises(SettingError, match="CONTAINER_NETWORK"):
        runner_policy(CONTAINER_NETWORK=network)


@pytest.mark.parametrize("settings, named", [
    ({"CONTAINER_PROFILE": "lax"}, "CONTAINER_PROFILE"),
    ({"CONTAINER_TMP_SIZE": "big"}, "CONTAINER_TMP_SIZE"),
    ({"RUNNER_MAX_MEMORY": "2x"}, "RUNNER_MAX_MEMORY"),
    ({"RUNNER_MAX_CPUS": "many"}, "RUNNER_MAX_CPUS"),
    ({"RUNNER_MAX_CPUS": "0"}, "RUNNER_MAX_CPUS"),
    ({"CONTAINER_PIDS_LIMIT": "0"}, "CONTAINER_PIDS_LIMIT"),
])
def test_a_bad_setting_stops_the_runner_naming_it(settings, named):
    with pytest.raises(SettingError, match=named):
        runner_policy(**settings)


def test_network_none_and_the_default_bridge_are_kept_as_they_are():
    assert runner_policy(CONTAINER_NETWORK="none")["network"] == "none"
    assert confinement.ensure_network(client=None, name="none") == "none"


def test_a_runner_fits_its_settings_else_its_engine():
    info = {"MemTotal": 8 * 1024 ** 3, "NCPU": 2}
    assert confinement.engine_ceilings(info, runner_policy()) == (8 * 1024 ** 3, 2.0)
    small = runner_policy(RUNNER_MAX_MEMORY="512m", RUNNER_MAX_CPUS="0.5")
    assert confinement.engine_ceilings(info, small) == (512 * 1024 ** 2, 0.5)
    assert confinement.engine_ceilings({}, runner_policy()) == (None, None)


def test_the_default_memory_stays_within_the_runners_ceiling():
    executor = Executor(None, policy(CONTAINER_DEFAULT_MEMORY="1g"),
                        EngineState(ceilings=(256 * 1024 ** 2, 1.0)))
    assert executor.container_options(WORK, "h")["mem_limit"] == 256 * 1024 ** 2
    asked = executor.container_options({**WORK, "memory": "128m"}, "h")
    assert asked["mem_limit"] == asked["memswap_limit"] == 128 * 1024 ** 2


def test_the_engine_saying_bridged_traffic_bypasses_iptables_is_warned_about(caplog):
    with caplog.at_level(logging.WARNING):
        assert confinement.warn_if_unenforced({"BridgeNfIptables": False}, "stevedore")
    assert "not filtered" in caplog.text
    assert not confinement.warn_if_unenforced({"BridgeNfIptables": True}, "stevedore")
    assert not confinement.warn_if_unenforced({"BridgeNfIptables": False}, "none")


class FakeNetworks:
    """The network calls of docker-py's low-level API, in memory."""

    def __init__(self, existing=(), conflict=False):
        self.networks = list(existing)
        self.created, self.removed, self.conflict = [], [], conflict

    def networks_(self, names=None):
        return [n for n in self.networks if any(name in n["Name"] for name in names)]

    def create_network(self, name, driver=None, options=None, check_duplicate=None, labels=None):
        if self.conflict:
            raise docker.errors.APIError("exists", response=SimpleNamespace(status_code=409))
        assert check_duplicate is True
        self.created.append({"name": name, "driver": driver, "options": options})
        net = {"Name": name, "Id": f"new{len(self.created)}", "Driver": driver, "Options": options,
               "Created": "2026-12-05T12:00:00.5Z"}
        self.networks.append(net)
        return {"Id": net["Id"]}

    def remove_network(self, net_id):
        self.removed.append(net_id)

    def client(self):
        return SimpleNamespace(api=SimpleNamespace(networks=self.networks_, create_network=self.create_network,
                                                   remove_network=lambda net_id: self.remove_network(net_id)))


def test_the_dedicated_network_is_made_as_a_bridge_without_inter_container_traffic():
    fake = FakeNetworks(existing=[{"Name": "stevedore-other", "Id": "x", "Driver": "bridge"}])
    assert confinement.ensure_network(fake.client(), "stevedore") == "new1"
    assert fake.created == [{"name": "stevedore", "driver": "bridge",
                             "options": {"com.docker.network.bridge.enable_icc": "false"}}]


def test_runners_making_it_at_once_all_use_the_oldest_once_it_is_alone():
    older = {"Name": "stevedore", "Id": "old", "Driver": "bridge", "Created": "2026-12-05T12:00:00.25Z",
             "Options": {"com.docker.network.bridge.enable_icc": "false"}}
    fake = FakeNetworks()
    original = fake.create_network

    def racing(*args, **kwargs):  # another runner's network appears while ours is made
        made = original(*args, **kwargs)
        fake.networks.append(older)
        return made

    fake.create_network = racing
    fake.remove_network = lambda net_id: fake.removed.append(net_id) or fake.networks.remove(
        next(n for n in fake.networks if n["Id"] == net_id))
    assert confinement.ensure_network(fake.client(), "stevedore") == "old"
    assert fake.removed == ["new1"] and [n["Id"] for n in fake.networks] == ["old"]


def test_an_existing_network_is_used_and_one_with_inter_container_traffic_is_warned_about(caplog):
    fake = FakeNetworks(existing=[{"Name": "jobs", "Id": "j", "Driver": "bridge", "Options": {}}], conflict=True)
    with caplog.at_level(logging.WARNING):
        assert confinement.ensure_network(fake.client(), "jobs") == "j"
    assert "not isolated" in caplog.text and not fake.created


def test_a_run_above_the_ceilings_is_refused_naming_the_field():
    max_memory, max_cpus, _ = parse(SchedulerSettings, {"CONTAINER_MAX_MEMORY": "2g", "CONTAINER_MAX_CPUS": 2}).ceilings
    body = {"operation": "RUN", "times": 1}
    with pytest.raises(ValidationError) as refused:
        validation.run_params({**body, "memory": "1024g"}, 10, max_memory, max_cpus)
    assert refused.value.field == "memory" and "2g" in refused.value.message
    with pytest.raises(ValidationError) as refused:
        validation.run_params({**body, "cpus": 1024}, 10, max_memory, max_cpus)
    assert refused.value.field == "cpus" and "2" in refused.value.message
    at_ceiling = validation.run_params({**body, "memory": "2048m", "cpus": 2}, 10, max_memory, max_cpus)
    assert at_ceiling["memory"] == "2048m" and at_ceiling["cpus"] == 2


def test_the_default_ceilings_are_careful_and_a_bad_one_names_its_setting():
    assert parse(SchedulerSettings, {}).ceilings == (8 * 1024 ** 3, 4.0, 100 * 1024 ** 3)
    for settings, named in (({"CONTAINER_MAX_MEMORY": "lots"}, "CONTAINER_MAX_MEMORY"),
                            ({"CONTAINER_MAX_CPUS": "-1"}, "CONTAINER_MAX_CPUS"),
                            ({"CONTAINER_MAX_DISK": "1t"}, "CONTAINER_MAX_DISK")):
        with pytest.raises(SettingError, match=named):
            parse(SchedulerSettings, settings)


def test_a_runners_ceilings_are_read_as_numbers_or_ignored():
    assert _ceiling(None, int) is None and _ceiling(True, int) is None and _ceiling("x", float) is None
    assert _ceiling(2 ** 80, int) == 2 ** 62 and _ceiling(float("nan"), float) is None
    assert _ceiling("1.5", float) == 1.5


def test_a_start_refused_on_an_ambiguous_network_name_removes_the_duplicate_and_starts_again():
    older = {"Name": "stevedore", "Id": "old", "Driver": "bridge", "Created": "2026-12-05T12:00:00.25Z"}
    newer = {"Name": "stevedore", "Id": "new", "Driver": "bridge", "Created": "2026-12-05T12:00:00.5Z"}
    fake = FakeNetworks(existing=[newer, older])
    fake.remove_network = lambda net_id: fake.removed.append(net_id) or fake.networks.remove(
        next(n for n in fake.networks if n["Id"] == net_id))
    starts = []

    def start():
        starts.append(len(fake.networks))
        if len(fake.networks) > 1:
            raise docker.errors.APIError("network stevedore is ambiguous (2 matches found on name)")

    Executor(fake.client(), policy())._start(SimpleNamespace(start=start))
    assert starts == [2, 1] and fake.removed == ["new"]


def test_a_bad_ceiling_stops_the_gateway_at_start_instead_of_failing_each_openapi_request():
    from types import SimpleNamespace

    from services.gateway.limits import RunLimits

    served = RunLimits()
    served.container = SimpleNamespace(config={"CONTAINER_MAX_CPUS": "lots"})
    with pytest.raises(ValueError, match="CONTAINER_MAX_CPUS"):
        served.setup()
    served.container = SimpleNamespace(config={"CONTAINER_MAX_MEMORY": "2g", "CONTAINER_MAX_CPUS": "2"})
    served.setup()
    props = served.get_dependency(None).spec["components"]["schemas"]["RunRequest"]["properties"]
    assert props["cpus"]["anyOf"][0]["maximum"] == 2.0 and "2g" in props["memory"]["description"]
