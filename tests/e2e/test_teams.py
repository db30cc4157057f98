"""Teams end to end (issue 18): what each team sees, names per team, the team header, principals' tokens made,
listed and revoked through the CLI, and a revocation refused by two gateways within a second."""
import json
import os
import subprocess
import sys
import time
import uuid

import pytest
import requests

from tests.support import ROOT, Api, wait_until

pytestmark = pytest.mark.e2e


def ids(response):
    assert response.status_code == 200, response.text
    return {item["id"] for item in response.json()}


@pytest.fixture(scope="module")
def runs(teams_system):
    """A finished run of each team's task ``etl``, by its member."""
    made = {}
    for team, kind in (("alpha", "member"), ("beta", "other")):
        api = teams_system.as_(kind)
        made[team] = api.run(teams_system.tasks[team]["task_id"])
        assert api.wait_result(made[team])["status"] == "COMPLETE"
    return made


def test_two_teams_each_have_a_task_of_the_same_name(teams_system):
    alpha, beta = teams_system.tasks["alpha"], teams_system.tasks["beta"]
    assert alpha["name"] == beta["name"] == "etl" and alpha["task_id"] != beta["task_id"]
    assert (alpha["team"], beta["team"]) == ("alpha", "beta")
    assert alpha["submitted_by"].startswith("member-") and beta["submitted_by"].startswith("other-")
    # the name is taken in alpha alone
    again = teams_system.as_("member").post("/task/", {"repository": "127.0.0.1:1/x:1", "name": "etl"})
    assert again.status_code == 409 and again.json()["message"] == "name: a task named 'etl' already exists in team 'alpha'"


def test_lists_show_a_member_or_viewer_its_own_team_only(teams_system, runs):
    alpha_task, beta_task = teams_system.tasks["alpha"]["task_id"], teams_system.tasks["beta"]["task_id"]
    for kind in ("member", "viewer"):
        api = teams_system.as_(kind)
        assert alpha_task in ids(api.get("/task/")) and beta_task not in ids(api.get("/task/"))
        results = ids(api.get("/result/", params={"limit": 1000}))
        assert runs["alpha"] in results and runs["beta"] not in results
    other = teams_system.as_("other")
    assert ids(other.get("/task/")) & {alpha_task} == set()
    assert runs["alpha"] not in ids(other.get("/result/", params={"task_id": alpha_task}))


def test_admins_and_operators_see_every_team_or_the_one_they_pick(teams_system, runs):
    for kind in ("admin", "operator"):
        api = teams_system.as_(kind)
        assert {runs["alpha"], runs["beta"]} <= ids(api.get("/result/", params={"limit": 1000}))
        picked = ids(api.get("/result/", params={"limit": 1000}, headers={"X-Stevedore-Team": "beta"}))
        assert runs["beta"] in picked and runs["alpha"] not in picked
        assert ids(api.get("/result/", params={"team": "alpha", "limit": 1000})) & set(runs.values()) == \
            {runs["alpha"]}


def test_another_teams_things_are_404_as_unknown_ids_are(teams_system, runs):
    other = teams_system.as_("other")
    alpha = teams_system.as_("member")
    detail = alpha.details(runs["alpha"])[0]["detail_id"]
    for path in (f"/task/{teams_system.tasks['alpha']['task_id']}/", f"/result/{runs['alpha']}/",
                 f"/result/{runs['alpha']}/detail/", f"/result/{runs['alpha']}/detail/{detail}/logs/"):
        unknown = other.get(path.replace(runs["alpha"], "f" * 32).replace(
            teams_system.tasks["alpha"]["task_id"], "e" * 32))
        hidden = other.get(path)
        assert hidden.status_code == unknown.status_code == 404, (path, hidden.text)
        assert hidden.json()["error"] == "NOT_FOUND"
    # paging after another team's item is paging after an unknown one
    assert other.get("/result/", params={"after": runs["alpha"]}).status_code == 404
    # and a RUN may not wait for another team's run: refused as an unknown one is, saying nothing of it
    beta_task = teams_system.tasks["beta"]["task_id"]
    answers = [other.post(f"/task/{beta_task}/", {"operation": "RUN", "times": 1, "per_index": True,
                                                  "after": [{"result_id": result_id}]})
               for result_id in (runs["alpha"], "f" * 32)]
    assert [a.status_code for a in answers] == [400, 400], [a.text for a in answers]
    assert [a.json()["message"] for a in answers] == [
        f"after[0].result_id: no result {runs['alpha']}", f"after[0].result_id: no result {'f' * 32}"]


