"""docker-compose.yml keeps the promises docs/deployment.md makes (read as YAML: no Docker needed)."""
import os
import re

import pytest
import yaml

from shared.settings import RunnerSettings, parse
from stevedore_jobs.host import CONFIG

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
STEVEDORE_SERVICES = ("migrate", "gateway", "registry", "scheduler", "runner")


class ComposeLoader(yaml.SafeLoader):
    """SafeLoader without the ``${VAR:default}`` expansion nameko adds to it when it runs the tests."""

    yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers if not tag.startswith("!")]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}


@pytest.fixture(scope="module")
def compose():
    with open(os.path.join(ROOT, "docker-compose.yml")) as fh:
        return yaml.load(fh, Loader=ComposeLoader)  # resolves anchors and merge keys as compose does


@pytest.fixture(scope="module")
def config_variables():
    """The variables config.yml reads (${VAR} or ${VAR:default}), by name (its comments mention none)."""
    with open(CONFIG) as fh:
        text = "\n".join(line.split("#")[0] for line in fh)
    return dict(re.findall(r"\$\{(\w+)(?::([^}]*))?\}", text))


def seconds(text):
    match = re.fullmatch(r"(\d+)(s|m)", text)
    return int(match.group(1)) * (60 if match.group(2) == "m" else 1)


def test_every_stevedore_service_is_the_one_image_told_what_to_run(compose):
    services = compose["services"]
    assert {services[name]["image"] for name in STEVEDORE_SERVICES} == {"${STEVEDORE_IMAGE:-stevedore:local}"}
    for name in STEVEDORE_SERVICES:
        assert services[name]["command"] == [name]
        assert services[name]["build"] == "."


def test_runner_scales_without_names_or_ports_and_takes_its_id_from_the_host_name(compose):
    runner = compose["services"]["runner"]
    assert "container_name" not in runner and "ports" not in runner
    assert "RUNNER_ID" not in runner["environment"]


def test_runner_is_given_longer_to_stop_than_it_takes(compose):
    settings = parse(RunnerSettings, {})
    needed = settings.runner_stop_grace + settings.stop_grace_period
    assert seconds(compose["services"]["runner"]["stop_grace_period"]) > needed


@pytest.mark.parametrize("name", ["registry", "runner"])
def test_services_that_use_docker_get_the_hosts_socket(compose, name):
    assert "/var/run/docker.sock:/var/run/docker.sock" in compose["services"][name]["volumes"]


@pytest.mark.parametrize("name", ["gateway", "scheduler"])
def test_other_services_do_not_get_the_docker_socket(compose, name):
    assert "volumes" not in compose["services"][name]


def test_start_order_waits_for_health_and_for_the_migration(compose):
    services = compose["services"]
    assert services["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    backbone = {"rabbitmq": {"condition": "service_healthy"},
                "migrate": {"condition": "service_completed_successfully"}}
    for name in ("gateway", "registry", "scheduler"):
        assert services[name]["depends_on"] == backbone
    # a runner starts once its RabbitMQ user has its permissions
    assert services["runner"]["depends_on"] == {
        **backbone, "rabbitmq-runner-user": {"condition": "service_completed_successfully"}}
    assert services["rabbitmq-runner-user"]["depends_on"] == {"rabbitmq": {"condition": "service_healthy"}}
    assert services["migrate"]["restart"] == services["rabbitmq-runner-user"]["restart"] == "no"


@pytest.mark.parametrize("name, probe", [
    ("rabbitmq", "rabbitmq-diagnostics"), ("postgres", "pg_isready"), ("gateway", "/health/")])
def test_health_checks(compose, name, probe):
    assert probe in " ".join(compose["services"][name]["healthcheck"]["test"])


def test_gateway_publishes_port_8000_by_default(compose):
    assert compose["services"]["gateway"]["ports"] == ["${GATEWAY_PORT:-8000}:8000"]


def test_quick_start_token_is_a_default_the_environment_overrides(compose):
    services = compose["services"]
    assert services["gateway"]["environment"]["STEVEDORE_TOKENS"] == "${STEVEDORE_TOKENS:-change-me-quickstart-token}"
    for name in ("gateway", "registry", "scheduler"):
        assert services[name]["environment"]["STEVEDORE_CREDENTIALS_KEY"] == "${STEVEDORE_CREDENTIALS_KEY:-}"
    assert services["scheduler"]["environment"]["STEVEDORE_WEBHOOK_SECRET"] == "${STEVEDORE_WEBHOOK_SECRET:-}"


def test_services_reach_the_bundled_broker_and_database(compose):
    env = compose["services"]["scheduler"]["environment"]
    assert "@rabbitmq:5672/" in env["AMQP_URI"]
    assert "@postgres:5432/stevedore" in env["DATABASE_URL"]
    runner = compose["services"]["runner"]["environment"]["AMQP_URI"]
    assert runner.startswith("pyamqp://${RABBITMQ_RUNNER_USER:-stevedore-runner}:") and "@rabbitmq:5672/" in runner


def test_runners_use_their_own_rabbitmq_user_which_a_one_shot_service_gives_only_the_runners_permissions(compose):
    services = compose["services"]
    made = services["rabbitmq-runner-user"]
    assert made["entrypoint"] == ["python", "-m", "shared.broker_access"]
    assert made["image"] == services["runner"]["image"]
    env = made["environment"]
    assert env["RABBITMQ_MANAGEMENT_URL"] == "http://rabbitmq:15672"
    assert (env["RABBITMQ_USER"], env["RABBITMQ_PASSWORD"]) == (
        services["rabbitmq"]["environment"]["RABBITMQ_DEFAULT_USER"],
        services["rabbitmq"]["environment"]["RABBITMQ_DEFAULT_PASS"])
    assert f"{env['RABBITMQ_RUNNER_USER']}:{env['RABBITMQ_RUNNER_PASSWORD']}@" in \
        services["runner"]["environment"]["AMQP_URI"]
    # the services' own user is not the runner's
    assert "${RABBITMQ_USER" not in services["runner"]["environment"]["AMQP_URI"]


def test_every_config_variable_is_documented_in_deployment_md(config_variables):
    with open(os.path.join(ROOT, "docs", "deployment.md")) as fh:
        doc = fh.read()
    missing = [name for name in config_variables if f"`{name}`" not in doc]
    assert missing == []


@pytest.mark.parametrize("secret, users", [("STEVEDORE_TOKENS", {"gateway"}),
                                           # the registry opens credentials; the gateway seals secrets, the
                                           # scheduler opens them for a claim (docs/deployment.md)
                                           ("STEVEDORE_CREDENTIALS_KEY", {"gateway", "registry", "scheduler"}),
                                           ("STEVEDORE_WEBHOOK_SECRET", {"scheduler"})])
def test_each_secret_goes_only_to_the_services_that_use_it(compose, secret, users):
    holders = {name for name in STEVEDORE_SERVICES
               if secret in (compose["services"][name].get("environment") or {})}
    assert holders == users
