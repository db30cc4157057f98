"""The audit log end to end: a user's changes over HTTP, each listed by GET /audit/ with who, what, when and
from where; the system's own changes as ``system``; filters and paging; a refused change leaves nothing; the
retention sweep deletes old entries only.  Real RabbitMQ, PostgreSQL, Docker; a system of its own (its
audit sweep every second, schedules ticking in seconds).
"""
import json
import os
import subprocess
import sys
import time
import uuid

import pytest
import requests
from sqlalchemy import text

from tests.support import ROOT, Api, own_system, sign_in, wait_until

pytestmark = pytest.mark.e2e

# the CLI of this checkout (the installed ``stevedore`` script runs ``stevedore_jobs.cli:main`` the same way)
COMMAND = (sys.executable, "-m", "stevedore_jobs.cli")

SECRET = f"audit-secret-{uuid.uuid4().hex}"


@pytest.fixture(scope="module")
def audit_system(vhost_pipeline, request, test_images, docker_client):
    yield from own_system(request, vhost_pipeline, "audit", {
        "SCHEDULE_ALLOW_SECONDS": "on", "SCHEDULE_INTERVAL": "0.5", "AUDIT_SWEEP_INTERVAL": "1",
        "AUDIT_RETENTION_DAYS": "30", "DEADLINE_INTERVAL": "0.5"}, runners=2, docker_client=docker_client)


def audit(api, **query):
    response = api.get("/audit/", params={"limit": 1000, **query})
    assert response.status_code == 200, response.text
    return response.json()


def entries(api, action, target_id):
    return [e for e in audit(api, action=action) if e["target_id"] == target_id]


def one(api, action, target_id, principal="admin"):
    """The one entry of ``action`` on ``target_id``, checked for who, when and from where."""
    found = entries(api, action, target_id)
    assert len(found) == 1, (action, target_id, found)
    entry = found[0]
    assert entry["principal"] == principal and entry["team"] == "default"
    if principal == "admin":
        assert entry["role"] == "admin" and entry["address"] == "127.0.0.1"
    else:
        assert entry["role"] == "system" and entry["address"] is None
    assert time.time() - 600 < entry["at"] <= time.time() + 5
    assert entry["id"] == entry["audit_id"] and len(entry["id"]) == 32
    return entry


def patch(api, path, body):
    return api.http.patch(api.base_url + path, json=body, timeout=30)


