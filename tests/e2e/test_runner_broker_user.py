"""A runner on RabbitMQ with the runners' own, least-privilege user (shared/broker_access.py): its work runs
to the end, and what it must not do (call the registry's token RPC, any RPC of the services' but its own,
snoop the RPC exchange) the broker itself refuses with ACCESS_REFUSED.

A system of its own on a fresh vhost: the gateway, registry and scheduler with the test broker's admin user,
its one runner with a user made here (a unique name, removed at teardown) holding exactly the documented
permissions (scripts/rabbitmq-runner-user applies the same ``broker_access.apply``)."""
import hashlib
import json
import uuid
from urllib.parse import urlparse

import pytest
import requests
from amqp.exceptions import AccessRefused
from kombu import Connection, Exchange, Queue
from sqlalchemy import text

from shared import broker_access
from tests.support import ADMIN, started_system, wait_until

pytestmark = pytest.mark.e2e

RPC = Exchange(broker_access.RPC_EXCHANGE, type="topic", durable=True)


def management(request):
    """The management API's URL and its (user, password), from nameko's --rabbit-api-uri."""
    api = urlparse(request.config.getoption("RABBIT_API_URI"))
    return f"{api.scheme}://{api.hostname}:{api.port}", (api.username, api.password)


@pytest.fixture(scope="module")
def runner_user_system(vhost_pipeline, request, test_images, docker_client):
    uri = urlparse(request.config.getoption("RABBIT_AMQP_URI"))
    url, admin = management(request)
    user, password = f"stevedore-runner-test-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    try:
        with started_system(request, vhost_pipeline, "runner-user", start=(), docker_client=docker_client) as running:
            broker_access.apply(url, admin, user, password, running.vhost)
            running.runner_uri = f"{uri.scheme}://{user}:{password}@{uri.hostname}:{uri.port}/{running.vhost}"
            running.plan["runner-1"][1]["AMQP_URI"] = running.runner_uri  # the runner alone has this user
            running.runner_user = user
            running.start().wait_healthy()
            yield running
    finally:
        requests.delete(f"{url}/api/users/{user}", auth=admin, timeout=10)


def test_the_runners_user_holds_exactly_the_documented_permissions(runner_user_system, request):
    url, admin = management(request)
    vhost = urlparse(runner_user_system.amqp_uri).path.lstrip("/")
    user = runner_user_system.runner_user
    [given] = requests.get(f"{url}/api/users/{user}/permissions", auth=admin, timeout=10).json()
    assert (given["vhost"], given["configure"], given["write"], given["read"]) == (
        vhost, *broker_access.permissions().values())
    topics = requests.get(f"{url}/api/users/{user}/topic-permissions", auth=admin, timeout=10).json()
    assert sorted((t["exchange"], t["write"], t["read"]) for t in topics) == sorted(
        (t["exchange"], t["write"], t["read"]) for t in broker_access.topic_permissions())
    assert requests.get(f"{url}/api/users/{user}", auth=admin, timeout=10).json()["tags"] in ("", [])


def test_a_run_completes_through_a_runner_holding_only_the_runners_user(runner_user_system, test_images):
    api = runner_user_system.api
    task = api.register(test_images["ok"], name=f"runner-user-{uuid.uuid4().hex[:6]}")
    assert task["status"] == "READY", task
    result = api.wait_result(api.run(task["task_id"], times=2), timeout=120)
    assert result["status"] == "COMPLETE", result
    details = api.details(result["result_id"])
    assert [d["status"] for d in details] == ["COMPLETE", "COMPLETE"]
    assert {d["runner"] for d in details} == {"vm-runner-1"}  # the one runner, on the runners' user
    # it connected as that user (the services as theirs)
    log = runner_user_system.log("runner-1")
    assert "ACCESS_REFUSED" not in log and "access_refused" not in log.lower(), log[-3000:]


def rpc_request(conn, routing_key, args, kwargs):
    """Publish a nameko RPC request as any client could, on a channel of its own (publisher confirms: a
    refusal raises here)."""
    conn.Producer(conn.channel()).publish(
        json.dumps({"args": args, "kwargs": kwargs}), exchange=RPC, routing_key=routing_key,
        content_type="application/json", content_encoding="utf-8", reply_to=str(uuid.uuid4()),
        correlation_id=str(uuid.uuid4()), mandatory=True)


def tokens_named(system, name):
    with system.engine.connect() as conn:
        return conn.execute(text("SELECT count(*) FROM api_tokens WHERE principal = :name"),
                            {"name": name}).scalar_one()


def test_the_broker_refuses_the_runners_user_a_forged_create_token_and_any_other_services_rpc(
        runner_user_system):
    system = runner_user_system

    def create_token(uri, name):
        token_hash = hashlib.sha256(name.encode()).hexdigest()
        with Connection(uri, transport_options={"confirm_publish": True}) as conn:
            rpc_request(conn, "registry.create_token",
                        [token_hash, {"name": name, "team": "default", "role": "admin"}], {"caller": ADMIN})

    # the very message, sent with the services' user, makes an admin token: it is no harmless message
    control = f"forged-control-{uuid.uuid4().hex[:6]}"
    create_token(system.amqp_uri, control)
    wait_until(lambda: tokens_named(system, control) == 1, timeout=30, what="the control token")

    forged = f"forged-by-runner-{uuid.uuid4().hex[:6]}"
    with pytest.raises(AccessRefused, match="registry.create_token"):
        create_token(system.runner_uri, forged)
    with Connection(system.runner_uri, transport_options={"confirm_publish": True}) as conn:
        for routing_key in ("scheduler.list_audit", "scheduler.create_team", "scheduler.run_task",
                            "registry.resolve_token", "gateway.anything"):
            with pytest.raises(AccessRefused, match="ACCESS_REFUSED"):
                rpc_request(conn, routing_key, [], {"caller": ADMIN})
        # its own calls go through (the same connection, the same kind of message)
        rpc_request(conn, "scheduler.installation_id", [], {})
        # nor may it listen in: a queue of its own bound to others' requests, or the services' queues
        with pytest.raises(AccessRefused):
            Queue(f"rpc.reply-runner-{uuid.uuid4()}", exchange=RPC, routing_key="registry.#",
                  auto_delete=True)(conn.channel()).declare()
        with pytest.raises(AccessRefused):
            conn.channel().basic_consume(queue="rpc-registry", callback=lambda *a: None)
    assert tokens_named(system, forged) == 0
    listed = system.api.get("/token/", params={"limit": 1000}).json()
    assert control in {t["principal"] for t in listed} and forged not in {t["principal"] for t in listed}
