"""Whose is it, end to end (issue 18): every event and webhook about a team's object says its ``team`` and
``submitted_by``, the runners' too; what an admin or operator makes of another team's object is that team's;
a team a request picks must exist.

A subscriber of every event on the teams system's broker (tests/e2e/conftest.py ``teams_system``) watches
a member of team ``alpha`` register a task, run it (with live output and a webhook), cancel and delete runs,
run a schedule and delete the task; then an admin acting for ``beta`` runs alpha's task.
"""
import json
import uuid

import pytest
from nameko.events import event_handler

from shared import events
from shared.messages import EVENTS
from tests.support import WebhookReceiver, wait_until

pytestmark = pytest.mark.e2e

NOT_A_TEAMS = {events.BACKBONE_PROBE, events.TOKEN_REVOKED}  # docs/events.md: about no team's object
TEAM = "X-Stevedore-Team"


def subscriber_of_every_event():
    """A nameko service with a handler of each event about a team's object; ``seen``: (event, payload)."""
    seen = []
    methods = {"name": f"team_events_{uuid.uuid4().hex[:6]}", "seen": seen}
    for source, name in EVENTS:
        if name in NOT_A_TEAMS:
            continue

        def handle(self, payload, name=name):
            if name == events.EXECUTION_REPORTS:  # a runner's coalesced starts and ends: each as its own
                seen.extend((item["event"], item["report"]) for item in payload["reports"])
            else:
                seen.append((name, payload))

        methods[f"on_{name}"] = event_handler(source, name)(handle)
    return type("EverySubscriber", (), methods), seen


@pytest.fixture
def watched(container_factory, teams_system):
    """The events of the teams system from now on, as (event, payload)."""
    service, seen = subscriber_of_every_event()
    container = container_factory(service, {"AMQP_URI": teams_system.amqp_uri})
    container.start()
    return seen


def principal(api):
    return api.get("/whoami/").json()["principal"]


def about(seen, ids):
    """The events whose payload names one of ``ids`` (a task, run, execution or schedule of the test)."""
    keys = ("task_id", "result_id", "detail_id", "schedule_id")
    return [(name, payload) for name, payload in seen if any(payload.get(key) in ids for key in keys)]


def wait_for(seen, ids, names, timeout=60):
    """Until an event of each of ``names`` about ``ids`` was seen; the events about them."""
    def arrived():
        got = about(seen, ids)
        return got if set(names) <= {name for name, _ in got} else None

    try:
        return wait_until(arrived, timeout=timeout, what=f"events {sorted(names)}")
    except AssertionError:
        raise AssertionError(f"missing {sorted(set(names) - {n for n, _ in about(seen, ids)})}") from None


def owners(got):
    """{(team, submitted_by)} of the events ``got``, with the events that say otherwise."""
    return {(payload.get("team"), payload.get("submitted_by")) for _, payload in got}


def test_every_event_and_the_webhook_of_a_members_work_say_its_team_and_principal(
        teams_system, watched, test_images):
    member = teams_system.as_("member")
    me = principal(member)
    task = member.register(test_images["ok"], name=f"watched-{uuid.uuid4().hex[:6]}")
    ids = {task["task_id"]}
    with WebhookReceiver() as receiver:
        # output while it runs (execution_output), two executions, a webhook at the end
        result_id = member.run(task["task_id"], times=2, callback_url=receiver.url,
                               command=["sh", "-c", "echo one; sleep 2; echo two; sleep 1"])
        assert member.wait_result(result_id)["status"] == "COMPLETE"
        wait_until(lambda: receiver.received, timeout=30, what="the webhook")
    body = json.loads(receiver.received[0]["body"])
    assert (body["result_id"], body["team"], body["submitted_by"]) == (result_id, "alpha", me)
    ids |= {result_id} | {d["detail_id"] for d in member.details(result_id)}

    # a run cancelled execution by execution, then whole, then deleted
    sleeper = member.run(task["task_id"], times=2, command=["sleep", "30"])
    first = member.details(sleeper)[0]["detail_id"]
    assert member.post(f"/result/{sleeper}/detail/{first}/", {"operation": "CANCEL"}).status_code == 202
    assert member.post(f"/result/{sleeper}/", {"operation": "CANCEL"}).status_code == 202
    member.wait_result(sleeper)
    ids |= {sleeper} | {d["detail_id"] for d in member.details(sleeper)}
    assert member.delete(f"/result/{sleeper}/").status_code == 204

    # a schedule of the task, run now, and then the task deleted with it
    made = member.post("/schedule/", {"task_id": task["task_id"], "cron": "0 0 1 1 *", "suspend": True,
                                      "run": {"times": 1}})
    assert made.status_code == 201, made.text
    schedule = made.json()
    assert (schedule["team"], schedule["submitted_by"]) == ("alpha", me)
    fired = member.post(f"/schedule/{schedule['schedule_id']}/", {"operation": "RUN"})
    assert fired.status_code == 202, fired.text
    member.wait_result(fired.json()["result_id"])
    ids |= {schedule["schedule_id"], fired.json()["result_id"]}
    ids |= {d["detail_id"] for d in member.details(fired.json()["result_id"])}
    assert member.delete(f"/schedule/{schedule['schedule_id']}/").status_code == 204
    assert member.delete(f"/task/{task['task_id']}/").status_code == 204

    got = wait_for(watched, ids, {
        "task_submitted", "task_imported", "result_submitted", "executions_queued", "execution_started",
        "execution_output", "execution_finished", "result_finished", "execution_cancel_requested",
        "result_cancelled", "result_deleted", "schedule_fired", "task_deleted"})
    wait_until(lambda: len([1 for name, p in about(watched, ids) if name == "execution_finished"
                            and p["detail_id"] in {d["detail_id"] for d in member.details(result_id)}]) == 2,
               timeout=30, what="both executions' ends")
    got = about(watched, ids)
    assert owners(got) == {("alpha", me)}, [(name, p.get("team"), p.get("submitted_by")) for name, p in got
                                            if (p.get("team"), p.get("submitted_by")) != ("alpha", me)]
    # the runners' events of the first run: each execution's start, output and end say whose run it is
    run_events = {name for name, p in got if p.get("detail_id") in ids and name.startswith("execution_")}
    assert {"execution_started", "execution_output", "execution_finished"} <= run_events