def test_each_change_over_http_is_listed_with_who_what_when_and_from_where(audit_system, test_images):
    api = audit_system.api
    ok = api.register(test_images["ok"], name=f"audit-ok-{uuid.uuid4().hex[:6]}")
    sleep = api.register(test_images["sleep"], name=f"audit-sleep-{uuid.uuid4().hex[:6]}")
    fail = api.register(test_images["fail"], name=f"audit-fail-{uuid.uuid4().hex[:6]}")
    assert one(api, "task.register", ok["task_id"])["summary"] == {
        "name": ok["name"], "repository": test_images["ok"], "private": False}

    # RUN (a secret in its env never reaches the log), then DELETE of the ended run
    done = api.run(ok["task_id"], env={"API_KEY": SECRET})
    api.wait_result(done)
    run = one(api, "result.run", done)
    assert run["summary"]["task_id"] == ok["task_id"] and run["summary"]["times"] == 1
    assert run["outcome"] == "QUEUED" and run["target_type"] == "result"
    assert api.delete(f"/result/{done}/").status_code == 204
    assert one(api, "result.delete", done)["summary"]["expired"] is False

    # PATCH, CANCEL of one execution, CANCEL of the run
    going = api.run(sleep["task_id"], times=3, parallelism=1, env={"SLEEP": "30"})
    changed = patch(api, f"/result/{going}/", {"priority": 7})
    assert changed.status_code == 200, changed.text
    assert one(api, "result.change", going)["summary"] == {"before": {"priority": 5}, "after": {"priority": 7}}
    detail = api.details(going)[2]
    assert api.post(f"/result/{going}/detail/{detail['detail_id']}/", {"operation": "CANCEL"}).status_code == 202
    cancelled = one(api, "detail.cancel", detail["detail_id"])
    assert cancelled["summary"] == {"result_id": going, "index": 2} and cancelled["outcome"] == "CANCELLED"
    assert api.post(f"/result/{going}/", {"operation": "CANCEL"}).status_code == 202
    assert one(api, "result.cancel", going)["summary"] == {"task_id": sleep["task_id"]}

    # RERUN_FAILED, and a failure policy's stop (the system's)
    failed = api.run(fail["task_id"], times=2, max_failures=1)
    assert api.wait_result(failed)["status"] == "ERROR"
    stop = one(api, "result.stop", failed, principal="system")
    assert stop["summary"] == {"task_id": fail["task_id"], "ended_by": "max_failures"}
    rerun = api.post(f"/result/{failed}/", {"operation": "RERUN_FAILED"})
    assert rerun.status_code == 202, rerun.text
    assert one(api, "result.rerun", rerun.json()["result_id"])["summary"]["rerun_of"] == failed

    # schedules: create, change, run now, a tick (the system's), delete
    made = api.post("/schedule/", {"task_id": ok["task_id"], "cron": "0 0 1 1 *", "run": {"times": 1,
                                   "env": {"TOKEN": SECRET}}, "name": "nightly"})
    assert made.status_code == 201, made.text
    schedule_id = made.json()["schedule_id"]
    assert one(api, "schedule.create", schedule_id)["summary"]["name"] == "nightly"
    assert patch(api, f"/schedule/{schedule_id}/", {"cron": "* * * * * */2"}).status_code == 200
    assert one(api, "schedule.change", schedule_id)["summary"]["changed"] == ["cron"]
    now_run = api.post(f"/schedule/{schedule_id}/", {"operation": "RUN"})
    assert now_run.status_code == 202, now_run.text
    assert one(api, "schedule.run", schedule_id)["summary"]["result_id"] == now_run.json()["result_id"]
    tick = wait_until(lambda: entries(api, "schedule.fire", schedule_id), timeout=30, what="a tick")[0]
    assert tick["principal"] == "system" and tick["summary"]["result_id"]
    assert patch(api, f"/schedule/{schedule_id}/", {"suspend": True}).status_code == 200
    assert api.delete(f"/schedule/{schedule_id}/").status_code == 204
    one(api, "schedule.delete", schedule_id)

    # IMPORT, DELETE of a task
    assert api.post(f"/task/{ok['task_id']}/", {"operation": "IMPORT"}).status_code == 202
    one(api, "task.import", ok["task_id"])
    api.wait_task(ok["task_id"])
    for result in api.get("/result/", params={"task_id": ok["task_id"]}).json():
        api.wait_result(result["result_id"])
    assert api.delete(f"/task/{ok['task_id']}/").status_code == 204
    assert one(api, "task.delete", ok["task_id"])["summary"]["name"] == ok["name"]

    # the web UI's sign-in and sign-out
    cookie = sign_in(audit_system, audit_system.token)
    out = requests.post(audit_system.url + "/ui/signout", cookies={"stevedore_session": cookie},
                        allow_redirects=False, timeout=10)
    assert out.status_code == 303
    signed_in = [e for e in audit(api, action="session.sign_in")]
    signed_out = [e for e in audit(api, action="session.sign_out")]
    assert len(signed_in) == 1 and len(signed_out) == 1
    assert signed_in[0]["target_id"] == signed_out[0]["target_id"] and cookie not in str(signed_in)
    assert signed_out[0]["address"] == "127.0.0.1"
    assert signed_in[0]["principal"] == signed_out[0]["principal"] == "admin"
    # a principal's sign-in and sign-out are its own (not the configured admin's)
    made = api.post("/token/", {"name": "audit-ui-viewer", "team": "default", "role": "viewer"})
    assert made.status_code == 201, made.text
    viewer = sign_in(audit_system, made.json()["token"])
    requests.post(audit_system.url + "/ui/signout", cookies={"stevedore_session": viewer}, allow_redirects=False,
                  timeout=10)
    for action in ("session.sign_in", "session.sign_out"):
        [entry] = [e for e in audit(api, action=action) if e["principal"] == "audit-ui-viewer"]
        assert (entry["role"], entry["address"]) == ("viewer", "127.0.0.1"), entry

    # nothing secret anywhere in the log
    everything = api.get("/audit/", params={"limit": 1000}).text
    assert SECRET not in everything and audit_system.token not in everything and cookie not in everything
    assert made.json()["token"] not in everything and viewer not in everything


def test_a_refused_change_leaves_no_entry(audit_system, test_images):
    api = audit_system.api
    task = api.register(test_images["sleep"], name=f"audit-refused-{uuid.uuid4().hex[:6]}")
    before = audit(api)
    going = api.run(task["task_id"], env={"SLEEP": "30"})
    assert api.post(f"/task/{task['task_id']}/", {"operation": "RUN", "times": 0}).status_code == 400
    assert api.post("/task/", {"repository": test_images["ok"], "name": task["name"]}).status_code == 409
    assert api.delete(f"/result/{going}/").status_code == 409                  # still running
    assert api.delete(f"/task/{task['task_id']}/").status_code == 409          # has an active run
    assert patch(api, f"/result/{going}/", {"priority": "high"}).status_code == 400
    assert api.delete(f"/schedule/{uuid.uuid4().hex}/").status_code == 404
    assert api.post(f"/result/{going}/", {"operation": "CANCEL"}).status_code == 202
    api.wait_result(going)
    assert api.post(f"/result/{going}/", {"operation": "CANCEL"}).status_code == 409  # ended
    assert patch(api, f"/result/{going}/", {"priority": 1}).status_code == 409
    # (the system's own changes of the other tests' runs may come meanwhile)
    new = [e for e in audit(api, principal="admin") if e["id"] not in {b["id"] for b in before}]
    assert sorted(e["action"] for e in new) == ["result.cancel", "result.run"], new


