"""Who is signed in, the team picker, and the tokens, secrets, audit and teams pages of the web UI, in a real
browser against the whole running system, signed in with principals' tokens made through the API (issue 18)."""
import os
import uuid

import pytest

from tests.browser import Browser
from tests.support import ARTIFACTS, Api

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def browser(system):
    running = Browser(system.url, os.path.join(system.log_dir, "browser-people.log"),
                      os.path.join(ARTIFACTS, "screenshots")).start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def teams(api, test_images):
    """Two teams of their own, each with a member's token and a READY task registered by that member, and a
    viewer of the first team."""
    made = {}
    for key in ("a", "b"):
        team = f"ui-{key}-{uuid.uuid4().hex[:8]}"
        assert api.post("/team/", {"name": team}).status_code == 201  # a token's team must exist
        tokens = {}
        for role in ("member", "viewer"):
            answer = api.post("/token/", {"name": f"ui-{role}-{uuid.uuid4().hex[:6]}", "team": team, "role": role,
                                          "kind": "person"})
            assert answer.status_code == 201, answer.text
            tokens[role] = answer.json()
        task = Api(api.base_url, token=tokens["member"]["token"]).register(test_images["ok"], name="etl")
        made[key] = {"team": team, "tokens": tokens, "task": task}
    return made


def test_a_member_sees_who_is_signed_in_and_only_its_team(browser, teams):
    a = teams["a"]
    seen = browser.run("signed_in_as", token=a["tokens"]["member"]["token"], task_id=a["task"]["task_id"])
    expected = {"principal": a["tokens"]["member"]["principal"], "role": "member", "team": a["team"], "picker": 0}
    assert seen["tasks_page"] == expected and seen["task_page"] == expected
    assert seen["task_ids"] == [a["task"]["task_id"]]  # not team b's task, nor the default team's
    assert seen["register_visible"] and seen["run_button_visible"] and seen["delete_visible"]
    assert seen["task_flash"] == ""
    assert "tokens" not in seen["nav"] and "audit" not in seen["nav"] and "secrets" in seen["nav"]
    assert seen["tokens_flash"].startswith("Not allowed: role: member may not GET /token/")
    assert seen["missing_flash"].startswith("Not found:") and "team you do not act for" in seen["missing_flash"]


def test_a_viewer_sees_no_run_button_nor_other_write_controls(browser, teams):
    a = teams["a"]
    seen = browser.run("signed_in_as", token=a["tokens"]["viewer"]["token"], task_id=a["task"]["task_id"])
    assert seen["task_page"]["role"] == "viewer" and seen["task_page"]["team"] == a["team"]
    assert seen["task_ids"] == [a["task"]["task_id"]]
    assert not seen["run_button_visible"] and not seen["register_visible"] and not seen["delete_visible"]
    listed = browser.run("read_only_secrets", token=a["tokens"]["viewer"]["token"])
    assert not listed["form_visible"] and listed["buttons_visible"] == 0 and not listed["audit_nav"]


def test_a_member_of_another_team_gets_404_for_the_task_of_the_first(browser, teams):
    seen = browser.run("signed_in_as", token=teams["b"]["tokens"]["member"]["token"],
                       task_id=teams["a"]["task"]["task_id"])
    assert seen["task_ids"] == [teams["b"]["task"]["task_id"]]
    assert seen["task_page"]["team"] == teams["b"]["team"]
    assert seen["task_flash"].startswith("Not found:")  # another team's task is as an unknown one


def test_an_admin_picks_a_team_and_sees_only_its_tasks_then_all_again(browser, system, teams):
    a, b = teams["a"], teams["b"]
    seen = browser.run("switch_team", token=system.token, team=a["team"])
    assert seen["before"] == {"principal": "admin", "role": "admin", "team": "default", "picker": 1}
    assert {"", a["team"], b["team"], "default"} <= set(seen["options"])
    assert {a["task"]["task_id"], b["task"]["task_id"]} <= set(seen["all_before"])
    assert seen["picked"]["team"] == a["team"] and seen["picked_value"] == a["team"]
    assert seen["picked_tasks"] == [a["task"]["task_id"]]
    assert seen["kept_value"] == a["team"] and seen["stored"] == a["team"]
    assert {a["task"]["task_id"], b["task"]["task_id"]} <= set(seen["all_after"])
    assert seen["stored_after"] is None


def test_an_admin_makes_a_token_shown_once_and_revokes_it(browser, system, teams):
    name = f"ui-made-{uuid.uuid4().hex[:6]}"
    seen = browser.run("make_and_revoke_token", token=system.token, name=name, team=teams["a"]["team"])
    assert seen["team_error"].startswith("must be")  # said next to the team field
    made = seen["token"]
    assert made.startswith("stv_") and seen["copy_button"]
    assert name in seen["row"] and "viewer" in seen["row"] and "ACTIVE" in seen["row"]
    assert made not in seen["html_after_done"] and seen["value_after_done"] == ""
    assert "Revoked" in seen["flash"] and seen["status_listed"] == "REVOKED"
    assert Api(system.url, token=made).get("/whoami/").status_code == 401  # revoked for real
    listed = [t for t in system.api.get("/token/?limit=100").json() if t["token_id"] == seen["token_id"]]
    assert listed and listed[0]["principal"] == name and listed[0]["status"] == "REVOKED"
    assert listed[0]["expires_at"] - listed[0]["created_at"] == pytest.approx(30 * 86400, abs=5)


def test_a_member_sets_and_rotates_a_secret_whose_value_is_never_shown(browser, system, teams):
    a = teams["a"]
    name = f"UI_KEY_{uuid.uuid4().hex[:6]}"
    value, rotated = f"v1-{uuid.uuid4().hex}", f"v2-{uuid.uuid4().hex}"
    seen = browser.run("set_secret", token=a["tokens"]["member"]["token"], name=name, value=value, rotated=rotated)
    assert seen["field_type"] == "password" and a["team"] in seen["heading"]
    assert f"Saved secret {name}" in seen["flash"] and name in seen["row"]
    assert seen["field_after"] == "" and seen["rotate_name"] == name
    assert f"Rotated secret {name}" in seen["rotated_flash"]
    for html in ("html_after", "html_rotated", "html_reloaded"):
        assert value not in seen[html] and rotated not in seen[html], html
    assert seen["rows"] == 1
    assert seen["audit_flash"].startswith("Not allowed: role: member")
    listed = Api(system.url, token=a["tokens"]["member"]["token"]).get("/secret/").json()
    assert [s["name"] for s in listed] == [name] and all("value" not in s for s in listed)
    audit = browser.run("audit_page", token=system.token, name=name)
    assert audit["filter"] == "secret.set" and len(audit["rows"]) == 2  # set, then rotated
    assert all(name in row and a["tokens"]["member"]["principal"] in row for row in audit["rows"])
    assert value not in audit["html"] and rotated not in audit["html"]
    assert "action=no.such" in audit["url"]


def test_an_admin_adds_a_team_and_lifts_its_quota(browser, system):
    team = f"ui-t-{uuid.uuid4().hex[:8]}"
    seen = browser.run("teams_page", token=system.token, team=team)
    assert "3" in seen["row"] and "500" in seen["row"]
    assert system.api.get(f"/team/{team}/").json()["max_queued"] is None
    assert "500" not in seen["changed_row"]