def test_a_task_that_failed_to_import_says_whose_it_is(teams_system, watched):
    member = teams_system.as_("member")
    task = member.register("127.0.0.1:1/nothing-here:1", name=f"broken-{uuid.uuid4().hex[:6]}", timeout=120)
    assert task["status"] == "ERROR"
    [(_, failed)] = [(n, p) for n, p in wait_for(watched, {task["task_id"]}, {"task_import_failed"})
                     if n == "task_import_failed"]
    assert (failed["team"], failed["submitted_by"]) == ("alpha", principal(member))


def test_an_admin_acting_for_another_team_runs_a_task_for_the_tasks_team_under_its_quota(teams_system, watched):
    admin = teams_system.as_("admin")
    alpha_task = teams_system.tasks["alpha"]["task_id"]
    for picked in ({TEAM: "beta"}, {}):  # acting for beta, and for its own team (default)
        answer = admin.post(f"/task/{alpha_task}/", {"operation": "RUN", "times": 1}, headers=picked)
        assert answer.status_code == 202, answer.text
        result = answer.json()
        assert (result["team"], result["submitted_by"]) == ("alpha", "admin"), picked
        # alpha's member sees it as its team's run, beta's does not
        assert teams_system.as_("member").get(f"/result/{result['result_id']}/").status_code == 200
        assert teams_system.as_("other").get(f"/result/{result['result_id']}/").status_code == 404
        admin.wait_result(result["result_id"])
        got = wait_for(watched, {result["result_id"]}, {"result_submitted", "result_finished"})
        assert owners(got) == {("alpha", "admin")}

    # alpha's quota applies to it, not beta's (which has none)
    patched = admin.http.patch(f"{teams_system.url}/team/alpha/", json={"max_queued": 1}, timeout=30)
    assert patched.status_code == 200, patched.text
    try:
        refused = admin.post(f"/task/{alpha_task}/", {"operation": "RUN", "times": 2}, headers={TEAM: "beta"})
        assert refused.status_code == 409, refused.text
        assert refused.json()["message"].startswith("times: 2 executions are more than team alpha's max_queued")
    finally:
        admin.http.patch(f"{teams_system.url}/team/alpha/", json={"max_queued": None}, timeout=30)

    # a schedule of alpha's task made acting for beta is alpha's, and so are its runs
    made = admin.post("/schedule/", {"task_id": alpha_task, "cron": "0 0 1 1 *", "suspend": True,
                                     "run": {"times": 1}}, headers={TEAM: "beta"})
    assert made.status_code == 201, made.text
    schedule = made.json()
    try:
        assert (schedule["team"], schedule["submitted_by"]) == ("alpha", "admin")
        fired = admin.post(f"/schedule/{schedule['schedule_id']}/", {"operation": "RUN"}, headers={TEAM: "beta"})
        assert fired.status_code == 202 and fired.json()["team"] == "alpha", fired.text
        admin.wait_result(fired.json()["result_id"])
    finally:
        assert admin.delete(f"/schedule/{schedule['schedule_id']}/").status_code == 204


def test_a_team_picked_that_does_not_exist_is_400_naming_the_header_or_parameter(teams_system):
    nope = f"nope-{uuid.uuid4().hex[:6]}"
    for kind in ("admin", "operator"):
        api = teams_system.as_(kind)
        for path in ("/task/", "/result/", "/schedule/", "/secret/", "/whoami/"):
            answer = api.get(path, headers={TEAM: nope})
            assert answer.status_code == 400, (kind, path, answer.text)
            assert answer.json() == {"error": "VALIDATION_ERROR",
                                     "message": f"{TEAM}: no team '{nope}' (GET /team/ lists them)"}
        listed = api.get("/result/", params={"team": nope})
        assert listed.status_code == 400 and listed.json()["message"].startswith("team: no team")
    admin = teams_system.as_("admin")
    name = f"made-in-{nope}"
    refused = admin.post("/task/", {"repository": "127.0.0.1:1/x:1", "name": name}, headers={TEAM: nope})
    assert refused.status_code == 400 and refused.json()["message"].startswith(f"{TEAM}: ")
    assert admin.http.put(f"{teams_system.url}/secret/k/", json={"value": "v"}, headers={TEAM: nope},
                          timeout=30).status_code == 400
    assert name not in {t["name"] for t in admin.get("/task/", params={"limit": 1000}).json()}
    # a member naming it is refused as for any team not its own
    assert teams_system.as_("member").get("/task/", headers={TEAM: nope}).status_code == 403

    # made: found at once (a no is never kept); deleted: 400 again within a second
    assert admin.post("/team/", {"name": nope}).status_code == 201
    assert admin.get("/task/", headers={TEAM: nope}).json() == []
    assert admin.delete(f"/team/{nope}/").status_code == 204
    wait_until(lambda: admin.get("/task/", headers={TEAM: nope}).status_code == 400, timeout=3,
               what="the deleted team to be refused")