def test_filters_and_paging_newest_first(audit_system, test_images):
    api = audit_system.api
    start = time.time() - 1
    tasks = [api.register(test_images["ok"], name=f"audit-page-{i}-{uuid.uuid4().hex[:6]}", wait=False)
             for i in range(5)]
    everything = audit(api)
    ats = [e["at"] for e in everything]
    assert ats == sorted(ats, reverse=True)

    paged, path = [], "/audit/?limit=2&action=task.register"
    while path:
        response = api.get(path)
        assert response.status_code == 200, response.text
        assert len(response.json()) <= 2
        paged += response.json()
        link = response.headers.get("Link")
        path = link[1:link.index(">")] if link else None
    assert [e["id"] for e in paged] == [e["id"] for e in audit(api, action="task.register")]
    assert {t["task_id"] for t in tasks} <= {e["target_id"] for e in paged}

    mine = audit(api, action="task.register", since=start)
    assert {e["target_id"] for e in mine} == {t["task_id"] for t in tasks}
    assert audit(api, action="task.register", until=start) == [
        e for e in audit(api, action="task.register") if e["at"] < start]
    assert [e["target_id"] for e in audit(api, target_type="task", target_id=tasks[0]["task_id"])] == [
        tasks[0]["task_id"]]
    assert all(e["principal"] == "system" for e in audit(api, principal="system"))
    assert audit(api, principal="nobody-such") == [] and audit(api, team="other-team") == []
    assert audit(api, team="default") and all(e["team"] == "default" for e in audit(api, team="default"))

    for query, field in (({"since": "yesterday"}, "since"), ({"action": "DROP TABLE"}, "action"),
                         ({"team": "Not_A_Team"}, "team"), ({"limit": "0"}, "limit")):
        response = api.get("/audit/", params=query)
        assert response.status_code == 400 and response.json()["message"].startswith(f"{field}:"), response.text
    response = api.get("/audit/", params={"after": uuid.uuid4().hex})
    assert response.status_code == 404 and response.json()["message"].startswith("after:")


def test_the_retention_sweep_deletes_only_entries_older_than_the_setting(audit_system):
    now = time.time()
    old = [uuid.uuid4().hex for _ in range(3)]
    young = uuid.uuid4().hex
    with audit_system.engine.begin() as conn:
        for entry_id, age_days in [*((i, 31 + n) for n, i in enumerate(old)), (young, 29)]:
            conn.execute(text("INSERT INTO audit_log (id, at, principal, role, team, action, target_type, target_id)"
                              " VALUES (:id, :at, 'admin', 'admin', 'default', 'task.delete', 'task', :id)"),
                         {"id": entry_id, "at": now - age_days * 86400})

    def kept():
        with audit_system.engine.connect() as conn:
            return {row[0] for row in conn.execute(text("SELECT id FROM audit_log WHERE id = ANY(:ids)"),
                                                   {"ids": [*old, young]})}

    wait_until(lambda: kept() == {young}, timeout=30, what="the old entries to be swept")
    listed = audit(audit_system.api, target_type="task", target_id=young)
    assert [e["id"] for e in listed] == [young]


def stevedore(system, *args):
    environ = {key: value for key, value in os.environ.items() if not key.startswith("STEVEDORE_")}
    environ.update({"STEVEDORE_URL": system.url, "STEVEDORE_TOKEN": system.token})
    return subprocess.run([*COMMAND, *args], env=environ, capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL, cwd=ROOT, check=False)