def test_an_idempotency_key_is_one_teams(teams_system):
    key = {"Idempotency-Key": f"nightly-{uuid.uuid4().hex[:6]}"}
    made = {}
    for team, kind in (("alpha", "member"), ("beta", "other")):
        api = teams_system.as_(kind)
        first = api.post(f"/task/{teams_system.tasks[team]['task_id']}/", {"operation": "RUN", "times": 1},
                         headers=key)
        again = api.post(f"/task/{teams_system.tasks[team]['task_id']}/", {"operation": "RUN", "times": 1},
                         headers=key)
        assert first.status_code == again.status_code == 202
        assert first.json()["result_id"] == again.json()["result_id"]
        made[team] = first.json()
    assert made["alpha"]["result_id"] != made["beta"]["result_id"]
    assert (made["alpha"]["team"], made["beta"]["team"]) == ("alpha", "beta")


def test_a_member_may_name_only_its_own_team(teams_system):
    member = teams_system.as_("member")
    assert member.get("/whoami/", headers={"X-Stevedore-Team": "alpha"}).json()["team"] == "alpha"
    refused = member.get("/task/", headers={"X-Stevedore-Team": "beta"})
    assert refused.status_code == 403 and refused.json()["message"].startswith("X-Stevedore-Team: ")
    assert member.get("/task/", params={"team": "beta"}).status_code == 403
    bad = teams_system.as_("admin").get("/task/", headers={"X-Stevedore-Team": "Not A Team"})
    assert bad.status_code == 400 and bad.json()["message"].startswith("X-Stevedore-Team: ")


def test_what_an_admin_makes_for_a_picked_team_is_that_teams(teams_system, test_images):
    admin = teams_system.as_("admin")
    made = admin.post("/task/", {"repository": test_images["ok"], "name": f"for-beta-{uuid.uuid4().hex[:6]}"},
                      headers={"X-Stevedore-Team": "beta"})
    assert made.status_code == 201 and made.json()["team"] == "beta" and made.json()["submitted_by"] == "admin"
    assert made.json()["id"] in ids(teams_system.as_("other").get("/task/"))
    assert teams_system.as_("member").get(f"/task/{made.json()['id']}/").status_code == 404


def test_whoami_tells_the_principal_its_role_and_the_teams_it_may_pick(teams_system):
    me = teams_system.as_("viewer").get("/whoami/").json()
    assert me["role"] == "viewer" and me["team"] == "alpha" and me["teams"] == ["alpha"] and not me["all_teams"]
    admin = teams_system.as_("admin").get("/whoami/").json()
    assert admin["principal"] == "admin" and admin["all_teams"]
    assert {"default", "alpha", "beta", "ops"} <= set(admin["teams"])


def test_a_token_of_bad_fields_is_refused_naming_the_field(teams_system):
    admin = teams_system.as_("admin")
    for body, field in (({"name": "x", "team": "Bad_Team", "role": "member"}, "team"),
                        ({"name": "x", "team": "ok", "role": "root"}, "role"),
                        ({"name": "\u0007", "team": "ok", "role": "member"}, "name"),
                        ({"name": "x", "team": "ok", "role": "member", "expires": 5}, "expires"),
                        ({"name": "x", "team": "ok", "role": "member", "extra": 1}, "extra"),
                        ({"name": "admin", "team": "alpha", "role": "member"}, "name"),
                        ({"name": "x", "team": f"nowhere-{uuid.uuid4().hex[:6]}", "role": "member"}, "team")):
        refused = admin.post("/token/", body)
        assert refused.status_code == 400 and refused.json()["message"].startswith(f"{field}: "), refused.text
    name = f"bob-{uuid.uuid4().hex[:6]}"
    assert admin.post("/token/", {"name": name, "team": "alpha", "role": "viewer"}).status_code == 201
    clash = admin.post("/token/", {"name": name, "team": "alpha", "role": "member"})
    assert clash.status_code == 409 and clash.json()["message"].startswith("role: ")


