"""The services' settings (shared/settings.py): parsed once, typed, refused by name; config.yml and
docs/deployment.md's table agree with them."""
import ipaddress
import os
import re
from types import SimpleNamespace

import pytest

from shared.settings import (MODELS, AllSettings, GatewaySettings, RunnerSettings, SchedulerSettings, SettingError,
                             parse, settings_of)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# keys nameko reads itself: their defaults stay in config.yml (by the variable that sets them)
NAMEKO_VARIABLES = {"AMQP_URI", "AMQP_HEARTBEAT", "MAX_WORKERS", "GATEWAY_ADDRESS", "DATABASE_URL", "LOG_LEVEL"}


def read(*path):
    with open(os.path.join(ROOT, *path)) as fh:
        return fh.read()


# ---------------------------------------------------------------- parsing

def test_unset_or_empty_settings_take_their_one_default():
    for given in ({}, {"RUN_MAX_TIMES": None, "STOP_GRACE_PERIOD": "", "AUTH": "  "}):
        settings = parse(AllSettings, given)
        assert (settings.run_max_times, settings.stop_grace_period, settings.auth) == (100000, 10, True)
    assert parse(SchedulerSettings, {}).ceilings == (8 * 1024 ** 3, 4.0, 100 * 1024 ** 3)
    assert parse(RunnerSettings, {}).runner_max_memory is None  # empty: the engine's


def test_values_are_typed_whether_config_yml_gives_text_or_numbers():
    settings = parse(AllSettings, {"RUN_MAX_TIMES": " 7 ", "RETRY_BACKOFF": 0.5, "CONTAINER_MAX_MEMORY": "2g",
                                   "WEBHOOK_ALLOW_NETWORKS": "10.20.0.0/16, 127.0.0.1", "API_TOKENS": "a, b,",
                                   "CONTAINER_PROFILE": " Restricted", "UI_COOKIE_SECURE": " On "})
    assert settings.run_max_times == 7 and settings.retry_backoff == 0.5
    assert settings.container_max_memory == 2 * 1024 ** 3
    assert settings.webhook_allow_networks == (ipaddress.ip_network("10.20.0.0/16"),
                                               ipaddress.ip_network("127.0.0.1/32"))
    assert settings.api_tokens == {"a", "b"}
    assert (settings.container_profile, settings.ui_cookie_secure) == ("restricted", "on")


@pytest.mark.parametrize("value, on", [("on", True), ("true", True), ("yes", True), ("1", True), (True, True),
                                       ("off", False), ("False", False), ("no", False), ("0", False), (False, False)])
def test_switches_read_on_and_off(value, on):
    assert parse(GatewaySettings, {"METRICS_PUBLIC": value}).metrics_public is on


def test_zero_means_what_the_docs_say_never_the_default():
    zero = parse(AllSettings, {key: "0" for key in ("STOP_GRACE_PERIOD", "RETRY_BACKOFF", "RESULT_RETENTION_DAYS",
                                                    "TASK_CACHE_SECONDS", "FOLLOW_MAX", "METRICS_PORT",
                                                    "WEBHOOK_BACKOFF", "ENGINE_PATIENCE")})
    assert (zero.stop_grace_period, zero.retry_backoff, zero.result_retention_days, zero.task_cache_seconds,
            zero.follow_max, zero.metrics_port, zero.webhook_backoff, zero.engine_patience) == (0,) * 8


@pytest.mark.parametrize("key, value, message", [
    ("RUN_MAX_TIMES", "abc", "RUN_MAX_TIMES='abc': must be an integer of at least 1"),
    ("RUN_MAX_TIMES", "0", "RUN_MAX_TIMES='0': must be an integer of at least 1"),
    ("WEBHOOK_ATTEMPTS", 0, "WEBHOOK_ATTEMPTS=0: must be an integer of at least 1"),
    ("RUNNER_SLOTS", "1.5", "RUNNER_SLOTS='1.5': must be an integer of at least 1"),
    ("CONTAINER_PIDS_LIMIT", "0", "CONTAINER_PIDS_LIMIT='0': must be an integer of at least 1"),
    ("SWEEP_INTERVAL", "0", "SWEEP_INTERVAL='0': must be a number above 0"),
    ("RETRY_BACKOFF", "-1", "RETRY_BACKOFF='-1': must be a number of at least 0"),
    ("METRICS_PORT", "70000", "METRICS_PORT='70000': must be an integer from 0 to 65535"),
    ("UI_SESSION_SECONDS", "12h", "UI_SESSION_SECONDS='12h': must be an integer from 1 to 31622400"),
    ("CONTAINER_MAX_CPUS", "-1", "CONTAINER_MAX_CPUS='-1': must be a number from 0.01 to 1024"),
    ("CONTAINER_MAX_MEMORY", "lots", "CONTAINER_MAX_MEMORY='lots': must be a size such as \"256m\" or \"1g\""),
    ("CONTAINER_LOG_MAX_SIZE", "16", "CONTAINER_LOG_MAX_SIZE='16': must be a size such as \"16m\""),
    ("CONTAINER_LOG_DRIVER", "syslog", "CONTAINER_LOG_DRIVER='syslog': must be one of json-file or local"),
    ("UI_COOKIE_SECURE", "yes", "UI_COOKIE_SECURE='yes': must be one of auto, on or off"),
    ("QUEUE_TYPE", "mirrored", "QUEUE_TYPE='mirrored': must be one of classic or quorum"),
    ("AUTH", "maybe", "AUTH='maybe': must be on or off"),
    ("HTTP_TRUSTED_PROXIES", "10.0.0.1,nonsense", "HTTP_TRUSTED_PROXIES='10.0.0.1,nonsense': 'nonsense' is not"),
    ("CONTAINER_NETWORK", "host", "CONTAINER_NETWORK='host': is refused"),
])
def test_a_bad_value_is_refused_naming_the_setting_and_saying_what_it_must_be(key, value, message):
    with pytest.raises(SettingError) as refused:
        parse(AllSettings, {key: value})
    assert str(refused.value).startswith(message)


