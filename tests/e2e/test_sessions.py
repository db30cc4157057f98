"""Web UI sessions through the gateway: the cookie holds a session's secret, never an API token."""
import hashlib
import http.client
from http.cookies import SimpleCookie

import pytest
import requests
from sqlalchemy import create_engine, text

from tests.support import own_system, sign_in

pytestmark = pytest.mark.e2e

PROXY = "127.0.0.3"  # named in HTTP_TRUSTED_PROXIES of the system below
CLIENT = "127.0.0.2"  # not named


def read(system, cookie=None, **cookies):
    if cookie is not None:
        cookies["stevedore_session"] = cookie
    return requests.get(system.url + "/task/", cookies=cookies, timeout=10)


def sign_out(system, cookie):
    return requests.post(system.url + "/ui/signout", cookies={"stevedore_session": cookie},
                         headers={"Origin": system.url}, allow_redirects=False, timeout=10)


def set_cookies(headers):
    """{name: Morsel} of the Set-Cookie headers of an answer."""
    jar = SimpleCookie()
    for value in headers.get_all("Set-Cookie") or []:
        jar.load(value)
    return jar


def test_sign_in_sets_a_session_cookie_that_is_not_the_token(system):
    response = requests.post(system.url + "/ui/signin", data={"token": system.token, "next": "/ui/results"},
                             allow_redirects=False, timeout=10)
    assert response.status_code == 303 and response.headers["Location"].endswith("/ui/results")
    header = response.headers["Set-Cookie"]
    assert system.token not in header
    [morsel] = set_cookies(response.raw.headers).values()
    assert morsel.key == "stevedore_session", header
    assert len(morsel.value) >= 43 and morsel.value != system.token
    assert morsel["httponly"] and morsel["samesite"] == "Strict" and morsel["path"] == "/"
    assert morsel["max-age"] == "43200"  # UI_SESSION_SECONDS by default: 12 h
    assert not morsel["secure"]  # plain http, no proxy named

    assert read(system, morsel.value).status_code == 200


def test_a_wrong_token_starts_no_session(system):
    response = requests.post(system.url + "/ui/signin", data={"token": "not-a-token", "next": "/ui/tasks"},
                             allow_redirects=False, timeout=10)
    assert response.status_code == 401
    assert "stevedore_session" not in response.headers.get("Set-Cookie", "")
    assert 'data-error="the gateway does not accept this token"' in response.text


def test_sign_out_revokes_the_session_so_its_cookie_replayed_gets_401(system):
    cookie = sign_in(system, system.token)
    other = sign_in(system, system.token)
    assert read(system, cookie).status_code == 200  # now known to this gateway (and cached)

    out = sign_out(system, cookie)
    assert out.status_code == 303 and out.headers["Location"].endswith("/ui/signin")
    assert set_cookies(out.raw.headers)["stevedore_session"]["max-age"] == "0"

    replayed = read(system, cookie)
    assert replayed.status_code == 401 and replayed.json()["error"] == "UNAUTHORIZED"
    assert read(system, other).status_code == 200  # another sign-in is not touched


def test_an_expired_session_is_refused(system):
    cookie = sign_in(system, system.token)
    fresh = sign_in(system, system.token)
    engine = create_engine(system.database_url)
    with engine.begin() as conn:  # its time ran out (on the database's clock)
        conn.execute(text("UPDATE ui_sessions SET expires_at = extract(epoch FROM clock_timestamp()) - 1 "
                          "WHERE id = :id"), {"id": hashlib.sha256(cookie.encode()).hexdigest()})
    engine.dispose()
    refused = read(system, cookie)
    assert refused.status_code == 401 and refused.headers["WWW-Authenticate"].startswith("Bearer")
    assert read(system, fresh).status_code == 200


def test_only_hashes_of_the_secret_and_token_are_stored(system):
    cookie = sign_in(system, system.token)
    engine = create_engine(system.database_url)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT id, token_fingerprint FROM ui_sessions")).all()
    engine.dispose()
    stored = " ".join(value for row in rows for value in row)
    assert hashlib.sha256(cookie.encode()).hexdigest() in stored
    assert cookie not in stored and system.token not in stored


def test_an_old_cookie_holding_a_raw_token_is_refused_and_dropped(system):
    refused = read(system, stevedore_token=system.token)
    assert refused.status_code == 401
    page = requests.get(system.url + "/ui/tasks", cookies={"stevedore_token": system.token}, timeout=10)
    assert set_cookies(page.raw.headers)["stevedore_token"]["max-age"] == "0"


def test_a_made_up_cookie_is_refused(system):
    for value in ("x", "a" * 43, hashlib.sha256(b"x").hexdigest(), system.token):
        assert read(system, value).status_code == 401, value


# ---------------------------------------------------------------- a system of its own

@pytest.fixture(scope="module")
def proxied(vhost_pipeline, request):
    """A gateway behind a named proxy, with two tokens."""
    yield from own_system(request, vhost_pipeline, "sessions", {"HTTP_TRUSTED_PROXIES": PROXY, "RPC_TIMEOUT": "5"},
                          runners=0)


def sign_in_from(system, source, headers):
    """POST /ui/signin from a loopback address of our choice; answer the session Morsel."""
    conn = http.client.HTTPConnection("127.0.0.1", system.port, timeout=10, source_address=(source, 0))
    try:
        body = f"token={system.token}&next=%2Fui%2Ftasks"
        conn.request("POST", "/ui/signin", body=body,
                     headers={"Content-Type": "application/x-www-form-urlencoded", **headers})
        answer = conn.getresponse()
        answer.read()
        assert answer.status == 303
        return set_cookies(answer.headers)["stevedore_session"]
    finally:
        conn.close()


def test_the_cookie_is_secure_behind_the_named_proxy_saying_https(proxied):
    morsel = sign_in_from(proxied, PROXY, {"X-Forwarded-Proto": "https", "X-Forwarded-For": "198.51.100.9"})
    assert morsel["secure"]
    assert not sign_in_from(proxied, PROXY, {"X-Forwarded-Proto": "http"})["secure"]


def test_x_forwarded_proto_from_a_client_not_named_is_ignored(proxied):
    assert not sign_in_from(proxied, CLIENT, {"X-Forwarded-Proto": "https"})["secure"]


def test_a_session_ends_when_its_token_is_removed_and_others_outlive_a_restart(proxied):
    first, second = proxied.env["STEVEDORE_TOKENS"].split(",")
    by_first, by_second = sign_in(proxied, first), sign_in(proxied, second)
    assert read(proxied, by_first).status_code == 200 and read(proxied, by_second).status_code == 200

    proxied.kill("gateway", sig=15)
    proxied.env["STEVEDORE_TOKENS"] = first  # the second token is taken away
    proxied.start("gateway").wait_healthy()

    assert read(proxied, by_second).status_code == 401
    assert read(proxied, by_first).status_code == 200  # kept by the registry, not the gateway


def test_while_the_registry_is_away_a_cookie_is_answered_503_not_500(proxied):
    cookie = sign_in(proxied, proxied.token)  # not yet checked, so not kept by the gateway
    proxied.kill("registry")
    try:
        away = read(proxied, cookie)
        assert away.status_code == 503 and away.json()["error"] == "UNAVAILABLE", away.text
        # the API token does not need the registry to be let in
        assert requests.get(proxied.url + "/result/", headers={"Authorization": f"Bearer {proxied.token}"},
                            timeout=10).status_code == 200
    finally:
        proxied.start("registry").wait_healthy()
    assert read(proxied, cookie).status_code == 200
