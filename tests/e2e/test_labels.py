"""Labels on the real system: RUN and task labels stored and filtered by the database, paged, on the
containers the runners start (read back through the Docker engine), in events and the webhook, refused when
they break the rules."""
import json
import uuid

import pytest
from nameko.events import event_handler
from nameko.testing.services import entrypoint_waiter

from tests.support import WebhookReceiver, containers_of, wait_until

pytestmark = pytest.mark.e2e


def tag():
    return uuid.uuid4().hex[:12]


def run(api, task_id, labels, times=1, **params):
    response = api.post(f"/task/{task_id}/", {"operation": "RUN", "times": times, "labels": labels, **params})
    assert response.status_code == 202, response.text
    return response.json()


def listed(api, path, *filters, **query):
    response = api.get(path, params={"label": list(filters), "limit": 1000, **query})
    assert response.status_code == 200, response.text
    return response.json()


def test_results_are_filtered_by_their_labels_all_filters_combining(api, ready_tasks):
    sweep = f"lr-{tag()}"
    task_id = ready_tasks["ok"]["task_id"]
    a = run(api, task_id, {"sweep": sweep, "project": "vision", "example.com/lr": "0.1"})
    b = run(api, task_id, {"sweep": sweep, "project": "audio"})
    c = run(api, task_id, {"sweep": sweep, "note": ""})
    other = run(api, task_id, {"sweep": f"other-{tag()}", "project": "vision"})
    assert a["labels"] == {"sweep": sweep, "project": "vision", "example.com/lr": "0.1"}
    assert a["params"]["labels"] == a["labels"]

    def ids(*filters, **query):
        return {r["result_id"] for r in listed(api, "/result/", *filters, **query)}

    assert ids(f"sweep={sweep}") == {a["result_id"], b["result_id"], c["result_id"]}
    assert ids(f"sweep={sweep}", "project=vision") == {a["result_id"]}
    assert ids(f"sweep={sweep}", "project") == {a["result_id"], b["result_id"]}  # the key is set
    assert ids(f"sweep={sweep}", "note=") == {c["result_id"]}  # the empty value
    assert ids(f"sweep={sweep}", "example.com/lr=0.1") == {a["result_id"]}
    assert ids(f"sweep={sweep}", "project=none") == set()
    assert ids(f"sweep={sweep}", "project=vision", "project=audio") == set()  # a label has one value
    assert other["result_id"] not in ids(f"sweep={sweep}")
    # with the other filters
    assert ids(f"sweep={sweep}", task_id=task_id) == {a["result_id"], b["result_id"], c["result_id"]}
    assert ids(f"sweep={sweep}", task_id=ready_tasks["fail"]["task_id"]) == set()
    # each result shows its labels, in the list and alone
    shown = {r["result_id"]: r["labels"] for r in listed(api, "/result/", f"sweep={sweep}")}
    assert shown[b["result_id"]] == {"sweep": sweep, "project": "audio"}
    assert api.get(f"/result/{c['result_id']}/").json()["labels"] == {"sweep": sweep, "note": ""}
    # a run without labels shows {} and no labels in its params
    plain = api.get(f"/result/{api.run(task_id)}/").json()
    assert plain["labels"] == {} and "labels" not in plain["params"]


def test_a_filtered_list_pages_and_its_link_keeps_the_filters(api, ready_tasks):
    sweep = f"page-{tag()}"
    made = [run(api, ready_tasks["ok"]["task_id"], {"sweep": sweep, "k": str(i % 2)})["result_id"]
            for i in range(5)]
    seen, path = [], f"/result/?label=sweep%3D{sweep}&label=k&limit=2"
    while path:
        response = api.get(path)
        assert response.status_code == 200, response.text
        seen += [r["result_id"] for r in response.json()]
        assert len(response.json()) <= 2
        link = response.headers.get("Link")
        path = link[1:link.index(">")] if link else None
        if path:
            assert f"label=sweep%3D{sweep}" in path and "label=k" in path
    assert seen == list(reversed(made))  # newest first, each once