def test_each_service_parses_only_its_own_settings_once():
    container = SimpleNamespace(service_name="gateway", config={"FOLLOW_MAX": "3", "RUNNER_SLOTS": "bad"})
    settings = settings_of(container)
    assert isinstance(settings, GatewaySettings) and settings.follow_max == 3  # RUNNER_SLOTS is the runner's
    container.config["FOLLOW_MAX"] = "4"
    assert settings_of(container) is settings
    with pytest.raises(SettingError, match="RUNNER_SLOTS"):
        settings_of(SimpleNamespace(service_name="runner", config={"RUNNER_SLOTS": "bad"}))


# ---------------------------------------------------------------- config.yml and the docs

def config_variables():
    """{config key: the variable config.yml fills it from, with its default there (None: none)}."""
    text = "\n".join(line.split("#")[0] for line in read("services", "config.yml").splitlines())
    found = re.findall(r'^\s*"?([\w:]+)"?: (?:!raw_env_var )?"?\$\{(\w+)(:?)([^}]*)\}', text, re.MULTILINE)
    return {key: (variable, default if colon else None) for key, variable, colon, default in found}


def test_config_yml_passes_every_setting_through_without_a_second_default():
    variables = config_variables()
    for name, field in AllSettings.model_fields.items():
        assert field.alias in variables, f"config.yml does not pass {field.alias}"
        variable, default = variables[field.alias]
        assert default is None, f"config.yml states a default for {field.alias}"
        assert variable == (field.json_schema_extra or {}).get("env", field.alias)


def documented():
    """{variable: (default text, read-by set, meaning)} from docs/deployment.md's settings table."""
    section = read("docs", "deployment.md").split("## Configuration", 1)[1].split("\nThe image and compose", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip("|").split(" | ")]
        if len(cells) != 4 or not cells[0].startswith("`"):
            continue
        names = re.findall(r"`(\w+)`", cells[0])
        defaults = cells[1].split(" / ") if len(names) > 1 else [cells[1]]
        readers = {"gateway", "registry", "scheduler", "runner"} if cells[2] == "all" else \
            {reader.strip() for reader in cells[2].split(",")}
        for name, default in zip(names, defaults):
            rows[name] = (default, readers, cells[3])
    return rows


def shown(default):
    """A default as the table writes it: its first word, without backticks or what follows."""
    if default.startswith("`"):
        return default.split("`")[1]
    return re.split(r"[ :(]", default, maxsplit=1)[0]


def model_default(field):
    value = field.default
    if value in (None, ""):
        return "empty"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


def test_every_setting_is_documented_with_its_default_and_the_services_that_read_it():
    rows = documented()
    variables = config_variables()
    for name, field in AllSettings.model_fields.items():
        variable = variables[field.alias][0]
        assert variable in rows, f"{variable} is not in docs/deployment.md"
        default, readers, meaning = rows[variable]
        assert shown(default) == model_default(field), variable
        assert readers == {service for service, model in MODELS.items() if name in model.model_fields}, variable
        low = next((m.ge for m in field.metadata if hasattr(m, "ge")), None)
        if low == 0 and field.default != 0:
            assert re.search(r"\b0\b", meaning), f"{variable}: the docs do not say what 0 means"


def test_nothing_is_documented_that_is_not_a_setting():
    variables = config_variables()
    settings = {variable for variable, _ in variables.values()}
    nameko = {variable: default for variable, default in variables.values() if variable in NAMEKO_VARIABLES}
    for variable, (default, _, _) in documented().items():
        assert variable in settings, f"docs/deployment.md documents {variable}, which no service reads"
        if variable in nameko:  # read by nameko itself: its default is config.yml's
            assert shown(default) == nameko[variable], variable


def test_compose_passes_settings_through_without_a_default_of_its_own():
    compose = read("docker-compose.yml")
    variables = config_variables()
    for field in AllSettings.model_fields.values():
        variable = variables[field.alias][0]
        if variable == "STEVEDORE_TOKENS":  # compose's own quick-start token (docs/deployment.md)
            continue
        for default in re.findall(rf"\$\{{{variable}:-([^}}]*)\}}", compose):
            assert default == "", f"docker-compose.yml states a default for {variable}"
