"""The runners' RabbitMQ user (shared/broker_access.py): its regexes admit the names nameko gives a runner's
queues and the routing keys of its own calls and reports, and nothing of the services'."""
import inspect
import re
import uuid

import pytest
from nameko.events import BROADCAST, EventHandler

from services.runner.service import RunnerService
from shared import broker_access, events
from shared.messages import CALLS

GIVEN = broker_access.permissions()
TOPICS = {t["exchange"]: t for t in broker_access.topic_permissions()}


def allows(pattern, name):
    return re.search(pattern, name) is not None  # RabbitMQ matches unanchored: ours carry ^ and $


def runner_handlers():
    """(source, event, method) of each event handler of the runner."""
    found = []
    for name, fn in inspect.getmembers(RunnerService, inspect.isfunction):
        for entrypoint in getattr(fn, "nameko_entrypoints", ()):
            if isinstance(entrypoint, EventHandler):
                assert entrypoint.handler_type is BROADCAST, name  # a queue of its own, never a shared one
                found.append((entrypoint.source_service, entrypoint.event_type, name))
    return found


def test_what_the_runner_listens_to_is_what_its_user_may_bind_and_consume():
    handlers = runner_handlers()
    assert {(source, event) for source, event, _ in handlers} == {
        (events.SCHEDULER, event) for event in broker_access.LISTENS}
    for source, event, method in handlers:
        queue = f"evt-{source}-{event}--runner.{method}-{uuid.uuid4().hex}"  # nameko's broadcast queue name
        assert all(allows(GIVEN[kind], queue) for kind in ("configure", "write", "read")), queue
        assert allows(TOPICS["scheduler.events"]["read"], event)
    reply = f"rpc.reply-runner-{uuid.uuid4()}"  # nameko's reply queue, bound with str(uuid4)
    assert all(allows(GIVEN[kind], reply) for kind in ("configure", "write", "read"))
    assert allows(TOPICS["nameko-rpc"]["read"], reply.removeprefix("rpc.reply-runner-"))


def test_the_runners_calls_are_declared_rpcs_and_the_only_routing_keys_it_may_publish():
    for service, methods in broker_access.CALLS.items():
        for method in methods:
            assert method in CALLS[service], (service, method)
            assert allows(TOPICS["nameko-rpc"]["write"], f"{service}.{method}")
    others = [f"{service}.{method}" for service, methods in CALLS.items() for method in methods
              if method not in broker_access.CALLS.get(service, ())]
    assert "registry.create_token" in others and "scheduler.list_audit" in others
    for key in others + ["gateway.x", "scheduler.claim_execution.x", "xscheduler.heartbeat", "#", "*.*"]:
        assert not allows(TOPICS["nameko-rpc"]["write"], key), key
    for event in broker_access.EVENTS:
        assert allows(TOPICS["runner.events"]["write"], event)
    assert not allows(TOPICS["runner.events"]["write"], "task_imported")
    assert not allows(TOPICS["scheduler.events"]["write"], "executions_queued")  # never the scheduler's


@pytest.mark.parametrize("name", [
    "rpc-registry", "rpc-scheduler", "rpc-gateway", "rpc.reply-gateway-" + str(uuid.uuid4()),
    "rpc.reply-runner-x", "evt-scheduler-result_finished--gateway.on_result_finished",
    "evt-runner-execution_finished--scheduler.on_execution_finished", "registry.events", "amq.topic",
    "evt-scheduler-executions_queued--runner.on_executions_queued-" + uuid.uuid4().hex + "x",
])
def test_no_queue_or_exchange_of_the_services_is_the_runners(name):
    assert not any(allows(GIVEN[kind], name) for kind in ("configure", "write", "read")), name


def test_binding_the_rpc_exchange_with_a_wildcard_is_refused():
    for key in ("#", "registry.#", "*.*", "scheduler.claim_execution", "registry.create_token"):
        assert not allows(TOPICS["nameko-rpc"]["read"], key)


def test_the_printed_commands_carry_exactly_these_permissions():
    commands = broker_access.rabbitmqctl("stevedore-runner", "/")
    assert commands[0].startswith("rabbitmqctl set_permissions -p '/' 'stevedore-runner' ")
    for value in GIVEN.values():
        assert f"'{value}'" in commands[0]
    assert len(commands) == 1 + len(TOPICS)
    for command, topic in zip(commands[1:], broker_access.topic_permissions()):
        assert command.endswith(f"'{topic['exchange']}' '{topic['write']}' '{topic['read']}'")


def test_the_script_prints_the_commands_and_refuses_to_apply_without_the_runners_password(capsys, monkeypatch):
    assert broker_access.main(["--print", "--user", "r", "--vhost", "v"]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[1:] == broker_access.rabbitmqctl("r", "v")
    monkeypatch.delenv("RABBITMQ_RUNNER_PASSWORD", raising=False)
    with pytest.raises(SystemExit) as refused:
        broker_access.main(["--management-url", "http://127.0.0.1:1"])
    assert refused.value.code == 2 and "RABBITMQ_RUNNER_PASSWORD" in capsys.readouterr().err


def test_every_rpc_the_runners_code_makes_is_one_its_user_may_publish():
    """Read off the runner's code (``scheduler.<method>(`` / ``registry.<method>(``), so that an RPC a runner
    starts to make is not refused by the broker for want of a line in broker_access.CALLS."""
    import pathlib

    made = set()
    for path in pathlib.Path(inspect.getfile(RunnerService)).parent.glob("*.py"):
        text = path.read_text()  # the services' proxies (``self.scheduler``), or one handed on (``scheduler``)
        made |= set(re.findall(r"\bself\.(registry)\.(\w+)[(.]", text))
        made |= set(re.findall(r"\b(scheduler)\.(\w+)[(.]", text))
    assert ("scheduler", "claim_executions") in made and ("scheduler", "heartbeat") in made
    for service, method in sorted(made):
        assert method in broker_access.CALLS.get(service, ()), f"{service}.{method}"
        assert allows(TOPICS[broker_access.RPC_EXCHANGE]["write"], f"{service}.{method}"), f"{service}.{method}"
