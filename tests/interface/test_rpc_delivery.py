"""Reads travel as transient messages, everything else persistent (shared/rpc.py).

The real scheduler on the real broker, called through ``TimeoutRpcProxy`` by a
caller service; a spy queue bound to the RPC exchange keeps a copy of every
request and reply, whose AMQP delivery mode the test reads.
"""
import uuid

import nameko.rpc
import pytest
from kombu import Connection, Exchange, Queue
from kombu.exceptions import OperationalError
from nameko.testing.services import entrypoint_hook

from services.scheduler.service import SchedulerService
from shared.errors import Forbidden, NotFound, Unavailable
from shared.messages import CALLS, reads, transient_calls
from shared.rpc import TimeoutRpcProxy, rpc
from tests.support import ADMIN

PERSISTENT = 2


class Caller:
    name = "rpc_delivery_caller"
    scheduler = TimeoutRpcProxy("scheduler")

    @rpc
    def ask(self, method, *args, **kwargs):
        try:
            return getattr(self.scheduler, method)(*args, **kwargs)
        except NotFound as exc:
            return f"not found: {exc}"
        except Forbidden as exc:
            return f"forbidden: {exc}"


@pytest.fixture
def spy(rabbit_config):
    """Every message through the RPC exchange of this test's vhost, in order."""
    with Connection(rabbit_config["AMQP_URI"]) as conn:
        queue = Queue(f"spy-{uuid.uuid4().hex}", Exchange("nameko-rpc", type="topic", durable=True),
                      routing_key="#", auto_delete=True)
        queue(conn.channel()).declare()

        def messages():
            got = []
            while (message := queue(conn.channel()).get(no_ack=True)) is not None:
                got.append((message.delivery_info["routing_key"], message.properties))
            return got
        yield messages


def test_reads_claims_and_heartbeats_travel_transient_and_writes_persistent(
        container_factory, service_config, spy):
    scheduler = container_factory(SchedulerService, service_config)
    caller = container_factory(Caller, service_config)
    scheduler.start()
    caller.start()
    missing = uuid.uuid4().hex

    with entrypoint_hook(caller, "ask") as ask:
        assert ask("ping") == "ok"
        assert ask("get_result", missing, caller=ADMIN).startswith("not found")      # a read, answered with an error
        assert ask("cancel_result", missing, caller=ADMIN).startswith("not found")   # a write
        assert ask("heartbeat", "runner-x", []) == []                   # asked again anyway
        assert ask("claim_executions", "runner-x", 4) == []

    seen = spy()
    requests = {key.split(".", 1)[1]: props for key, props in seen if key.startswith("scheduler.")}
    replies = {props["correlation_id"]: props for key, props in seen if not key.startswith("scheduler.")}
    assert set(requests) == {"ping", "get_result", "cancel_result", "heartbeat", "claim_executions"}
    assert {"ping", "get_result"} <= reads("scheduler") and "cancel_result" not in reads("scheduler")
    assert {"heartbeat", "claim_executions", "claim_execution"} <= transient_calls("scheduler") - reads("scheduler")
    for method, request in requests.items():
        mode = 1 if method in transient_calls("scheduler") else PERSISTENT
        assert request["delivery_mode"] == mode, method
        # the reply (found by the request's correlation id) in the same mode
        assert replies[request["correlation_id"]]["delivery_mode"] == mode, method


def test_a_call_naming_no_caller_is_refused_across_the_broker_and_changes_nothing(
        container_factory, service_config, sql):
    scheduler = container_factory(SchedulerService, service_config)
    caller = container_factory(Caller, service_config)
    scheduler.start()
    caller.start()
    with entrypoint_hook(caller, "ask") as ask:
        refused = ask("create_team", {"name": "forged"})
        assert refused.startswith("forbidden: caller: this call names no caller"), refused
        assert ask("list_audit").startswith("forbidden: caller:")
        assert ask("create_team", {"name": "forged"}, caller={"principal": "x", "role": "root", "team": "t"}) \
            .startswith("forbidden: caller.role:")
    assert sql("SELECT count(*) FROM teams WHERE name = 'forged'").scalar_one() == 0


def test_every_rpc_of_a_called_service_is_declared_with_its_reply_and_every_declared_one_exists():
    from services.registry.service import RegistryService
    for service, cls in (("scheduler", SchedulerService), ("registry", RegistryService)):
        rpcs = {name for name in dir(cls)
                if any(isinstance(e, nameko.rpc.Rpc) for e in getattr(getattr(cls, name), "nameko_entrypoints", ()))}
        assert set(CALLS[service]) == rpcs, set(CALLS[service]) ^ rpcs


def test_a_reply_the_broker_cannot_take_is_given_up_and_the_service_lives_on(
        container_factory, service_config, monkeypatch):
    config = {**service_config, "RPC_TIMEOUT": 2}
    scheduler = container_factory(SchedulerService, config)
    caller = container_factory(Caller, config)
    scheduler.start()
    caller.start()
    send = nameko.rpc.Responder.send_response
    replies = []

    def broker_away_twice(self, result, exc_info):
        replies.append(result)
        if len(replies) <= 2:
            raise OperationalError("[Errno 111] ECONNREFUSED")
        return send(self, result, exc_info)

    monkeypatch.setattr(nameko.rpc.Responder, "send_response", broker_away_twice)
    missing = uuid.uuid4().hex
    with entrypoint_hook(caller, "ask") as ask:
        with pytest.raises(Unavailable):
            ask("ping")                  # a transient reply lost
        with pytest.raises(Unavailable):
            ask("cancel_result", missing, caller=ADMIN)  # a persistent one
        assert ask("ping") == "ok"       # nameko would have killed the scheduler at the first
    assert not scheduler._died.ready()
