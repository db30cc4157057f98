"""Revocation reaches open streams (issue 18): a log follower (``?follow=true``) let in with a principal's token
or a web UI session ends, on both gateways, within about a second of the token's revocation, its expiry or the
session's sign-out; and a sign-in and sign-out are audited as the principal behind them, with its address."""
import json
import threading
import time
import uuid

import pytest
import requests
from sqlalchemy import text

from tests.e2e.test_logs import read_events, running_detail
from tests.support import Api, wait_until

pytestmark = pytest.mark.e2e

# output every 0.2 s for a minute: a stream that is still open when the credential ends
TICKING = ["sh", "-c", "i=0; while [ $i -lt 300 ]; do i=$((i+1)); echo tick-$i; sleep 0.2; done"]
ENDS_WITHIN = 2.0  # seconds: TOKEN_CACHE_SECONDS (1) for the check, and some for a loaded machine


class Following(threading.Thread):
    """A log follower on ``url``: its events as they come, and when its stream closed (monotonic)."""

    def __init__(self, url, path, **auth):
        super().__init__(daemon=True)
        self.response = requests.get(url + path, params={"follow": "true"}, stream=True, timeout=30, **auth)
        assert self.response.status_code == 200, self.response.text
        self.events, self.closed_at = [], None
        self.start()

    def run(self):
        try:
            for event, data, _ in read_events(self.response):
                self.events.append((event, data))
        except requests.RequestException:
            pass
        finally:
            self.closed_at = time.monotonic()
            self.response.close()

    def live(self):
        return any(event == "stdout" for event, _ in self.events)


@pytest.fixture
def member(teams_system):
    """A fresh member token of team alpha (its own, so revoking it leaves the suite's tokens alone)."""
    made = teams_system.as_("admin").post("/token/", {"name": f"reader-{uuid.uuid4().hex[:6]}", "team": "alpha",
                                                      "role": "member"})
    assert made.status_code == 201, made.text
    return made.json()


@pytest.fixture
def ticking(teams_system):
    """The log path of a running execution of team alpha that prints a line every 0.2 s; cancelled after."""
    api = teams_system.as_("member")
    result_id = api.run(teams_system.tasks["alpha"]["task_id"], command=TICKING)
    detail = running_detail(api, result_id)
    yield f"/result/{result_id}/detail/{detail['detail_id']}/logs/"
    api.post(f"/result/{result_id}/", {"operation": "CANCEL"})


def follow_on_both(teams_system, path, **auth):
    streams = [Following(url, path, **auth) for url in (teams_system.url, teams_system.url2)]
    wait_until(lambda: all(s.live() for s in streams), timeout=20, interval=0.05, what="both streams to be live")
    return streams


def assert_ended_unauthorized(streams, since):
    wait_until(lambda: all(s.closed_at is not None for s in streams), timeout=10, interval=0.05,
               what="the streams to close")
    delays = [s.closed_at - since for s in streams]
    assert all(delay <= ENDS_WITHIN for delay in delays), delays
    for stream in streams:
        event, data = stream.events[-1]
        assert event == "error" and json.loads(data)["error"] == "UNAUTHORIZED", stream.events[-3:]
        assert not any(event == "end" for event, _ in stream.events)


def test_a_follow_stream_ends_on_both_gateways_within_a_second_or_so_of_its_tokens_revocation(
        teams_system, member, ticking):
    streams = follow_on_both(teams_system, ticking, headers={"Authorization": f"Bearer {member['token']}"})
    assert teams_system.as_("admin").delete(f"/token/{member['token_id']}/").status_code == 204
    assert_ended_unauthorized(streams, time.monotonic())


def test_a_follow_stream_ends_when_its_token_expires(teams_system, member, ticking):
    stream = Following(teams_system.url, ticking, headers={"Authorization": f"Bearer {member['token']}"})
    wait_until(stream.live, timeout=20, interval=0.05, what="the stream to be live")
    with teams_system.engine.begin() as conn:  # its expiry comes: the database's clock decides it
        conn.execute(text("UPDATE api_tokens SET expires_at = extract(epoch FROM clock_timestamp()) "
                          "WHERE id = :id"), {"id": member["token_id"]})
    assert_ended_unauthorized([stream], time.monotonic())


def test_a_follow_stream_of_a_web_ui_session_ends_on_both_gateways_when_it_signs_out(teams_system, member, ticking):
    signed = requests.post(teams_system.url + "/ui/signin", data={"token": member["token"], "next": "/ui/tasks"},
                           allow_redirects=False, timeout=10)
    assert signed.status_code == 303, signed.text
    cookies = {"stevedore_session": signed.cookies["stevedore_session"]}
    streams = follow_on_both(teams_system, ticking, cookies=cookies)
    # without the sign-out's broadcast the second gateway would take its session for UI_SESSION_CACHE_SECONDS (5)
    out = requests.post(teams_system.url + "/ui/signout", cookies=cookies, allow_redirects=False, timeout=10)
    assert out.status_code == 303
    assert_ended_unauthorized(streams, time.monotonic())
    assert requests.get(teams_system.url2 + "/whoami/", cookies=cookies, timeout=10).status_code == 401


def test_a_sign_in_and_out_are_audited_as_the_tokens_principal_with_its_address(teams_system, member):
    signed = requests.post(teams_system.url + "/ui/signin", data={"token": member["token"], "next": "/ui/tasks"},
                           allow_redirects=False, timeout=10)
    cookies = {"stevedore_session": signed.cookies["stevedore_session"]}
    # signed out on the other gateway, after its token was revoked: still the session's principal
    assert teams_system.as_("admin").delete(f"/token/{member['token_id']}/").status_code == 204
    out = requests.post(teams_system.url2 + "/ui/signout", cookies=cookies, allow_redirects=False, timeout=10)
    assert out.status_code == 303
    admin = Api(teams_system.url, token=teams_system.tokens["admin"])
    listed = admin.get("/audit/", params={"limit": 1000, "principal": member["principal"]})
    assert listed.status_code == 200, listed.text
    seen = {entry["action"]: entry for entry in listed.json() if entry["target_type"] == "session"}
    assert set(seen) == {"session.sign_in", "session.sign_out"}, listed.json()
    for entry in seen.values():
        assert (entry["principal"], entry["role"], entry["team"], entry["address"]) == (
            member["principal"], "member", "alpha", "127.0.0.1")
    assert seen["session.sign_in"]["target_id"] == seen["session.sign_out"]["target_id"]
    assert member["token"] not in listed.text and cookies["stevedore_session"] not in listed.text
