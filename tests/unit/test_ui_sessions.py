"""The web UI's sessions at the gateway: the cookie's attributes, the https rule, settings, the cache."""
from unittest.mock import Mock

from nameko.testing.services import worker_factory
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from services.gateway.service import GatewayService
from services.gateway.sessions import (COOKIE, LEGACY_COOKIE, MISSING, SessionCache, SessionGate, SessionVerbs,
                                       cookie_secure, fingerprint, secret_hash)
from services.gateway.ui import drop_cookie, html_response
from shared.settings import GatewaySettings, parse

PROXIES = parse(GatewaySettings, {"HTTP_TRUSTED_PROXIES": "10.0.0.5,10.1.0.0/24"}).http_trusted_proxies


def environ(peer="192.0.2.7", scheme="http", proto=None):
    headers = {"X-Forwarded-Proto": proto} if proto is not None else {}
    env = EnvironBuilder(path="/ui/signin", method="POST", headers=headers, base_url=f"{scheme}://gw/").get_environ()
    env["REMOTE_ADDR"] = peer
    return env


# ---------------------------------------------------------------- Secure: over https, or behind a named proxy

def test_a_request_the_gateway_itself_got_over_https_gets_a_secure_cookie():
    assert cookie_secure("auto", environ(scheme="https"), PROXIES)


def test_a_named_proxy_saying_https_gets_a_secure_cookie():
    assert cookie_secure("auto", environ(peer="10.0.0.5", proto="https"), PROXIES)
    assert cookie_secure("auto", environ(peer="10.1.0.77", proto="HTTPS"), PROXIES)


def test_x_forwarded_proto_from_anyone_else_is_ignored():
    assert not cookie_secure("auto", environ(peer="192.0.2.7", proto="https"), PROXIES)
    assert not cookie_secure("auto", environ(peer="10.0.0.6", proto="https"), PROXIES)
    assert not cookie_secure("auto", environ(peer="10.0.0.5", proto="https"), [])


def test_a_named_proxy_saying_http_or_nothing_gets_no_secure_cookie():
    assert not cookie_secure("auto", environ(peer="10.0.0.5", proto="http"), PROXIES)
    assert not cookie_secure("auto", environ(peer="10.0.0.5"), PROXIES)


def test_the_scheme_the_nearest_proxy_added_counts_not_what_the_client_put_before_it():
    # a proxy that appends: the client claimed https, the proxy saw http
    assert not cookie_secure("auto", environ(peer="10.0.0.5", proto="https, http"), PROXIES)
    assert cookie_secure("auto", environ(peer="10.0.0.5", proto="http, https"), PROXIES)


def test_the_operator_can_force_secure_on_or_off():
    assert cookie_secure("on", environ(), [])
    assert not cookie_secure("off", environ(scheme="https"), PROXIES)


# ---------------------------------------------------------------- the cookie itself

def signin(config, peer="192.0.2.7", proto=None, token="the-api-token", cookies=None, tokens=None):
    """POST /ui/signin to the gateway's handler (its registry a mock; ``tokens``: the principals' tokens
    it knows, a mock TokenGate); answer (response, registry)."""
    registry = Mock()
    bound = gate({"API_TOKENS": "the-api-token,other", **config})
    bound.registry = lambda worker_ctx: registry
    settings = parse(GatewaySettings, {"AUTH": "on", "API_TOKENS": "the-api-token,other", **config})
    service = worker_factory(GatewayService, settings=settings,
                             sessions=SessionVerbs(bound, None, tokens))
    headers = {"X-Forwarded-Proto": proto} if proto else {}
    if cookies:
        headers["Cookie"] = cookies
    env = EnvironBuilder(path="/ui/signin", method="POST", headers=headers,
                         data={"token": token, "next": "/ui/results"}).get_environ()
    env["REMOTE_ADDR"] = env["stevedore_jobs.client"] = peer  # the client as the door (http.py) saw it
    return service.ui_signin_submit(Request(env)), registry


def test_sign_in_sets_an_http_only_strict_cookie_holding_a_new_secret_not_the_token():
    response, registry = signin({"UI_SESSION_SECONDS": "600"})
    assert response.status_code == 303 and response.headers["Location"] == "/ui/results"
    [header] = response.headers.getlist("Set-Cookie")
    name, value = header.split(";")[0].split("=", 1)
    assert name == COOKIE and len(value) >= 43 and "the-api-token" not in header
    for attribute in ("HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=600"):
        assert attribute in header
    assert "Secure" not in header
    # the registry is told the secret's hash and the token's fingerprint, never either itself
    registry.create_session.assert_called_once()
    assert registry.create_session.call_args.args == (secret_hash(value), fingerprint("the-api-token"), 600)
    # and who signs in, for the audit log: a principal, never the token
    caller = registry.create_session.call_args.kwargs["caller"]
    assert caller["principal"] == "admin" and "the-api-token" not in str(caller)


