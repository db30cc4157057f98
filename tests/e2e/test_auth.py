"""Nobody let in without a token: bearer auth on every endpoint but the health check."""
import pytest
import requests

from tests.support import sign_in

pytestmark = pytest.mark.e2e


def test_requests_without_a_token_are_refused_with_401(system):
    for method, path in (("GET", "/task/"), ("POST", "/task/"), ("GET", "/result/"),
                         ("GET", "/result/abc/"), ("POST", "/task/abc/")):
        response = requests.request(method, system.url + path, json={}, timeout=10)
        assert response.status_code == 401, (method, path, response.text)
        assert response.json()["error"] == "UNAUTHORIZED"
        assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_a_wrong_token_is_refused(system):
    response = requests.get(system.url + "/task/", headers={"Authorization": "Bearer nope"}, timeout=10)
    assert response.status_code == 401


def test_any_configured_token_is_accepted(system):
    second = system.env["STEVEDORE_TOKENS"].split(",")[1]
    response = requests.get(system.url + "/task/", headers={"Authorization": f"Bearer {second}"}, timeout=10)
    assert response.status_code == 200


def test_health_is_public(system):
    assert requests.get(system.url + "/health/", timeout=10).status_code == 200


def test_the_ui_cookie_authorises_same_site_requests_only(system, test_images):
    cookies = {"stevedore_session": sign_in(system, system.token)}
    assert requests.get(system.url + "/task/", cookies=cookies, timeout=10).status_code == 200
    body = {"repository": test_images["ok"], "name": "cookie-made"}
    cross = requests.post(system.url + "/task/", json=body, cookies=cookies,
                          headers={"Origin": "http://evil.example"}, timeout=10)
    assert cross.status_code == 403 and cross.json()["error"] == "FORBIDDEN"
    same = requests.post(system.url + "/task/", json=body, cookies=cookies,
                         headers={"Origin": system.url}, timeout=10)
    assert same.status_code == 201, same.text
