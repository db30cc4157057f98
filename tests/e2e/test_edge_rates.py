"""Request rates and failed authentications at the gateway (services/gateway/throttle.py), on a system of its own
with small limits: a bucket of BURST refilled at RATE a second per client, FAILURES failed tokens or sign-ins per
address in WINDOW seconds.  Clients come from distinct loopback addresses (127.0.0.x) where the address matters."""
import re
import time
import uuid

import pytest
import requests
from requests.adapters import HTTPAdapter

from tests.support import own_system, wait_until

pytestmark = pytest.mark.e2e

RATE, BURST = 1, 5
FAILURES, WINDOW = 3, 8
PROXY = "127.0.0.3"  # named in HTTP_TRUSTED_PROXIES: its X-Forwarded-For names the client


@pytest.fixture(scope="module")
def rated(vhost_pipeline, request):
    env = {"HTTP_RATE_LIMIT": str(RATE), "HTTP_RATE_BURST": str(BURST),
           "HTTP_AUTH_FAILURES": str(FAILURES), "HTTP_AUTH_WINDOW": str(WINDOW), "HTTP_TRUSTED_PROXIES": PROXY}
    yield from own_system(request, vhost_pipeline, "edge-rates", env, runners=0)


class From(HTTPAdapter):
    """Connections from one loopback address."""

    def __init__(self, address):
        self.address = address
        super().__init__()

    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs, source_address=(self.address, 0))


def client(address, token=None):
    session = requests.Session()
    session.mount("http://", From(address))
    if token:
        session.headers["Authorization"] = f"Bearer {token}"
    return session


def new_token(system, role="admin"):
    """A principal of its own (its own bucket), made by the configured admin; waits out the admin's bucket."""
    name = f"rates-{uuid.uuid4().hex[:8]}"
    made = wait_until(lambda: answered(system.api.post("/token/", {"name": name, "team": "default", "role": role})),
                      timeout=30, interval=0.5, what="a token made")
    return made.json()["token"]


def answered(response):
    return response if response.status_code != 429 else None


def refused_429(response, field):
    assert response.status_code == 429, (response.status_code, response.text[:300])
    assert response.json()["error"] == "TOO_MANY_REQUESTS"
    assert response.json()["message"].startswith(f"{field}: "), response.text
    seconds = int(response.headers["Retry-After"])
    assert seconds >= 1
    return seconds


def teams_named(system, prefix):
    listed = wait_until(lambda: answered(system.api.get("/team/", params={"limit": 1000})), timeout=30,
                        interval=0.5, what="the teams listed")
    return sorted(team["name"] for team in listed.json() if team["name"].startswith(prefix))


def test_a_burst_past_the_limit_is_refused_429_without_doing_anything_while_another_client_is_served(rated):
    flood, other = client("127.0.0.1", new_token(rated)), client("127.0.0.1", new_token(rated))
    prefix = f"flood-{uuid.uuid4().hex[:6]}-"
    answers = [flood.post(rated.url + "/team/", json={"name": f"{prefix}{n}"}, timeout=30) for n in range(BURST + 5)]
    made = [n for n, answer in enumerate(answers) if answer.status_code == 201]
    refused = [answer for answer in answers if answer.status_code == 429]
    assert len(made) + len(refused) == len(answers), [a.text[:200] for a in answers]
    assert BURST <= len(made) < len(answers) and refused
    waits = [refused_429(answer, "rate") for answer in refused]
    # nothing was done for a refused request: only the teams answered 201 exist
    assert teams_named(rated, prefix) == sorted(f"{prefix}{n}" for n in made)
    # another principal, from the same address, is served meanwhile; so is another address without a token
    assert other.get(rated.url + "/team/", timeout=30).status_code == 200
    assert client("127.0.0.9").get(rated.url + "/openapi.json", timeout=30).status_code == 200
    # once Retry-After has passed, the flood's principal is served again
    time.sleep(max(waits))
    assert flood.get(rated.url + "/team/", timeout=30).status_code == 200
    # the refusals are logged as a count, not a line each (the edge's report, every 10 s)
    wait_until(lambda: re.search(r"requests refused with 429 in the last 10s: \d+ from rates-", rated.log("gateway")),
               timeout=20, what="the count of refusals in the gateway's log")
    assert not re.search(r"POST /team/ 429", rated.log("gateway"))


def test_without_a_token_the_client_is_its_address_and_the_health_check_has_a_bucket_of_its_own(rated):
    flooding, calm = client("127.0.0.6"), client("127.0.0.7")
    answers = [flooding.get(rated.url + "/openapi.json", timeout=30) for _ in range(BURST + 3)]
    assert answers[0].status_code == 200 and answers[-1].status_code == 429
    refused_429(answers[-1], "rate")
    assert calm.get(rated.url + "/openapi.json", timeout=30).status_code == 200
    assert flooding.get(rated.url + "/health/", timeout=30).status_code == 200


