"""A service given a bad setting does not start, and says which setting: in a container and as a process."""
import subprocess
import tempfile

import pytest

from services.gateway.service import GatewayService
from services.registry.service import RegistryService
from services.runner.service import RunnerService
from services.scheduler.service import SchedulerService
from shared.settings import SettingError
from stevedore_jobs import host


@pytest.mark.parametrize("service, key, value", [
    (SchedulerService, "RUN_MAX_TIMES", "abc"),
    (SchedulerService, "WEBHOOK_ATTEMPTS", "0"),
    (GatewayService, "HTTP_MAX_BODY_BYTES", "lots"),
    (RegistryService, "PULL_TIMEOUT", "-5"),
    (RunnerService, "CONTAINER_NETWORK", "host"),
])
def test_a_service_with_a_bad_setting_does_not_start_and_names_it(container_factory, service_config,
                                                                  service, key, value):
    container = container_factory(service, {**service_config, key: value})
    with pytest.raises(SettingError, match=f"^{key}="):
        container.start()


def test_nameko_run_with_a_bad_setting_in_the_environment_exits_naming_it(rabbit_config, own_database_url):
    env = {"RUN_MAX_TIMES": "abc", "AMQP_URI": rabbit_config["AMQP_URI"], "DATABASE_URL": own_database_url}
    with tempfile.NamedTemporaryFile(suffix=".log") as log:
        proc = host.spawn("scheduler", env=env, log_file=log.name)
        try:
            assert proc.wait(timeout=60) != 0
        finally:
            if proc.poll() is None:
                proc.kill()
        output = open(log.name).read()
    assert "RUN_MAX_TIMES='abc': must be an integer of at least 1" in output


def test_config_yml_passes_the_environment_through_to_the_typed_settings(rabbit_config, own_database_url):
    """The same process with good values starts (and is stopped): config.yml's ${VAR} reach the models."""
    env = {"RUN_MAX_TIMES": " 5 ", "RETRY_BACKOFF": "0", "AMQP_URI": rabbit_config["AMQP_URI"],
           "DATABASE_URL": own_database_url}
    with tempfile.NamedTemporaryFile(suffix=".log") as log:
        proc = host.spawn("scheduler", env=env, log_file=log.name)
        try:
            with pytest.raises(subprocess.TimeoutExpired):
                proc.wait(timeout=8)  # still running: its settings were accepted
        finally:
            proc.terminate()
            proc.wait(timeout=30)
        output = open(log.name).read()
    assert "SettingError" not in output and "Traceback" not in output, output
