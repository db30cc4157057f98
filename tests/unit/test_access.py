"""Who may do what at the gateway (services/gateway/access.py) and the principals' token cache
(services/gateway/callers.py)."""
from collections import OrderedDict
from types import SimpleNamespace

import pytest
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from services.gateway import access, callers
from services.gateway.callers import MISSING, TokenCache, TokenGate, token_hash
from services.gateway.http import JsonHttp
from services.gateway.service import GatewayService
from shared.errors import Forbidden, NotFound, ValidationError
from shared.principals import CONFIGURED, ROLES, Caller
from stevedore_jobs.cli.tokens import duration
from stevedore_jobs.contract import principals as contract_principals


def entrypoints():
    for name in dir(GatewayService):
        for entrypoint in getattr(getattr(GatewayService, name), "nameko_entrypoints", ()):
            if hasattr(entrypoint, "url"):
                yield entrypoint.method, entrypoint.url


def test_every_route_of_the_gateway_has_its_permission_and_no_other_is_listed():
    served = set(entrypoints())
    assert served == set(access.ROUTES), (served - set(access.ROUTES), set(access.ROUTES) - served)


def test_a_route_left_out_of_the_table_stops_the_gateway_naming_it():
    with pytest.raises(access.Uncovered, match=r"GET /secret/<name>/ has no entry"):
        access.route_permission("GET", "/secret/<name>/")


def test_the_contracts_roles_are_the_services():
    assert contract_principals.ROLES == ROLES


@pytest.mark.parametrize("role, allowed", [
    ("admin", {access.READ, access.CONTROL, access.SUBMIT, access.FLEET, access.ADMIN}),
    ("operator", {access.READ, access.CONTROL, access.FLEET}),
    ("member", {access.READ, access.CONTROL, access.SUBMIT}),
    ("viewer", {access.READ}),
])
def test_each_role_is_allowed_what_issue_18_says(role, allowed):
    caller = Caller("p", role, "ml")
    for permission in (access.READ, access.CONTROL, access.SUBMIT, access.FLEET, access.ADMIN):
        refused = access.refusal(caller, permission, "DO /x/")
        assert (refused is None) == (permission in allowed), (role, permission)
        if refused is not None:
            assert isinstance(refused, Forbidden) and str(refused).startswith(f"role: {role} may not DO /x/: ")


def test_rerun_failed_needs_submit_and_cancel_control():
    route = ("POST", "/result/<string:result_id>/")
    operator = Caller("op", "operator", "ops")
    access.check_operation(operator, *route, "CANCEL")
    with pytest.raises(Forbidden):
        access.check_operation(operator, *route, "RERUN_FAILED")
    assert access.route_permission(*route) == access.CONTROL  # the door lets the operator's CANCEL in


def request(headers=None, query="", method="GET"):
    return Request(EnvironBuilder(method=method, path="/task/", query_string=query, headers=headers).get_environ())


def test_an_admin_or_operator_acts_for_the_team_it_picks_and_a_member_for_its_own_only():
    admin, member = CONFIGURED, Caller("bob", "member", "ml")
    assert access.acting(admin, request()) == (admin, None)
    acting, team = access.acting(admin, request({"X-Stevedore-Team": "ml"}))
    assert (acting.team, team, acting.principal) == ("ml", "ml", "admin")
    assert access.acting(admin, request(query="team=ops"))[1] == "ops"
    assert access.acting(member, request({"X-Stevedore-Team": "ml"})) == (member, "ml")
    for req in (request({"X-Stevedore-Team": "ops"}), request(query="team=ops"),
                request({"X-Stevedore-Team": "ml"}, query="team=ops")):
        with pytest.raises(Forbidden, match="acts for its own team"):
            access.acting(member, req)
    with pytest.raises(ValidationError) as bad:
        access.acting(admin, request({"X-Stevedore-Team": "ML_team"}))
    assert bad.value.field == "X-Stevedore-Team"
    # ?team= picks on a GET only (a POST's query is not the UI's)
    assert access.acting(admin, request(query="team=ops", method="POST")) == (admin, None)


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


PRINCIPAL = {"token_id": "t1", "principal": "bob", "role": "member", "team": "ml", "seconds_left": None}


def test_a_token_is_taken_on_the_registrys_word_for_the_cache_time_at_most():
    clock = Clock()
    cache = TokenCache(1, clock=clock)
    cache.put("h", PRINCIPAL)
    assert cache.get("h") == PRINCIPAL
    clock.now += 1.0
    assert cache.get("h") is MISSING


def test_a_token_is_never_kept_past_its_expiry():
    clock = Clock()
    cache = TokenCache(1, clock=clock)
    cache.put("h", {**PRINCIPAL, "seconds_left": 0.2})
    clock.now += 0.3
    assert cache.get("h") is MISSING


def test_a_revoked_token_is_refused_at_once_and_an_answer_under_way_does_not_bring_it_back():
    clock = Clock()
    cache = TokenCache(1, clock=clock)
    cache.put("h", PRINCIPAL)
    cache.forget("t1")
    assert cache.get("h") is MISSING
    cache.put("h", PRINCIPAL)  # a lookup that was under way when it was revoked
    assert cache.get("h") is MISSING and cache.is_revoked(PRINCIPAL)