def test_stevedore_audit_ls_lists_and_filters_the_log(audit_system, test_images):
    task = audit_system.api.register(test_images["ok"], name=f"audit-cli-{uuid.uuid4().hex[:6]}", wait=False)
    proc = stevedore(audit_system, "audit", "ls", "--action", "task.register", "--since", "10m")
    assert proc.returncode == 0, proc.stderr
    header, *lines = proc.stdout.splitlines()
    assert header.split()[:5] == ["TIME", "PRINCIPAL", "ROLE", "ADDRESS", "ACTION"]
    mine = [line for line in lines if task["task_id"] in line]
    assert len(mine) == 1 and "admin" in mine[0] and "127.0.0.1" in mine[0] and "task.register" in mine[0]
    assert all("task.register" in line for line in lines)

    proc = stevedore(audit_system, "audit", "ls", "--target", task["task_id"], "--json")
    assert proc.returncode == 0, proc.stderr
    [entry] = json.loads(proc.stdout)
    assert entry["action"] == "task.register" and entry["summary"]["name"] == task["name"]

    proc = stevedore(audit_system, "audit", "ls", "--since", "2026-01-01", "--limit", "1", "--json")
    assert proc.returncode == 0 and len(json.loads(proc.stdout)) == 1, proc.stderr
    proc = stevedore(audit_system, "audit", "ls", "--action", "DROP TABLE")
    assert proc.returncode == 2 and "action:" in proc.stderr and "400" in proc.stderr, proc.stderr
    proc = stevedore(audit_system, "audit", "ls", "--since", "last tuesday")
    assert proc.returncode == 2 and "not a time" in proc.stderr


def test_tokens_teams_and_tes_tasks_are_listed_with_the_real_principal(audit_system, test_images):
    """Issue 18's seams: a token's creation and revocation (the registry's), a team's creation, change
    and deletion (the scheduler's), a TES task's creation and cancel by a member's token (as result.run
    and result.cancel with ``{"tes": true}``); an operator reads the log, a member is refused."""
    api = audit_system.api
    team, gone = f"aud-{uuid.uuid4().hex[:6]}", f"aud-gone-{uuid.uuid4().hex[:6]}"
    for name in (team, gone):
        assert api.post("/team/", {"name": name}).status_code == 201
    # nothing of team starts: its TES task stays queued for its cancel
    assert patch(api, f"/team/{team}/", {"max_running": 0}).status_code == 200
    assert api.delete(f"/team/{gone}/").status_code == 204
    bot = f"bot-{uuid.uuid4().hex[:6]}"
    made = api.post("/token/", {"name": bot, "team": team, "role": "member"})
    assert made.status_code == 201, made.text
    token = made.json()
    operator = api.post("/token/", {"name": f"op-{bot}", "team": "default", "role": "operator"})
    assert operator.status_code == 201, operator.text
    member, reader = (Api(audit_system.url, token=t) for t in (token["token"], operator.json()["token"]))

    created = member.post("/ga4gh/tes/v1/tasks", {"name": "audited", "executors": [
        {"image": test_images["ok"], "command": ["true"], "env": {"TOKEN": SECRET}}]})
    assert created.status_code == 200, created.text
    tes_id = created.json()["id"]
    cancelled = member.post(f"/ga4gh/tes/v1/tasks/{tes_id}:cancel", {})
    assert cancelled.status_code == 200, cancelled.text
    assert api.delete(f"/token/{token['token_id']}/").status_code == 204

    def only(action, target_id):
        found = entries(reader, action, target_id)  # read by the operator
        assert len(found) == 1, (action, target_id, found)
        assert found[0]["address"] == "127.0.0.1" and time.time() - 600 < found[0]["at"] <= time.time() + 5
        return found[0]

    for action, target_id in (("team.create", team), ("team.change", team), ("team.create", gone),
                              ("team.delete", gone), ("token.create", token["token_id"]),
                              ("token.revoke", token["token_id"])):
        entry = only(action, target_id)
        assert (entry["principal"], entry["role"]) == ("admin", "admin"), entry
    assert only("team.change", team)["summary"] == {"max_running": 0}
    assert only("team.create", gone)["team"] == gone
    issued = only("token.create", token["token_id"])
    assert issued["team"] == team and issued["target_type"] == "token"
    assert issued["summary"]["principal"] == bot and issued["summary"]["role"] == "member"
    assert only("token.revoke", token["token_id"])["summary"]["principal"] == bot
    for action in ("result.run", "result.cancel"):
        entry = only(action, tes_id)
        assert (entry["principal"], entry["role"], entry["team"]) == (bot, "member", team), entry
        assert entry["summary"]["tes"] is True and entry["target_type"] == "result"
    assert only("result.cancel", tes_id)["outcome"] in ("CANCELLED", "QUEUED")

    # who reads the log: an admin or operator; a member is refused (before it was revoked, as another now)
    other = api.post("/token/", {"name": f"m-{bot}", "team": "default", "role": "member"}).json()["token"]
    refused = Api(audit_system.url, token=other).get("/audit/")
    assert refused.status_code == 403 and refused.json()["message"].startswith("role: "), refused.text
    everything = reader.get("/audit/", params={"limit": 1000}).text
    assert SECRET not in everything and token["token"] not in everything