def test_a_brute_force_of_bad_tokens_locks_out_the_address_even_for_a_good_token_until_the_window_passes(rated):
    good = new_token(rated, role="viewer")
    guesser, victim_elsewhere = client("127.0.0.2"), client("127.0.0.4", good)
    started = time.monotonic()
    for n in range(FAILURES):
        guess = guesser.get(rated.url + "/task/", headers={"Authorization": f"Bearer guess-{n}"}, timeout=30)
        assert guess.status_code == 401, guess.text
    locked = guesser.get(rated.url + "/task/", headers={"Authorization": "Bearer guess-more"}, timeout=30)
    seconds = refused_429(locked, "authorization")
    assert seconds <= WINDOW
    # whatever the token: the good one is refused from that address, and so is a sign-in with it
    refused_429(guesser.get(rated.url + "/task/", headers={"Authorization": f"Bearer {good}"}, timeout=30),
                "authorization")
    refused_429(guesser.post(rated.url + "/ui/signin", data={"token": good, "next": "/ui/tasks"},
                             allow_redirects=False, timeout=30), "authorization")
    # another address is let in with the good token, and its own failure counts for it alone
    assert victim_elsewhere.get(rated.url + "/task/", timeout=30).status_code == 200
    assert victim_elsewhere.get(rated.url + "/task/", headers={"Authorization": "Bearer typo"},
                                timeout=30).status_code == 401
    assert victim_elsewhere.get(rated.url + "/task/", timeout=30).status_code == 200
    # once the window has passed, the good token is let in from the guesser's address again
    time.sleep(max(0.0, started + WINDOW + 0.5 - time.monotonic()))
    assert guesser.get(rated.url + "/task/", headers={"Authorization": f"Bearer {good}"},
                       timeout=30).status_code == 200


def test_failed_sign_ins_lock_out_the_address_for_tokens_and_sign_ins(rated):
    good = new_token(rated, role="viewer")
    browser = client("127.0.0.5")
    for n in range(FAILURES):
        page = browser.post(rated.url + "/ui/signin", data={"token": f"guess-{n}", "next": "/ui/tasks"},
                            allow_redirects=False, timeout=30)
        assert page.status_code == 401, page.text[:300]
    refused_429(browser.post(rated.url + "/ui/signin", data={"token": good, "next": "/ui/tasks"},
                             allow_redirects=False, timeout=30), "authorization")
    refused_429(browser.get(rated.url + "/task/", headers={"Authorization": f"Bearer {good}"}, timeout=30),
                "authorization")
    # the sign-in page itself (public, no token) is still served
    assert browser.get(rated.url + "/ui/signin", timeout=30).status_code == 200


def test_behind_a_trusted_proxy_the_client_is_the_address_it_forwards(rated):
    proxy = client(PROXY)

    def through(forwarded, path="/openapi.json", **headers):
        return proxy.get(rated.url + path, headers={"X-Forwarded-For": forwarded, **headers}, timeout=30)

    answers = [through("198.51.100.7") for _ in range(BURST + 3)]
    assert answers[0].status_code == 200 and answers[-1].status_code == 429
    assert through("198.51.100.8").status_code == 200  # another client through the same proxy
    for n in range(FAILURES):
        assert through("198.51.100.9", "/task/", Authorization=f"Bearer guess-{n}").status_code == 401
    good = new_token(rated, role="viewer")
    refused_429(through("198.51.100.9", "/task/", Authorization=f"Bearer {good}"), "authorization")
    assert through("198.51.100.10", "/task/", Authorization=f"Bearer {good}").status_code == 200
    assert through("198.51.100.10", "/task/", Authorization="Bearer guess").status_code == 401


def test_made_up_sign_in_cookies_are_a_rate_of_their_address_and_lock_out_no_token(rated):
    """Each made-up cookie is a registry lookup (no cache knows it): past the address's bucket of them the
    requests are refused before the lookup, while a bearer token from that address is still served."""
    good = new_token(rated, role="viewer")
    sprayer = client("127.0.0.8")
    answers = [sprayer.get(rated.url + "/task/", cookies={"stevedore_session": uuid.uuid4().hex}, timeout=30)
               for _ in range(BURST + 3)]
    assert [a.status_code for a in answers[:BURST]] == [401] * BURST, [a.text[:200] for a in answers]
    refused_429(answers[-1], "rate")
    refused_429(sprayer.get(rated.url + "/task/", timeout=30), "rate")   # nor a request with no credential
    assert sprayer.get(rated.url + "/task/", headers={"Authorization": f"Bearer {good}"},
                       timeout=30).status_code == 200
    assert client("127.0.0.10").get(rated.url + "/task/", cookies={"stevedore_session": "x" * 43},
                                    timeout=30).status_code == 401