def test_tasks_are_labelled_and_filtered(api, test_images):
    team = f"team-{tag()}"
    body = {"repository": test_images["ok"], "name": f"labelled-{tag()}", "labels": {"team": team, "tier": "gold"}}
    response = api.post("/task/", body)
    assert response.status_code == 201, response.text
    task = response.json()
    assert task["labels"] == {"team": team, "tier": "gold"}
    other = api.post("/task/", {"repository": test_images["ok"], "name": f"other-{tag()}",
                                "labels": {"team": team}}).json()
    assert {t["task_id"] for t in listed(api, "/task/", f"team={team}")} == {task["task_id"], other["task_id"]}
    assert [t["task_id"] for t in listed(api, "/task/", f"team={team}", "tier=gold")] == [task["task_id"]]
    assert [t["task_id"] for t in listed(api, "/task/", f"team={team}", "tier")] == [task["task_id"]]
    assert api.wait_task(task["task_id"])["labels"] == {"team": team, "tier": "gold"}
    # a task's labels are its own: a RUN of it has the RUN's
    result = run(api, task["task_id"], {"sweep": "x"})
    assert result["labels"] == {"sweep": "x"}
    api.wait_result(result["result_id"])
    for task_id in (task["task_id"], other["task_id"]):  # gone: other tests list tasks without labels
        api.wait_task(task_id)
        assert api.delete(f"/task/{task_id}/").status_code == 204


def test_the_containers_carry_the_labels_under_their_own_prefix(api, ready_tasks, docker_client):
    sweep = f"c-{tag()}"
    result = run(api, ready_tasks["sleep"]["task_id"], {"sweep": sweep, "example.com/team": "ml"}, times=1,
                 env={"SLEEP": "30"})

    def started():
        return containers_of(docker_client, result["result_id"]) or None

    container = wait_until(started, timeout=60, what="the run's container")[0]
    container.reload()
    labels = container.labels
    assert labels["user.stevedore/sweep"] == sweep
    assert labels["user.stevedore/example.com/team"] == "ml"
    assert labels["stevedore.managed"] == "true"
    assert labels["stevedore.result_id"] == result["result_id"]
    # what docker users filter by
    found = docker_client.containers.list(all=True, filters={"label": f"user.stevedore/sweep={sweep}"})
    assert [c.id for c in found] == [container.id]
    assert api.post(f"/result/{result['result_id']}/", {"operation": "CANCEL"}).status_code == 202
    assert api.wait_result(result["result_id"], timeout=60)["status"] in ("KILLED", "CANCELLED")


@pytest.mark.parametrize("labels", [{"stevedore.managed": "false"}, {"stevedore.result_id": "0" * 32},
                                    {"user.stevedore/sweep": "x"}, {"stevedore.io/managed": "true"}])
def test_a_label_named_like_a_trusted_one_cannot_be_set(api, ready_tasks, labels):
    key = next(iter(labels))
    response = api.post(f"/task/{ready_tasks['ok']['task_id']}/", {"operation": "RUN", "times": 1,
                                                                     "labels": labels})
    assert response.status_code == 400, response.text
    assert response.json()["message"].startswith(f"labels.{key}: is reserved"), response.text


@pytest.mark.parametrize("body, field", [
    ({"labels": {"a": "b c"}}, "labels.a"),
    ({"labels": {"-a": "b"}}, "labels.-a"),
    ({"labels": {"a": 1}}, "labels.a"),
    ({"labels": ["a=b"]}, "labels"),
    ({"labels": {f"k{i}": "v" for i in range(65)}}, "labels"),
])
def test_bad_labels_are_a_400_naming_them(api, ready_tasks, test_images, body, field):
    response = api.post(f"/task/{ready_tasks['ok']['task_id']}/", {"operation": "RUN", "times": 1, **body})
    assert response.status_code == 400, response.text
    assert response.json()["message"].startswith(f"{field}: "), response.text
    response = api.post("/task/", {"repository": test_images["ok"], "name": f"bad-{tag()}", **body})
    assert response.status_code == 400, response.text
    assert response.json()["message"].startswith(f"{field}: "), response.text


@pytest.mark.parametrize("path", ["/result/", "/task/"])
@pytest.mark.parametrize("query", ["label=a%3D%3Db", "label=", "label=-a", "label=a%3Db%20c",
                                   "&".join(f"label=k{i}" for i in range(21))])
def test_a_bad_filter_is_a_400_naming_label(api, path, query):
    response = api.get(f"{path}?{query}")
    assert response.status_code == 400, response.text
    assert response.json()["message"].startswith("label: "), response.text


