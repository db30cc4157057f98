"""Teams at the door (stevedore_jobs/contract/teams.py), the queue quota's Retry-After
(services/scheduler/executions/quotas.py) and the 429 that carries it (services/gateway/http.py)."""
import json

import pytest
from nameko.exceptions import deserialize, serialize

from services.gateway.http import JsonHttp
from services.scheduler.executions.quotas import RETRY_AFTER_IDLE, RETRY_AFTER_MAX, retry_after
from shared import validation
from shared.errors import Forbidden, TooManyRequests, ValidationError
from stevedore_jobs.contract import openapi
from stevedore_jobs.contract.teams import NewTeam, TeamChange, TeamListQuery, is_team_name


@pytest.mark.parametrize("name", ["a", "ml", "team-1", "0", "a" * 63, "x-y-z9"])
def test_dns_labels_are_team_names(name):
    assert validation.parse(NewTeam, {"name": name}).name == name
    assert is_team_name(name)


@pytest.mark.parametrize("name", ["", "A", "-a", "a-", "a_b", "a.b", "a" * 64, "é", "a b", 5, None, "a\n"])
def test_anything_else_is_refused_naming_the_name(name):
    with pytest.raises(ValidationError) as refused:
        validation.parse(NewTeam, {"name": name})
    assert refused.value.field == "name"
    assert not is_team_name(name)


@pytest.mark.parametrize("body, field", [
    ({"name": "a", "weight": 0}, "weight"), ({"name": "a", "weight": 0.001}, "weight"),
    ({"name": "a", "weight": 1000.5}, "weight"), ({"name": "a", "weight": "2"}, "weight"),
    ({"name": "a", "weight": True}, "weight"), ({"name": "a", "weight": float("nan")}, "weight"),
    ({"name": "a", "max_running": -1}, "max_running"), ({"name": "a", "max_running": 10_000_001}, "max_running"),
    ({"name": "a", "max_queued": 1.5}, "max_queued"), ({"name": "a", "max_queued": "10"}, "max_queued"),
    ({"name": "a", "colour": "red"}, "colour"), ({}, "name")])
def test_weights_and_quotas_are_bounded(body, field):
    with pytest.raises(ValidationError) as refused:
        validation.parse(NewTeam, body)
    assert refused.value.field == field


def test_a_new_team_defaults_to_weight_1_without_quotas_and_takes_integral_floats():
    team = validation.parse(NewTeam, {"name": "ml", "weight": 3, "max_queued": 100.0})
    assert (team.weight, team.max_running, team.max_queued) == (3.0, None, 100)


def test_a_change_lifts_a_quota_with_null_but_never_the_weight():
    assert validation.parse(TeamChange, {"max_running": None, "weight": 0.5}).values() == {
        "max_running": None, "weight": 0.5}
    for body, field in (({"weight": None}, "weight"), ({}, "body"), ({"name": "b"}, "name")):
        with pytest.raises(ValidationError) as refused:
            validation.parse(TeamChange, body)
        assert refused.value.field == field


def test_a_page_of_teams_starts_after_a_team_name():
    assert validation.query(TeamListQuery, {"after": "ml", "limit": "5"}).query() == {"after": "ml", "limit": 5}
    with pytest.raises(ValidationError):
        validation.query(TeamListQuery, {"after": "ML"})


@pytest.mark.parametrize("excess, pace, seconds", [
    (10, 0.0, RETRY_AFTER_IDLE), (10, 2.0, 5), (1, 100.0, 1), (10 ** 9, 0.001, RETRY_AFTER_MAX), (3, 2.0, 2)])
def test_retry_after_is_the_time_the_queue_takes_to_drain_the_excess(excess, pace, seconds):
    assert retry_after(excess, pace) == seconds


def answer(exc):
    response = JsonHttp.response_from_exception(None, exc)
    return response.status_code, response.headers.get("Retry-After"), json.loads(response.get_data())


def test_a_quota_refusal_crosses_rpc_whole_and_is_a_429_with_retry_after():
    refusal = deserialize(serialize(TooManyRequests("team ml has 10 queued", "max_queued", 42)))
    assert answer(refusal) == (429, "42", {"error": "TOO_MANY_REQUESTS",
                                           "message": "max_queued: team ml has 10 queued"})


def test_a_role_that_may_not_is_a_403_without_retry_after():
    status, retry, body = answer(deserialize(serialize(Forbidden("only an admin may create a team", "role"))))
    assert (status, retry, body["error"]) == (403, None, "FORBIDDEN")


def test_the_spec_declares_the_team_routes_and_the_429_of_a_run():
    spec = openapi.spec()
    assert set(spec["paths"]["/team/"]) == {"get", "post"}
    assert set(spec["paths"]["/team/{name}/"]) == {"parameters", "get", "patch", "delete"}
    for path in ("/task/{task_id}/", "/result/{result_id}/", "/schedule/{schedule_id}/"):
        quota = spec["paths"][path]["post"]["responses"]["429"]
        assert "max_queued" in quota["description"] and "Retry-After" in quota["headers"]
    assert spec["components"]["schemas"]["NewTeam"]["required"] == ["name"]
