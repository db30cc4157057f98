"""Secrets by reference (issue 18 item 4), end to end on the real RabbitMQ, PostgreSQL and Docker engine.

THE test: a job prints its secret env into its own output (the job's business); then every API answer,
every event on RabbitMQ, the webhook body, every table of the database and every service's log (at DEBUG)
is searched for the value: found nowhere but the job's own output.
"""
import json
import threading
import uuid

import pytest
from cryptography.fernet import Fernet
from kombu import Connection, Exchange, Queue
from sqlalchemy import text

from tests.support import WebhookReceiver, started_system, wait_until

pytestmark = pytest.mark.e2e

ECHO = ["sh", "-c", "echo \"SECRET=$API_KEY\""]


class EventTap:
    """Every event the services publish on the vhost, as received from RabbitMQ (a queue bound to each
    service's topic exchange with ``#``)."""

    def __init__(self, amqp_uri):
        self.connection = Connection(amqp_uri)
        self.messages = []
        self.stopped = threading.Event()
        name = f"secret-tap-{uuid.uuid4().hex[:8]}"
        bindings = [Exchange(f"{service}.events", type="topic", durable=True)
                    for service in ("scheduler", "runner", "registry")]
        self.queue = Queue(name, bindings=[], exclusive=True, auto_delete=True)
        self.exchanges = bindings
        self.thread = threading.Thread(target=self._consume, daemon=True)
        self.ready = threading.Event()

    def _consume(self):
        with self.connection.clone() as conn:
            channel = conn.channel()
            queue = self.queue(channel)
            queue.declare()
            for exchange in self.exchanges:
                exchange(channel).declare()
                queue.bind_to(exchange=exchange.name, routing_key="#")
            with conn.Consumer(queue, callbacks=[self._on_message], accept=["json"]):
                self.ready.set()
                while not self.stopped.is_set():
                    try:
                        conn.drain_events(timeout=0.5)
                    except TimeoutError:
                        continue
                    except OSError:  # socket.timeout on older pythons
                        continue

    def _on_message(self, body, message):
        self.messages.append((message.delivery_info.get("routing_key"), body))
        message.ack()

    def __enter__(self):
        self.thread.start()
        assert self.ready.wait(20), "the event tap did not start"
        return self

    def __exit__(self, *exc):
        self.stopped.set()
        self.thread.join(10)


@pytest.fixture(scope="module")
def secret_system(vhost_pipeline, request, test_images, docker_client):
    """A system of its own, every service logging at DEBUG, so that its logs hold only these tests' work."""
    env = {"LOG_LEVEL": "DEBUG", "RUNNER_SLOTS": "2", "SWEEP_INTERVAL": "1",
           "STEVEDORE_CREDENTIALS_KEY": Fernet.generate_key().decode(),
           "STEVEDORE_WEBHOOK_SECRET": f"test-webhook-secret-{uuid.uuid4().hex}",
           "WEBHOOK_ALLOW_NETWORKS": "127.0.0.0/8"}
    with started_system(request, vhost_pipeline, "secrets", env, docker_client=docker_client) as running:
        running.tasks = {"ok": running.api.register(test_images["ok"], name=f"sec-ok-{uuid.uuid4().hex[:6]}")}
        yield running


def put(api, name, value):
    return api.http.put(f"{api.base_url}/secret/{name}/", json={"value": value}, timeout=30)


def run(api, task_id, **params):
    return api.post(f"/task/{task_id}/", {"operation": "RUN", **params})


def output(api, result_id):
    """{index: stdout} of a run's executions."""
    return {d["index"]: api.get(f"/result/{result_id}/detail/{d['detail_id']}/logs/").json()["stdout"]
            for d in api.details(result_id)}


