"""Secrets by reference: the contract's checks, the sealing, and what the runner and the logs may see."""
import logging

import pytest
from cryptography.fernet import Fernet

from services.runner.dependencies import Executor
from services.runner.engine import EngineState
from services.scheduler.secrets import may_change
from shared import messages as m
from shared.errors import Forbidden
from shared.principals import Caller
from shared.sealing import Sealer, Unopenable, load_keys, sealer_from
from stevedore_jobs.contract import openapi
from stevedore_jobs.contract.checks import Invalid, check_strings
from stevedore_jobs.contract.requests import parse
from stevedore_jobs.contract.run import run_parts
from stevedore_jobs.contract.secrets import SECRET_ENV_MAX, SecretValue, check_name


def refused(body):
    with pytest.raises(Invalid) as caught:
        run_parts({"times": 1, **body})
    return str(caught.value)


def test_a_run_stores_the_references_only_and_only_when_given():
    params, _ = run_parts({"times": 1, "secret_env": {"API_KEY": "db-password"}})
    assert params["secret_env"] == {"API_KEY": "db-password"}
    assert "secret_env" not in run_parts({"times": 1})[0]  # a run without: params as before
    assert "secret_env" not in run_parts({"times": 1, "secret_env": None})[0]


@pytest.mark.parametrize("body, message", [
    ({"env": {"API_KEY": "x"}, "secret_env": {"API_KEY": "s"}}, "secret_env.API_KEY: is also given in env"),
    ({"secret_env": {"API_KEY": "-s"}}, "secret_env.API_KEY: '-s' is not a secret's name"),
    ({"secret_env": {"API_KEY": "a/b"}}, "secret_env.API_KEY: 'a/b' is not a secret's name"),
    ({"secret_env": {"API_KEY": 5}}, "secret_env.API_KEY: 5 is not a secret's name"),
    ({"secret_env": {"2X": "s"}}, "secret_env: '2X': is not a valid variable name"),
    ({"secret_env": {"STEVEDORE_X": "s"}}, "secret_env: 'STEVEDORE_X': the STEVEDORE_ prefix is reserved"),
    ({"secret_env": {}}, "secret_env: must name at least one variable"),
    ({"secret_env": ["API_KEY"]}, "secret_env: must be an object"),
    ({"secret_env": {f"V{i}": "s" for i in range(SECRET_ENV_MAX + 1)}}, f"at most {SECRET_ENV_MAX} variables"),
])
def test_a_bad_secret_env_is_refused_naming_the_variable(body, message):
    assert message in refused(body)


def test_a_variable_from_items_or_a_matrix_cannot_also_be_a_secret():
    assert "secret_env.K: is also given" in str(pytest.raises(Invalid, run_parts, {
        "items": [{"env": {"A": "1"}}, {"env": {"K": "2"}}], "secret_env": {"K": "s"}}).value)
    assert "secret_env.K: is also given" in str(pytest.raises(Invalid, run_parts, {
        "matrix": {"K": ["1", "2"]}, "secret_env": {"K": "s"}}).value)


@pytest.mark.parametrize("name", ["API_KEY", "db-password", "prod.api.key", "_x", "9", "a" * 128])
def test_env_like_and_dns_like_names_are_secret_names(name):
    assert check_name(name) == name


@pytest.mark.parametrize("name", ["", ".", "..", "-x", ".x", "a b", "a/b", "a" * 129, "é", None])
def test_other_names_are_not(name):
    with pytest.raises(Invalid):
        check_name(name)


