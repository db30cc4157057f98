"""Schedules on the real system: two scheduler replicas, real runners, RabbitMQ, PostgreSQL and Docker.

Ticks every few seconds through the testing setting SCHEDULE_ALLOW_SECONDS (a sixth cron field, seconds).
"""
import json
import time
import uuid
from typing import ClassVar

import pytest
import requests
from nameko.events import event_handler
from nameko.testing.services import entrypoint_waiter
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text

from tests.support import WebhookReceiver, wait_until

pytestmark = pytest.mark.e2e

SCHEDULERS = ("scheduler", "scheduler-2")


def sql(system, query, **params):
    with system.engine.connect() as conn:
        return conn.execute(text(query), params).all()


def add(api, task, cron="* * * * * */2", **fields):
    body = {"task_id": task["task_id"], "cron": cron, "run": {"times": 1}, **fields}
    response = api.post("/schedule/", body)
    assert response.status_code == 201, response.text
    assert response.headers["Location"] == f"/schedule/{response.json()['schedule_id']}/"
    return response.json()


def patch(api, schedule_id, body):
    response = api.http.patch(f"{api.base_url}/schedule/{schedule_id}/", json=body, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def fires(api, schedule_id):
    return api.get(f"/schedule/{schedule_id}/").json()["fires"]


def fired_by_replica(system):
    total = {}
    for label in SCHEDULERS:
        body = requests.get(system.metrics_url(label), timeout=10).text
        for family in text_string_to_metric_families(body):
            for sample in family.samples:
                if sample.name == "stevedore_schedule_fires_total":
                    total.setdefault(label, {})[sample.labels["outcome"]] = sample.value
    return total


def test_a_schedule_fires_exactly_once_per_tick_with_two_scheduler_replicas(sched_system):
    api = sched_system.api
    before = fired_by_replica(sched_system)
    schedule = add(api, sched_system.tasks["ok"], cron="* * * * * */2", run={"times": 1, "env": {"N": "1"}})
    assert schedule["next_run_at"] > time.time() - 1 and schedule["concurrency_policy"] == "Allow"
    wait_until(lambda: len([f for f in fires(api, schedule["schedule_id"]) if f["outcome"] == "FIRED"]) >= 5,
               timeout=40, what="five ticks fired")
    patch(api, schedule["schedule_id"], {"suspend": True})
    time.sleep(1.5)  # a fire in flight when suspended commits before this
    rows = sql(sched_system, "SELECT scheduled_for, result_id, missed FROM schedule_fires "
                             "WHERE schedule_id = :s AND NOT manual ORDER BY scheduled_for",
               s=schedule["schedule_id"])
    ticks = [row[0] for row in rows]
    assert len(ticks) == len(set(ticks)) >= 5  # no tick twice
    # every tick accounted for: fired, or (a timer round more than a tick late on a loaded machine) passed
    # over as missed by the fire after it
    assert len(ticks) + sum(row[2] for row in rows) == round((ticks[-1] - ticks[0]) / 2) + 1, rows
    results = api.get("/result/", params={"schedule_id": schedule["schedule_id"], "limit": 1000}).json()
    assert sorted(r["result_id"] for r in results) == sorted(row[1] for row in rows)
    assert all(r["schedule_id"] == schedule["schedule_id"] and r["params"]["env"] == {"N": "1"} for r in results)
    shown = api.get(f"/schedule/{schedule['schedule_id']}/").json()
    assert shown["suspend"] is True and shown["next_run_at"] is None
    assert shown["counts"]["fired"] == len(rows) and shown["last_result_id"] in {r[1] for r in rows}
    # both replicas ran their timers; together they fired each tick once
    after = fired_by_replica(sched_system)
    fired = sum(after[label]["fired"] - before.get(label, {}).get("fired", 0) for label in SCHEDULERS)
    assert fired == len(rows)
    for result in results[:3]:
        assert api.wait_result(result["result_id"])["status"] == "COMPLETE"


def test_forbid_skips_ticks_while_the_previous_run_is_unfinished_and_replace_cancels_it(sched_system):
    api = sched_system.api
    schedule = add(api, sched_system.tasks["sleep"], cron="* * * * * */2", concurrency_policy="Forbid",
                   run={"times": 1, "env": {"SLEEP": "120"}})
    sid = schedule["schedule_id"]
    wait_until(lambda: len([f for f in fires(api, sid) if f["outcome"] == "SKIPPED"]) >= 2, timeout=40,
               what="two ticks skipped")
    shown = fires(api, sid)
    started = [f for f in shown if f["outcome"] == "FIRED"]
    assert len(started) == 1
    first = started[0]["result_id"]
    assert api.get(f"/result/{first}/").json()["status"] in ("QUEUED", "RUNNING")
    skipped = [f for f in shown if f["outcome"] == "SKIPPED"]
    assert all(f"previous run {first} is still" in f["reason"] and f["result_id"] is None for f in skipped)
    # run now under Forbid: refused while the previous run goes on
    refused = api.post(f"/schedule/{sid}/", {"operation": "RUN"})
    assert refused.status_code == 409 and "concurrency_policy" in refused.json()["message"]

    patch(api, sid, {"concurrency_policy": "Replace"})
    wait_until(lambda: len([f for f in fires(api, sid) if f["outcome"] == "FIRED"]) >= 2, timeout=20,
               what="a replacing fire")
    patch(api, sid, {"suspend": True})
    replaced = api.wait_result(first, timeout=40)
    assert replaced["cancel_requested"] is True and replaced["status"] in ("KILLED", "CANCELLED")
    fired = [f["result_id"] for f in fires(api, sid) if f["outcome"] == "FIRED"]
    latest = fired[0]
    assert latest != first
    time.sleep(1)
    assert api.get(f"/result/{latest}/").json()["status"] in ("QUEUED", "RUNNING")
    # every run but the latest was replaced (cancelled): one unfinished run at a time
    for result_id in fired[1:]:
        assert api.wait_result(result_id, timeout=40)["cancel_requested"] is True
    assert api.post(f"/result/{latest}/", {"operation": "CANCEL"}).status_code == 202


def test_schedulers_down_across_ticks_catch_up_once_or_miss_past_the_deadline(sched_system):
    api = sched_system.api
    catch_up = add(api, sched_system.tasks["ok"], cron="* * * * * */2")
    wait_until(lambda: fires(api, catch_up["schedule_id"]), timeout=20, what="the schedule fired once")
    # one tick a minute, 3 s from now: it falls while the schedulers are down
    second = (int(time.time()) + 3) % 60
    strict = add(api, sched_system.tasks["ok"], cron=f"* * * * * {second}", starting_deadline_seconds=1)
    ids = (catch_up["schedule_id"], strict["schedule_id"])
    for label in SCHEDULERS:
        sched_system.kill(label)
    down_at = time.time()
    time.sleep(7.5)  # three or four ticks of the first pass with no scheduler
    sched_system.start(*SCHEDULERS)

    def caught_up():
        now = {s: [f for f in fires(api, s) if f["fired_at"] > down_at + 7] for s in ids}
        return now if all(now.values()) else None

    after = wait_until(caught_up, timeout=60, what="the first fires after the restart")
    for s in ids:
        patch(api, s, {"suspend": True})
    late = after[catch_up["schedule_id"]][-1]
    assert late["outcome"] == "FIRED" and late["missed"] >= 2, late  # one run for all the missed ticks
    missed = after[strict["schedule_id"]][-1]
    assert missed["outcome"] == "MISSED" and missed["result_id"] is None, missed
    assert "starting_deadline_seconds 1" in missed["reason"]
    counts = api.get(f"/schedule/{strict['schedule_id']}/").json()["counts"]
    # (a later tick may be MISSED too: one found more than 1 s late on a loaded machine)
    assert counts["fired"] == 0 and counts["missed"] >= 1
    shown = api.get(f"/schedule/{catch_up['schedule_id']}/").json()
    assert shown["counts"]["missed"] >= 2
    # the catch-up ran the latest missed tick, not an old one
    assert late["fired_at"] - late["scheduled_for"] < 2
    # and every tick of the schedule's life either fired once or was counted missed, none twice
    rows = sql(sched_system, "SELECT scheduled_for, missed FROM schedule_fires WHERE schedule_id = :s "
                             "AND NOT manual ORDER BY scheduled_for", s=catch_up["schedule_id"])
    ticks = [row[0] for row in rows]
    assert len(ticks) == len(set(ticks))
    assert len(ticks) + sum(row[1] for row in rows) == round((ticks[-1] - ticks[0]) / 2) + 1, rows
    assert api.wait_result(late["result_id"])["status"] == "COMPLETE"


def test_a_tick_of_a_task_not_ready_is_a_failed_fire_with_the_reason(sched_system, image_registry):
    api = sched_system.api
    broken = api.register(f"{image_registry.address}/no/such-image:1", name=f"s-broken-{uuid.uuid4().hex[:6]}")
    assert broken["status"] == "ERROR"
    schedule = add(api, broken, cron="* * * * * *")
    wait_until(lambda: api.get(f"/schedule/{schedule['schedule_id']}/").json()["failed_fires"], timeout=20,
               what="a failed fire")
    patch(api, schedule["schedule_id"], {"suspend": True})
    shown = api.get(f"/schedule/{schedule['schedule_id']}/").json()
    failed = shown["failed_fires"][0]
    assert failed["outcome"] == "FAILED" and "is ERROR; only a READY task can be run" in failed["reason"]
    assert shown["counts"]["failed"] >= 1 and shown["counts"]["fired"] == 0
    response = api.post(f"/schedule/{schedule['schedule_id']}/", {"operation": "RUN"})
    assert response.status_code == 409 and "READY" in response.json()["message"]
    assert api.delete(f"/schedule/{schedule['schedule_id']}/").status_code == 204


def test_run_now_starts_a_run_marked_with_the_schedule(sched_system):
    api = sched_system.api
    schedule = add(api, sched_system.tasks["ok"], cron="0 3 1 1 *", timezone="Europe/Berlin",
                   run={"times": 2, "command": "echo scheduled"})
    response = api.post(f"/schedule/{schedule['schedule_id']}/", {"operation": "RUN"})
    assert response.status_code == 202, response.text
    result = response.json()
    assert response.headers["Location"] == f"/result/{result['result_id']}/"
    assert result["schedule_id"] == schedule["schedule_id"] and result["times"] == 2
    assert api.wait_result(result["result_id"])["status"] == "COMPLETE"
    shown = api.get(f"/schedule/{schedule['schedule_id']}/").json()
    assert shown["fires"][0]["manual"] is True and shown["fires"][0]["result_id"] == result["result_id"]
    # a RUN's result is not a schedule's
    plain = api.run(sched_system.tasks["ok"]["task_id"])
    assert api.get(f"/result/{plain}/").json()["schedule_id"] is None
    listed = api.get("/schedule/", params={"task_id": sched_system.tasks["ok"]["task_id"]}).json()
    assert schedule["schedule_id"] in [s["schedule_id"] for s in listed]


def test_a_task_with_schedules_cannot_be_deleted_until_they_are(sched_system, test_images):
    api = sched_system.api
    task = api.register(test_images["ok"], name=f"s-del-{uuid.uuid4().hex[:6]}")
    schedule = add(api, task, cron="@daily")
    response = api.delete(f"/task/{task['task_id']}/")
    assert response.status_code == 409 and "schedule" in response.json()["message"]
    assert api.delete(f"/schedule/{schedule['schedule_id']}/").status_code == 204
    assert api.get(f"/schedule/{schedule['schedule_id']}/").status_code == 404
    assert api.delete(f"/task/{task['task_id']}/").status_code == 204
    gone = api.post("/schedule/", {"task_id": task["task_id"], "cron": "@daily", "run": {"times": 1}})
    assert gone.status_code == 404


@pytest.mark.parametrize("change, field", [
    ({"cron": "H * * * *"}, "cron"),
    ({"cron": "0 0 1 1 * 2026"}, "cron"),  # croniter's year field: refused
    ({"cron": "@reboot"}, "cron"),
    ({"cron": "0 0 31 2 *"}, "cron"),  # never
    ({"timezone": "Mars/Olympus"}, "timezone"),
    ({"concurrency_policy": "Sometimes"}, "concurrency_policy"),
    ({"run": {"times": 0}}, "run.times"),
    ({"run": {"times": 1, "after": ["a" * 32]}}, "run.after"),
    ({"run": {"times": 1, "memory": "100g"}}, "run.memory"),
    ({"run": {"times": 1, "callback_url": "ftp://x"}}, "run.callback_url"),
    ({"run": "every day"}, "run"),
    ({"starting_deadline_seconds": 0}, "starting_deadline_seconds"),
    ({"suspend": "yes"}, "suspend"),
    ({"name": "x" * 201}, "name"),
    ({"bogus": 1}, "bogus"),
])
def test_a_bad_schedule_is_refused_with_400_naming_the_field(sched_system, change, field):
    api = sched_system.api
    body = {"task_id": sched_system.tasks["ok"]["task_id"], "cron": "@hourly", "run": {"times": 1}, **change}
    response = api.post("/schedule/", body)
    assert response.status_code == 400, response.text
    assert response.json()["message"].startswith(f"{field}: "), response.text


def test_unknown_schedules_and_tasks_are_404_and_a_patch_is_checked_too(sched_system):
    api = sched_system.api
    assert api.get(f"/schedule/{'0' * 32}/").status_code == 404
    assert api.delete(f"/schedule/{'0' * 32}/").status_code == 404
    assert api.post("/schedule/", {"task_id": "0" * 32, "cron": "@daily", "run": {"times": 1}}).status_code == 404
    schedule = add(api, sched_system.tasks["ok"], cron="@daily", timezone="Europe/Berlin")
    bad = api.http.patch(f"{api.base_url}/schedule/{schedule['schedule_id']}/", json={"cron": "* * *"}, timeout=30)
    assert bad.status_code == 400 and bad.json()["message"].startswith("cron: ")
    empty = api.http.patch(f"{api.base_url}/schedule/{schedule['schedule_id']}/", json={}, timeout=30)
    assert empty.status_code == 400 and empty.json()["message"].startswith("body: give one or more of name, cron"), empty.text
    changed = patch(api, schedule["schedule_id"], {"cron": "30 2 * * *", "name": "nightly"})
    assert changed["cron"] == "30 2 * * *" and changed["name"] == "nightly"
    assert changed["next_run_at"] != schedule["next_run_at"]
    add(api, sched_system.tasks["ok"], cron="@daily")  # a second, whatever the other tests left: a next page
    page = api.get("/schedule/", params={"limit": 1})
    assert page.status_code == 200 and len(page.json()) == 1 and 'rel="next"' in page.headers["Link"]


class ScheduleWatcher:
    name = "e2e_schedule_watcher"
    seen: ClassVar[list] = []

    @event_handler("scheduler", "schedule_fired")
    def on_schedule_fired(self, payload):
        self.seen.append(("fired", payload))

    @event_handler("scheduler", "schedule_failed")
    def on_schedule_failed(self, payload):
        self.seen.append(("failed", payload))


def test_fires_are_announced_by_event_and_a_schedules_run_calls_its_callback_url(
        sched_system, container_factory, image_registry):
    api = sched_system.api
    container = container_factory(ScheduleWatcher, {"AMQP_URI": sched_system.amqp_uri})
    container.start()
    with WebhookReceiver() as receiver:
        schedule = add(api, sched_system.tasks["ok"], cron="@yearly",
                       run={"times": 1, "callback_url": receiver.url})
        with entrypoint_waiter(container, "on_schedule_fired", timeout=30,
                               callback=lambda wc, r, e: wc.args[0]["schedule_id"] == schedule["schedule_id"]):
            result = api.post(f"/schedule/{schedule['schedule_id']}/", {"operation": "RUN"}).json()
        fired = [p for kind, p in ScheduleWatcher.seen if kind == "fired"
                 and p["schedule_id"] == schedule["schedule_id"]][-1]
        assert fired == {"schedule_id": schedule["schedule_id"], "task_id": sched_system.tasks["ok"]["task_id"],
                         "result_id": result["result_id"], "scheduled_for": fired["scheduled_for"],
                         "manual": True, "missed": 0, "team": "default", "submitted_by": "admin"}
        api.wait_result(result["result_id"])
        wait_until(lambda: receiver.received, timeout=30, what="the run's webhook")
        body = json.loads(receiver.received[0]["body"])
        assert body["result_id"] == result["result_id"] and body["schedule_id"] == schedule["schedule_id"]

    broken = api.register(f"{image_registry.address}/no/such-image:3", name=f"s-ev-{uuid.uuid4().hex[:6]}")
    failing = add(api, broken, cron="* * * * * *")
    with entrypoint_waiter(container, "on_schedule_failed", timeout=30,
                           callback=lambda wc, r, e: wc.args[0]["schedule_id"] == failing["schedule_id"]):
        pass
    patch(api, failing["schedule_id"], {"suspend": True})
    failed = next(p for kind, p in ScheduleWatcher.seen if kind == "failed"
                  and p["schedule_id"] == failing["schedule_id"])
    assert failed["task_id"] == broken["task_id"] and "only a READY task can be run" in failed["reason"]


def test_a_schedule_posted_twice_with_one_idempotency_key_is_made_once(sched_system):
    api = sched_system.api
    body = {"task_id": sched_system.tasks["ok"]["task_id"], "cron": "@monthly", "run": {"times": 1}}
    key = {"Idempotency-Key": f"schedule-{uuid.uuid4().hex}"}
    first, again = (api.post("/schedule/", body, headers=key) for _ in range(2))
    assert first.status_code == again.status_code == 201
    assert first.json()["schedule_id"] == again.json()["schedule_id"]
    other = api.post("/schedule/", {**body, "task_id": sched_system.tasks["sleep"]["task_id"]}, headers=key)
    assert other.status_code == 409 and other.json()["message"].startswith("Idempotency-Key: ")