def test_an_idempotent_run_with_other_labels_is_a_conflict(api, ready_tasks):
    key = f"labels-{tag()}"
    task_id = ready_tasks["ok"]["task_id"]
    body = {"operation": "RUN", "times": 1, "labels": {"sweep": "a"}}
    first = api.post(f"/task/{task_id}/", body, headers={"Idempotency-Key": key})
    again = api.post(f"/task/{task_id}/", body, headers={"Idempotency-Key": key})
    assert first.status_code == again.status_code == 202
    assert first.json()["result_id"] == again.json()["result_id"]
    other = api.post(f"/task/{task_id}/", {**body, "labels": {"sweep": "b"}}, headers={"Idempotency-Key": key})
    assert other.status_code == 409, other.text


def test_a_rerun_of_failures_keeps_the_runs_labels(api, ready_tasks):
    sweep = f"rerun-{tag()}"
    result = run(api, ready_tasks["fail"]["task_id"], {"sweep": sweep})
    assert api.wait_result(result["result_id"])["status"] == "ERROR"
    rerun = api.post(f"/result/{result['result_id']}/", {"operation": "RERUN_FAILED"})
    assert rerun.status_code == 202, rerun.text
    assert rerun.json()["labels"] == {"sweep": sweep}
    assert {r["result_id"] for r in listed(api, "/result/", f"sweep={sweep}")} == {
        result["result_id"], rerun.json()["result_id"]}


class LabelWatcher:
    name = "labels_watcher"
    seen = []

    @event_handler("scheduler", "result_submitted")
    def on_result_submitted(self, payload):
        self.seen.append(("result_submitted", payload))

    @event_handler("scheduler", "result_finished")
    def on_result_finished(self, payload):
        self.seen.append(("result_finished", payload))

    @event_handler("registry", "task_imported")
    def on_task_imported(self, payload):
        self.seen.append(("task_imported", payload))


def test_events_and_the_webhook_carry_the_labels(container_factory, api, ready_tasks, test_images,
                                                 session_amqp_uri):
    container = container_factory(LabelWatcher, {"AMQP_URI": session_amqp_uri})
    container.start()
    labels = {"sweep": f"ev-{tag()}", "project": "vision"}
    with WebhookReceiver() as receiver:
        result_id = None
        with entrypoint_waiter(container, "on_result_finished", timeout=90,
                               callback=lambda wc, r, e: wc.args[0].get("result_id") == result_id):
            result_id = run(api, ready_tasks["ok"]["task_id"], labels, callback_url=receiver.url)["result_id"]
        wait_until(lambda: receiver.received, timeout=60, what="the webhook")
        sent = json.loads(receiver.received[0]["body"])
    assert sent["result_id"] == result_id and sent["labels"] == labels
    events = {name: payload for name, payload in LabelWatcher.seen if payload.get("result_id") == result_id}
    assert events["result_submitted"]["labels"] == labels
    assert events["result_finished"]["labels"] == labels

    task_labels = {"team": f"t-{tag()}"}
    with entrypoint_waiter(container, "on_task_imported", timeout=60,
                           callback=lambda wc, r, e: wc.args[0].get("labels") == task_labels):
        task = api.post("/task/", {"repository": test_images["ok"], "name": f"ev-{tag()}",
                                   "labels": task_labels}).json()
    imported = [p for name, p in LabelWatcher.seen if name == "task_imported" and p["task_id"] == task["task_id"]]
    assert imported and imported[0]["labels"] == task_labels
    api.wait_task(task["task_id"])
    assert api.delete(f"/task/{task['task_id']}/").status_code == 204


def test_a_schedules_run_gives_each_run_it_starts_its_labels(api, ready_tasks):
    sweep = f"sched-{tag()}"
    response = api.post("/schedule/", {"task_id": ready_tasks["ok"]["task_id"], "cron": "0 0 1 1 *",
                                       "suspend": True, "run": {"times": 1, "labels": {"sweep": sweep}}})
    assert response.status_code == 201, response.text
    schedule = response.json()
    assert schedule["run"]["labels"] == {"sweep": sweep}
    fired = api.post(f"/schedule/{schedule['schedule_id']}/", {"operation": "RUN"})
    assert fired.status_code == 202, fired.text
    assert fired.json()["labels"] == {"sweep": sweep}
    assert [r["result_id"] for r in listed(api, "/result/", f"sweep={sweep}")] == [fired.json()["result_id"]]
    bad = api.post("/schedule/", {"task_id": ready_tasks["ok"]["task_id"], "cron": "0 0 1 1 *",
                                  "run": {"times": 1, "labels": {"stevedore/x": "1"}}})
    assert bad.status_code == 400 and bad.json()["message"].startswith("run.labels.stevedore/x: "), bad.text
    assert api.delete(f"/schedule/{schedule['schedule_id']}/").status_code == 204