def test_a_value_is_any_text_but_nul_and_is_never_echoed():
    assert parse(SecretValue, {"value": "tab\tnl\nesc\x1bbell\x07 é 日本"}).value.startswith("tab")
    for value, says in (("hidden-1\x00", "NUL"), ("hidden-2\ud800", "lone surrogate"),
                        ("hidden-3" + "é" * 32765, "at most 65536 bytes")):
        with pytest.raises(Invalid) as caught:
            parse(SecretValue, {"value": value})
        assert says in str(caught.value) and "hidden" not in str(caught.value)
    # the door checks every other string of the body, and leaves the value to its model
    check_strings({"value": "a\x07b"}, opaque=("value",))
    with pytest.raises(Invalid):
        check_strings({"value": "a\x07b", "other": "c\x07"}, opaque=("value",))


def test_values_seal_and_open_with_the_keys_and_rotate_new_first():
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    token = Sealer(load_keys(old)).seal("s3cr3t".encode())
    assert "s3cr3t" not in token
    assert Sealer(load_keys(f"{new},{old}")).open(token) == b"s3cr3t"
    with pytest.raises(Unopenable, match="another STEVEDORE_CREDENTIALS_KEY"):
        Sealer(load_keys(new)).open(token)


def test_without_a_usable_key_nothing_is_sealed_and_the_operator_is_told(caplog):
    assert not sealer_from("").usable
    with pytest.raises(Unopenable, match="must set STEVEDORE_CREDENTIALS_KEY"):
        sealer_from("").seal(b"x")
    with caplog.at_level(logging.ERROR):
        broken = sealer_from("not-a-key")
    assert not broken.usable and "not a valid Fernet key" in caplog.text
    with pytest.raises(Unopenable, match="not a valid Fernet key"):
        broken.open("token")


@pytest.mark.parametrize("role, allowed", [("admin", True), ("member", True), ("operator", False),
                                           ("viewer", False)])
def test_only_admins_and_members_change_secrets(role, allowed):
    caller = Caller("someone", role, "ml")
    if allowed:
        may_change(caller)
    else:
        with pytest.raises(Forbidden, match=f"role {role} may not change secrets"):
            may_change(caller)


WORK = {"detail_id": "d", "result_id": "r", "task_id": "t", "index": 0, "attempt": 1, "image": "i@sha256:x",
        "lease_seconds": 30}


def test_a_claims_reply_keeps_its_secrets_and_an_unreadable_one_is_dropped_without_logging_them(caplog):
    work = m.received_work({**WORK, "secret_env": {"API_KEY": "v-123"}})
    assert work.secret_env == {"API_KEY": "v-123"}
    with caplog.at_level(logging.WARNING):
        assert m.received_work({**WORK, "index": "x", "secret_env": {"API_KEY": "hidden-value"}}) is None
        assert m.received_work({**WORK, "secret_env": {"API_KEY": ["hidden-value"]}}) is None
    assert "dropped" in caplog.text and "hidden-value" not in caplog.text


def test_the_claims_reply_is_sent_transient_and_the_runner_puts_secrets_in_the_container_env_alone():
    assert {"claim_execution", "claim_executions"} <= m.secret_replies("scheduler")
    assert "claim_execution" not in m.reads("scheduler")
    state = EngineState()
    state.network = "none"
    executor = Executor(None, {"default_memory": None, "pids_limit": 10, "network": "none"}, state)
    options = executor.container_options({**WORK, "env": {"MODE": "x"}, "secret_env": {"API_KEY": "v"}}, "me")
    assert options["environment"]["API_KEY"] == "v" and options["environment"]["MODE"] == "x"
    assert "v" not in options["labels"].values() and "API_KEY" not in str(options["labels"])


def test_the_served_spec_declares_the_secret_routes_and_never_a_value_in_an_answer():
    spec = openapi.spec()
    assert set(spec["paths"]["/secret/{name}/"]) == {"parameters", "get", "put", "delete"}
    assert "value" not in spec["components"]["schemas"]["Secret"]["properties"]
    put = spec["paths"]["/secret/{name}/"]["put"]
    assert {"200", "201", "403", "503"} <= set(put["responses"])
    assert "secret_env" in spec["components"]["schemas"]["ScheduleRunBody"]["properties"]