def cli(system, *args, token=None):
    environ = {key: value for key, value in os.environ.items() if not key.startswith("STEVEDORE_")}
    environ.update({"STEVEDORE_URL": system.url, "STEVEDORE_TOKEN": token or system.token,
                    "PYTHONPATH": ROOT})
    return subprocess.run([sys.executable, "-m", "stevedore_jobs.cli", *args], env=environ, capture_output=True,
                          text=True, timeout=60, stdin=subprocess.DEVNULL)


def test_tokens_made_listed_and_revoked_through_the_cli(teams_system):
    name = f"ci-bot-{uuid.uuid4().hex[:6]}"
    gamma = teams_system.api.post("/team/", {"name": "gamma"})
    assert gamma.status_code in (201, 409), gamma.text
    made = cli(teams_system, "token", "create", "--name", name, "--team", "gamma", "--role", "member",
               "--expires", "90d", "--json")
    assert made.returncode == 0, made.stderr
    token = json.loads(made.stdout)
    assert token["principal"] == name and token["team"] == "gamma" and token["status"] == "ACTIVE"
    assert 90 * 86400 - 60 < token["expires_at"] - token["created_at"] <= 90 * 86400
    shown = cli(teams_system, "token", "create", "--name", name, "--team", "gamma", "--role", "member")
    assert shown.returncode == 0 and "token       stv_" in shown.stdout and "not shown again" in shown.stderr

    listed = cli(teams_system, "token", "ls", "--team", "gamma", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert token["token_id"] in {row["token_id"] for row in rows}
    assert token["token"] not in listed.stdout and all("token" not in row for row in rows)
    table = cli(teams_system, "token", "ls")
    assert token["token_id"] in table.stdout and name in table.stdout

    me = cli(teams_system, "whoami", token=token["token"])
    assert me.returncode == 0 and "member" in me.stdout and "gamma" in me.stdout, me.stdout
    # a member makes no token
    refused = cli(teams_system, "token", "ls", token=token["token"])
    assert refused.returncode == 2 and "role: member may not GET /token/" in refused.stderr

    revoked = cli(teams_system, "token", "revoke", token["token_id"])
    assert revoked.returncode == 0 and "revoked" in revoked.stdout
    after = cli(teams_system, "whoami", token=token["token"])
    assert after.returncode == 2 and "authorization" in after.stderr and "401" in after.stderr
    status = {row["token_id"]: row["status"] for row in json.loads(cli(teams_system, "token", "ls", "--json").stdout)}
    assert status[token["token_id"]] == "REVOKED"


def first_refusal(url, token, since, timeout=5.0):
    """Seconds from ``since`` until ``url``'s gateway first answers 401 to ``token`` (polling it)."""
    deadline = since + timeout
    while time.monotonic() < deadline:
        if requests.get(url + "/whoami/", headers={"Authorization": f"Bearer {token}"}, timeout=5).status_code == 401:
            return time.monotonic() - since
        time.sleep(0.02)
    return None


def test_a_revoked_token_is_refused_by_both_gateways_within_a_second(teams_system):
    admin = teams_system.as_("admin")
    made = admin.post("/token/", {"name": f"leaver-{uuid.uuid4().hex[:6]}", "team": "alpha", "role": "member"})
    token = made.json()["token"]
    for url in (teams_system.url, teams_system.url2):  # each gateway holds the principal in its cache
        for _ in range(3):
            assert Api(url, token=token).get("/whoami/").status_code == 200
    # the second gateway's answer kept just now: without the broadcast it would take it for a second more
    assert Api(teams_system.url2, token=token).get("/whoami/").status_code == 200
    assert admin.delete(f"/token/{made.json()['token_id']}/").status_code == 204
    since = time.monotonic()
    delays = [first_refusal(url, token, since) for url in (teams_system.url, teams_system.url2)]
    assert all(delay is not None and delay <= 1.0 for delay in delays), delays
    assert delays[1] < 0.7, delays  # the broadcast, not the cache's time, told the second gateway
    # and for good
    time.sleep(1.2)
    assert all(Api(url, token=token).get("/whoami/").status_code == 401 for url in (teams_system.url, teams_system.url2))


def test_a_web_ui_session_of_a_principal_acts_as_it_and_ends_with_its_token(teams_system):
    admin = teams_system.as_("admin")
    made = admin.post("/token/", {"name": f"alice-{uuid.uuid4().hex[:6]}", "team": "alpha", "role": "viewer",
                                  "kind": "person"}).json()
    signed = requests.post(teams_system.url + "/ui/signin", data={"token": made["token"], "next": "/ui/tasks"},
                           allow_redirects=False, timeout=10)
    assert signed.status_code == 303
    cookies = {"stevedore_session": signed.cookies["stevedore_session"]}
    for url in (teams_system.url, teams_system.url2):
        me = requests.get(url + "/whoami/", cookies=cookies, timeout=10)
        assert me.status_code == 200 and me.json()["principal"] == made["principal"] and me.json()["role"] == "viewer"
    refused = requests.delete(teams_system.url + f"/result/{'a' * 32}/", cookies=cookies, timeout=10)
    assert refused.status_code == 403  # a viewer's session writes nothing
    assert admin.delete(f"/token/{made['token_id']}/").status_code == 204
    wait_until(lambda: all(requests.get(url + "/whoami/", cookies=cookies, timeout=10).status_code == 401
                           for url in (teams_system.url, teams_system.url2)), timeout=1.5, interval=0.05,
               what="the session to end with its token")


def test_a_token_needs_its_team_and_a_team_with_live_tokens_is_not_deleted(teams_system):
    admin = teams_system.as_("admin")
    team = f"leaving-{uuid.uuid4().hex[:6]}"
    refused = admin.post("/token/", {"name": f"early-{team}", "team": team, "role": "member"})
    assert refused.status_code == 400 and refused.json()["message"].startswith("team: no team "), refused.text
    assert admin.get(f"/team/{team}/").status_code == 404  # nothing made it meanwhile
    assert admin.post("/team/", {"name": team}).status_code == 201
    made = admin.post("/token/", {"name": f"bot-{team}", "team": team, "role": "member"})
    assert made.status_code == 201, made.text
    kept = admin.delete(f"/team/{team}/")
    assert kept.status_code == 409 and kept.json()["message"].startswith("name: ") \
        and "principals with live tokens" in kept.json()["message"], kept.text
    assert admin.delete(f"/token/{made.json()['token_id']}/").status_code == 204
    # nor while it has secrets: the team made again later under this name must not find their values
    secret = requests.put(f"{teams_system.url}/secret/kept/", json={"value": "old"}, timeout=30,
                          headers={"Authorization": f"Bearer {teams_system.token}", "X-Stevedore-Team": team})
    assert secret.status_code == 201, secret.text
    kept = admin.delete(f"/team/{team}/")
    assert kept.status_code == 409 and "secrets" in kept.json()["message"], kept.text
    gone = requests.delete(f"{teams_system.url}/secret/kept/", timeout=30,
                           headers={"Authorization": f"Bearer {teams_system.token}", "X-Stevedore-Team": team})
    assert gone.status_code == 204, gone.text
    assert admin.delete(f"/team/{team}/").status_code == 204
    assert admin.get(f"/team/{team}/").status_code == 404
    # default always exists: a token of it needs no POST /team/
    assert admin.post("/token/", {"name": f"dflt-{team}", "team": "default", "role": "viewer"}).status_code == 201


def test_secrets_are_their_teams_and_set_by_admins_and_members_only(teams_system):
    def put(kind, name, value="v"):
        return requests.put(f"{teams_system.url}/secret/{name}/", json={"value": value}, timeout=30,
                            headers={"Authorization": f"Bearer {teams_system.tokens[kind]}"})

    name = f"key-{uuid.uuid4().hex[:6]}"
    assert put("member", name).status_code == 201  # alpha's
    for kind in ("viewer", "operator"):
        refused = put(kind, name)
        assert refused.status_code == 403 and refused.json()["message"].startswith("role: "), refused.text
    other = teams_system.as_("other")  # a member of beta
    assert other.get(f"/secret/{name}/").status_code == 404
    assert name not in {s["name"] for s in other.get("/secret/").json()}
    beta_task = teams_system.tasks["beta"]["task_id"]
    run = other.post(f"/task/{beta_task}/", {"operation": "RUN", "times": 1, "secret_env": {"API_KEY": name}})
    assert run.status_code == 400 and run.json()["message"].startswith("secret_env.API_KEY: "), run.text
    assert teams_system.as_("member").get(f"/secret/{name}/").json()["team"] == "alpha"