def test_a_secret_printed_by_its_job_is_found_nowhere_but_in_the_jobs_own_output(secret_system):
    api, task = secret_system.api, secret_system.tasks["ok"]["task_id"]
    token = uuid.uuid4().hex
    value = f"first-line-{token}\nsecond line {token}"  # many lines, as a PEM key
    name = f"api-key-{token[:6]}"
    with EventTap(secret_system.amqp_uri) as tap, WebhookReceiver() as receiver:
        assert put(api, name, value).status_code == 201
        first = run(api, task, times=2, command=ECHO, secret_env={"API_KEY": name}, callback_url=receiver.url)
        assert first.status_code == 202, first.text
        result_id = first.json()["result_id"]
        # one that fails, rerun: RERUN_FAILED keeps the references
        failing = run(api, task, times=1, command=["sh", "-c", "echo \"SECRET=$API_KEY\"; exit 3"],
                      secret_env={"API_KEY": name}).json()["result_id"]
        schedule = api.post("/schedule/", {"task_id": task, "cron": "0 0 1 1 *", "suspend": True, "run": {
            "times": 1, "command": ECHO, "secret_env": {"API_KEY": name}}})
        assert schedule.status_code == 201, schedule.text
        schedule_id = schedule.json()["schedule_id"]
        fired = api.post(f"/schedule/{schedule_id}/", {"operation": "RUN"})
        assert fired.status_code == 202, fired.text

        assert api.wait_result(result_id)["status"] == "COMPLETE"
        assert api.wait_result(failing)["status"] == "ERROR"
        assert api.wait_result(fired.json()["result_id"])["status"] == "COMPLETE"
        rerun = api.post(f"/result/{failing}/", {"operation": "RERUN_FAILED"})
        assert rerun.status_code == 202, rerun.text
        assert rerun.json()["params"]["secret_env"] == {"API_KEY": name}
        assert api.wait_result(rerun.json()["result_id"])["status"] == "ERROR"  # it exits 3 again
        runs = [result_id, failing, fired.json()["result_id"], rerun.json()["result_id"]]
        wait_until(lambda: receiver.received, timeout=30, what="the webhook")
        wait_until(lambda: sum(1 for key, _ in tap.messages if key == "result_finished") >= 4, timeout=30,
                   what="the result_finished events")

    # the job's own output has it: each execution's container got the value
    for result in runs:
        for index, stdout in output(api, result).items():
            assert stdout == f"SECRET={value}\n", (result, index)
    raw = api.get(f"/result/{result_id}/detail/{api.details(result_id)[0]['detail_id']}/logs/stdout/")
    assert token in raw.content.decode()

    # every other API answer: none has it
    answers = {}
    paths = ["/task/", f"/task/{task}/", "/result/", "/schedule/", f"/schedule/{schedule_id}/", "/secret/",
             f"/secret/{name}/", "/runner/", "/metrics", "/health/", "/openapi.json"]
    for result in runs:
        paths += [f"/result/{result}/", f"/result/{result}/detail/", f"/result/?task_id={task}"]
        paths += [f"/result/{result}/detail/{d['detail_id']}/" for d in api.details(result)]
    for path in paths:
        response = api.get(path)
        assert response.status_code == 200, (path, response.text)
        answers[path] = response.text
    assert json.loads(answers[f"/result/{result_id}/"])["params"]["secret_env"] == {"API_KEY": name}
    assert [s["name"] for s in json.loads(answers["/secret/"])] == [name]
    leaks = [path for path, body in answers.items() if token in body]
    assert leaks == []

    # the events on RabbitMQ (but the job's output, which execution_output and execution_finished carry)
    keys = {key for key, _ in tap.messages}
    assert keys >= {"result_submitted", "result_finished"} and keys & {"execution_finished", "execution_reports"}
    for key, body in tap.messages:
        if isinstance(body, dict) and key == "execution_reports":  # a runner's reports, coalesced
            body = [{k: v for k, v in item["report"].items() if k != "logs"} for item in body["reports"]]
        elif isinstance(body, dict):
            body = {k: v for k, v in body.items() if k != "logs"}
        assert token not in json.dumps(body), key
    # the webhook's body
    assert receiver.received and all(token not in hook["body"].decode() for hook in receiver.received)
    sent = json.loads(receiver.received[0]["body"])
    assert sent["params"]["secret_env"] == {"API_KEY": name}

    # the database: every table but the job's output (the secret's own row holds it sealed)
    with secret_system.engine.connect() as conn:
        tables = [row[0] for row in conn.execute(text(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"))]
        assert "secrets" in tables
        for table in tables:
            if table == "detail_logs":
                continue
            rows = conn.execute(text(f'SELECT t::text FROM "{table}" t')).scalars().all()
            assert not any(token in row for row in rows), table

    # every service's log, the runner's among them, at DEBUG
    logs = {label: secret_system.log(label) for label in secret_system.plan}
    assert "DEBUG" in logs["runner-1"] and "runner-1" in logs
    assert [label for label, text_ in logs.items() if token in text_] == []


def test_a_rotation_reaches_the_executions_not_yet_started(secret_system):
    api, task = secret_system.api, secret_system.tasks["ok"]["task_id"]
    name, old, new = f"rot-{uuid.uuid4().hex[:8]}", f"old-{uuid.uuid4().hex}", f"new-{uuid.uuid4().hex}"
    assert put(api, name, old).status_code == 201
    result_id = run(api, task, times=2, parallelism=1, secret_env={"API_KEY": name},
                    command=["sh", "-c", "echo \"SECRET=$API_KEY\"; sleep 4"]).json()["result_id"]
    wait_until(lambda: any(d["status"] == "RUNNING" for d in api.details(result_id)), timeout=60,
               what="the first execution to run")
    rotated = put(api, name, new)
    assert rotated.status_code == 200
    assert rotated.json()["updated_at"] > rotated.json()["created_at"]
    assert api.wait_result(result_id)["status"] == "COMPLETE"
    assert output(api, result_id) == {0: f"SECRET={old}\n", 1: f"SECRET={new}\n"}


def test_an_execution_whose_secret_was_deleted_before_it_started_ends_error_naming_it(secret_system):
    api, task = secret_system.api, secret_system.tasks["ok"]["task_id"]
    name = f"gone-{uuid.uuid4().hex[:8]}"
    assert put(api, name, "soon gone").status_code == 201
    result_id = run(api, task, times=2, parallelism=1, secret_env={"TOKEN": name},
                    command=["sh", "-c", "sleep 4"]).json()["result_id"]
    wait_until(lambda: any(d["status"] == "RUNNING" for d in api.details(result_id)), timeout=60,
               what="the first execution to run")
    assert api.delete(f"/secret/{name}/").status_code == 204
    result = api.wait_result(result_id, timeout=60)
    assert result["status"] == "ERROR"
    first, second = sorted(api.details(result_id), key=lambda d: d["index"])
    assert first["status"] == "COMPLETE"
    assert second["status"] == "ERROR" and second["start"] is None
    assert f"secret_env.TOKEN: secret '{name}'" in second["reason"] and "does not exist" in second["reason"]
    assert api.get(f"/secret/{name}/").status_code == 404
    # the audit log has the set and the delete, by name, and never the value
    entries = api.get(f"/audit/?target_type=secret&target_id={name}").json()
    assert [(e["action"], e["summary"]) for e in entries] == [
        ("secret.delete", {"name": name}), ("secret.set", {"name": name, "created": True})]
    assert "soon gone" not in json.dumps(entries)


def test_a_schedule_whose_secret_was_deleted_fires_no_run_and_says_why(secret_system):
    api, task = secret_system.api, secret_system.tasks["ok"]["task_id"]
    name = f"sched-{uuid.uuid4().hex[:8]}"
    assert put(api, name, "v").status_code == 201
    schedule = api.post("/schedule/", {"task_id": task, "cron": "@daily", "suspend": True,
                                       "run": {"times": 1, "secret_env": {"TOKEN": name}}})
    assert schedule.status_code == 201, schedule.text
    assert api.delete(f"/secret/{name}/").status_code == 204
    now = api.post(f"/schedule/{schedule.json()['schedule_id']}/", {"operation": "RUN"})
    assert now.status_code == 409, now.text
    assert f"secret_env.TOKEN: no secret '{name}'" in now.json()["message"]
    changed = api.http.patch(f"{api.base_url}/schedule/{schedule.json()['schedule_id']}/",
                             json={"run": {"times": 2, "secret_env": {"TOKEN": name}}}, timeout=30)
    assert changed.status_code == 400 and changed.json()["message"].startswith("run.secret_env.TOKEN:")


def test_bad_secrets_and_references_are_refused_naming_the_field(secret_system):
    api, task = secret_system.api, secret_system.tasks["ok"]["task_id"]
    name = f"here-{uuid.uuid4().hex[:8]}"
    assert put(api, name, "v").status_code == 201

    def refused(response, status, field):
        assert response.status_code == status, response.text
        assert response.json()["message"].startswith(f"{field}:"), response.text
        return response.json()["message"]

    missing = f"missing-{uuid.uuid4().hex[:6]}"
    refused(run(api, task, times=1, secret_env={"API_KEY": missing}), 400, "secret_env.API_KEY")
    refused(run(api, task, times=1, env={"API_KEY": "x"}, secret_env={"API_KEY": name}), 400, "secret_env.API_KEY")
    refused(run(api, task, matrix={"API_KEY": ["1"]}, secret_env={"API_KEY": name}), 400, "secret_env.API_KEY")
    refused(run(api, task, times=1, secret_env={"1BAD": name}), 400, "secret_env")
    refused(run(api, task, times=1, secret_env={"STEVEDORE_X": name}), 400, "secret_env")
    refused(run(api, task, times=1, secret_env={"API_KEY": "../etc"}), 400, "secret_env.API_KEY")
    refused(run(api, task, times=1, secret_env={f"V{i}": name for i in range(21)}), 400, "secret_env")
    refused(api.post("/schedule/", {"task_id": task, "cron": "@daily", "run": {
        "times": 1, "secret_env": {"API_KEY": missing}}}), 400, "run.secret_env.API_KEY")

    hidden = f"hidden-{uuid.uuid4().hex}"
    message = refused(put(api, name, hidden + "\x00"), 400, "value")
    assert hidden not in message and "NUL" in message
    assert hidden not in refused(put(api, name, hidden + "x" * 65536), 400, "value")
    refused(put(api, ".dot", "v"), 400, "name")
    refused(put(api, "x" * 129, "v"), 400, "name")
    refused(api.http.put(f"{api.base_url}/secret/{name}/", json={"value": 5}, timeout=30), 400, "value")
    refused(api.http.put(f"{api.base_url}/secret/{name}/", json={}, timeout=30), 400, "value")
    refused(api.http.put(f"{api.base_url}/secret/{name}/", json={"value": "v", "other": 1}, timeout=30), 400, "other")
    refused(api.get(f"/secret/nope-{uuid.uuid4().hex[:6]}/"), 404, "name")
    refused(api.delete(f"/secret/nope-{uuid.uuid4().hex[:6]}/"), 404, "name")
    refused(api.get("/secret/?after=nope-nothing"), 404, "after")
    # control characters, tabs and newlines are a value's business
    assert put(api, name, "tab\there\r\nbell\x07").status_code == 200
    assert hidden not in "".join(secret_system.log(label) for label in secret_system.plan)