def test_with_no_cache_time_every_request_asks():
    cache = TokenCache(0)
    cache.put("h", PRINCIPAL)
    assert cache.get("h") is MISSING


def test_only_a_tokens_hash_leaves_the_gateway():
    assert token_hash("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


@pytest.mark.parametrize("text, seconds", [("90d", 90 * 86400), ("12h", 43200), ("30m", 1800), ("2w", 1209600),
                                           ("3600", 3600), ("45s", 45)])
def test_the_clis_expiry_is_read_as_a_duration(text, seconds):
    assert duration(text) == seconds


@pytest.mark.parametrize("text", ["", "d", "9x", "-1d", "1.5h", "90 days"])
def test_a_duration_that_is_not_one_is_a_usage_error(text):
    import argparse
    with pytest.raises(argparse.ArgumentTypeError):
        duration(text)


def test_a_streams_admission_holds_while_the_same_caller_is_let_in_and_through_a_registry_away():
    from services.gateway.auth import Admission
    from shared.errors import Unavailable

    bob = Caller("bob", "member", "ml", "10.0.0.1")
    answers = iter([bob, Caller("bob", "viewer", "ml", "10.0.0.1"), None])
    admission = Admission(bob, lambda: next(answers))
    assert [admission.holds() for _ in range(3)] == [True, False, False]  # a role changed, then revoked

    def away():
        raise Unavailable("registry: no answer", "registry")

    assert Admission(bob, away).holds() is True  # no verdict: a later check decides
    assert Admission(CONFIGURED, None).holds() is True  # auth off: nothing to ask again
class Scheduler:
    """The scheduler's ``get_team`` as the gateway asks it: the teams in ``names``, NotFound for another."""

    def __init__(self, names):
        self.names, self.asked = set(names), []

    def get_team(self, name, caller=None):
        self.asked.append(name)
        if name not in self.names:
            raise NotFound(f"no team {name!r}", "name")
        return {"name": name}


def gate(monkeypatch, scheduler, ttl=1.0):
    clock = Clock()
    monkeypatch.setattr(callers, "timeout_service", lambda *args, **kwargs: scheduler)
    monkeypatch.setattr(callers, "WorkerContext", lambda *args: None)
    monkeypatch.setattr(callers.time, "monotonic", clock)
    tokens = TokenGate()
    tokens.container, tokens.timeout, tokens.team_ttl, tokens.teams = None, 5, ttl, OrderedDict()
    return tokens, clock


def test_a_team_that_exists_is_known_for_the_cache_time_and_one_that_does_not_is_asked_about_each_time(
        monkeypatch):
    scheduler = Scheduler({"ml"})
    tokens, clock = gate(monkeypatch, scheduler)
    assert tokens.team_exists("ml", None) and tokens.team_exists("ml", None)
    assert scheduler.asked == ["ml"]
    clock.now += 1.0  # deleted meanwhile: found out once the cache time is over
    scheduler.names.clear()
    assert not tokens.team_exists("ml", None)
    assert not tokens.team_exists("new", None)
    scheduler.names.add("new")  # made now: found at once, no "no" was kept
    assert tokens.team_exists("new", None)
    assert scheduler.asked == ["ml", "ml", "new", "new"]


def test_every_team_a_request_picks_must_exist_but_the_callers_own_is_not_asked_about(monkeypatch):
    scheduler = Scheduler({"ml"})
    tokens, _ = gate(monkeypatch, scheduler, ttl=0)
    door = SimpleNamespace(tokens=tokens, method="GET", url="/task/")
    JsonHttp.require_teams(door, request({"X-Stevedore-Team": "default"}), CONFIGURED)
    JsonHttp.require_teams(door, request({"X-Stevedore-Team": "ml"}, query="team=ml"), CONFIGURED)
    assert scheduler.asked == ["ml", "ml"]
    for req, field in ((request({"X-Stevedore-Team": "gone"}), "X-Stevedore-Team"),
                       (request({"X-Stevedore-Team": "ml"}, query="team=gone"), "team")):
        with pytest.raises(ValidationError) as refused:
            JsonHttp.require_teams(door, req, CONFIGURED)
        assert refused.value.field == field and "no team 'gone'" in str(refused.value)


def test_the_audit_logs_and_tokens_team_filter_may_name_a_team_gone_but_their_header_may_not(monkeypatch):
    scheduler = Scheduler(set())
    tokens, _ = gate(monkeypatch, scheduler, ttl=0)
    for url in ("/audit/", "/token/"):
        door = SimpleNamespace(tokens=tokens, method="GET", url=url)
        JsonHttp.require_teams(door, request(query="team=gone"), CONFIGURED)  # a deleted team's history
        with pytest.raises(ValidationError):
            JsonHttp.require_teams(door, request({"X-Stevedore-Team": "gone"}), CONFIGURED)
    assert scheduler.asked == ["gone", "gone"]