def test_sign_in_with_a_principals_token_is_audited_as_that_principal_from_the_clients_address():
    tokens = Mock()
    tokens.principal.return_value = {"token_id": "t1", "principal": "alice", "role": "viewer", "team": "ml",
                                     "seconds_left": None}
    response, registry = signin({}, token="stv_alices", tokens=tokens)
    assert response.status_code == 303
    assert tokens.principal.call_args.args == (secret_hash("stv_alices"),)
    assert registry.create_session.call_args.args[1] == secret_hash("stv_alices")  # its session ends with it
    assert registry.create_session.call_args.kwargs["caller"] == {
        "principal": "alice", "role": "viewer", "team": "ml", "address": "192.0.2.7"}


def test_sign_in_behind_a_named_proxy_over_https_sets_a_secure_cookie():
    response, _ = signin({"HTTP_TRUSTED_PROXIES": "10.0.0.5"}, peer="10.0.0.5", proto="https")
    assert "Secure" in response.headers["Set-Cookie"]
    response, _ = signin({"HTTP_TRUSTED_PROXIES": "10.0.0.5"}, peer="192.0.2.7", proto="https")
    assert "Secure" not in response.headers["Set-Cookie"]
    response, _ = signin({"UI_COOKIE_SECURE": "on"})
    assert "Secure" in response.headers["Set-Cookie"]


def test_sign_in_with_a_token_not_configured_starts_no_session():
    response, registry = signin({}, token="guessed")
    assert response.status_code == 401 and "Set-Cookie" not in response.headers
    registry.create_session.assert_not_called()


def test_sign_in_drops_an_old_cookie_holding_a_raw_token():
    response, _ = signin({}, cookies=f"{LEGACY_COOKIE}=the-api-token")
    headers = response.headers.getlist("Set-Cookie")
    assert any(h.startswith(f"{LEGACY_COOKIE}=;") and "Max-Age=0" in h for h in headers)
    assert any(h.startswith(f"{COOKIE}=") for h in headers)


def test_an_old_cookie_holding_a_raw_token_is_told_to_go():
    request = Request(EnvironBuilder(headers={"Cookie": f"{LEGACY_COOKIE}=raw-api-token"}).get_environ())
    response = html_response("")
    drop_cookie(request, response, LEGACY_COOKIE)
    drop_cookie(request, response, COOKIE)  # not sent: nothing said about it
    [header] = response.headers.getlist("Set-Cookie")
    assert header.startswith(f"{LEGACY_COOKIE}=;") and "Max-Age=0" in header


def test_only_hashes_leave_the_gateway():
    assert secret_hash("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert len(fingerprint("token")) == 64 and fingerprint("token") != secret_hash("token")
    assert secret_hash("\ud800") != secret_hash("?")  # any text a cookie holds hashes


class FakeContainer:
    def __init__(self, config):
        self.config = config
        self.shared_extensions = {}


CONTAINERS = []  # an extension holds its container weakly


def gate(config):
    CONTAINERS.append(FakeContainer(config))
    bound = SessionGate().bind(CONTAINERS[-1])
    bound.setup()
    return bound


def test_a_session_is_admitted_only_while_its_token_is_configured():
    now = gate({"API_TOKENS": "first,second"})
    later = gate({"API_TOKENS": "first"})
    session = {"token_fingerprint": now.token_fingerprint("second"), "seconds_left": 100}
    for g in (now, later):
        g.cache.put(secret_hash("secret"), session, 100)
    assert now.admits("secret", entrypoint=None) is True
    assert later.admits("secret", entrypoint=None) is False
    assert now.token_fingerprint("third") is None and now.token_fingerprint("") is None


# ---------------------------------------------------------------- the cache

class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_a_live_session_is_kept_for_the_cache_time_never_past_its_expiry():
    clock = Clock()
    cache = SessionCache(5, clock=clock)
    cache.put("long", {"s": 1}, seconds_left=3600)
    cache.put("short", {"s": 2}, seconds_left=2)
    clock.now += 2.5
    assert cache.get("long") == {"s": 1} and cache.get("short") is MISSING
    clock.now += 3
    assert cache.get("long") is MISSING


def test_a_forgotten_session_is_not_brought_back_by_a_check_under_way():
    cache = SessionCache(5, clock=Clock())
    cache.put("k", {"s": 1}, seconds_left=60)
    cache.forget("k")
    assert cache.get("k") is None
    cache.put("k", {"s": 1}, seconds_left=60)  # the answer of a check sent before the sign-out
    assert cache.get("k") is None


def test_without_a_cache_time_every_check_asks():
    cache = SessionCache(0, clock=Clock())
    cache.put("k", {"s": 1}, seconds_left=60)
    cache.forget("k")
    assert cache.get("k") is MISSING


def test_the_cache_holds_a_bounded_number_of_answers():
    cache = SessionCache(5, size=3, clock=Clock())
    for key in "abcde":
        cache.put(key, None)
    assert list(cache.entries) == ["c", "d", "e"]
