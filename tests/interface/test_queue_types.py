"""QUEUE_TYPE (shared/queues.py): which queue RabbitMQ really made for each of a service's; and the worker pool the
container grows to what its extensions need (a runner's slots).

A service with every kind of queue Stevedore's services have (an RPC queue, a
reply queue, a service-pool and a broadcast event handler), started in the
container config.yml names, on the machine's one RabbitMQ node: the
management API says what was declared, and calls and events still go round.
"""
import eventlet
import pytest
from nameko.events import BROADCAST, SERVICE_POOL, EventDispatcher, event_handler
from nameko.extensions import DependencyProvider
from nameko.testing.services import entrypoint_hook

from shared.rpc import TimeoutRpcProxy, rpc

NAME = "queue_types_probe"


class Probe:
    name = NAME
    me = TimeoutRpcProxy(NAME)
    dispatch = EventDispatcher()
    seen = []

    @rpc
    def echo(self, value):
        return value

    @rpc
    def echo_through_rabbitmq(self, value):
        return self.me.echo(value)

    @rpc
    def poke(self, value):
        self.dispatch("poked", value)

    @event_handler(NAME, "poked", handler_type=SERVICE_POOL)
    def on_poked(self, value):
        Probe.seen.append(("pool", value))

    @event_handler(NAME, "poked", handler_type=BROADCAST, reliable_delivery=False)
    def on_poked_everywhere(self, value):
        Probe.seen.append(("broadcast", value))


def declared(rabbit_manager, vhost):
    """{kind of queue: (type, durable, exclusive)} as RabbitMQ lists them (an exclusive queue is never durable)."""
    kinds = {}
    for queue in rabbit_manager.get_queues(vhost):
        name = queue["name"]
        kind = ("rpc" if name == f"rpc-{NAME}" else "reply" if name.startswith("rpc.reply-")
                else "broadcast" if name.startswith(f"evt-{NAME}-poked--{NAME}.on_poked_everywhere")
                else "pool" if name == f"evt-{NAME}-poked--{NAME}.on_poked" else name)
        kinds[kind] = (queue["type"], queue["durable"], queue["exclusive"])
    return kinds


@pytest.mark.parametrize("queue_type, expected", [
    ("quorum", {"rpc": ("quorum", True, False), "pool": ("quorum", True, False),
                "reply": ("classic", False, True), "broadcast": ("classic", False, True)}),
    ("", {"rpc": ("classic", True, False), "pool": ("classic", True, False),
          "reply": ("classic", True, False), "broadcast": ("classic", False, True)}),
])
def test_queue_type_makes_work_queues_quorum_and_leaves_exclusive_ones_classic(
        container_factory, rabbit_config, rabbit_manager, queue_type, expected):
    config = {**rabbit_config, "SERVICE_CONTAINER_CLS": "shared.queues.Container", "QUEUE_TYPE": queue_type}
    container = container_factory(Probe, config)
    container.start()
    Probe.seen.clear()

    with entrypoint_hook(container, "echo_through_rabbitmq") as echo:
        assert echo("hello") == "hello"
    with entrypoint_hook(container, "poke") as poke:
        poke("x")
    with eventlet.Timeout(10):
        while sorted(Probe.seen) != [("broadcast", "x"), ("pool", "x")]:
            eventlet.sleep(0.05)

    assert declared(rabbit_manager, rabbit_config["vhost"]) == expected


class Busy:
    """A service whose extension needs more workers than MAX_WORKERS gives (as a runner's slots do)."""
    name = "worker_pool_probe"

    class Needs(DependencyProvider):
        def workers_needed(self):
            return 23

    needs = Needs()

    @rpc
    def echo(self, value):
        return value


def test_the_container_grows_its_worker_pool_to_what_its_extensions_need(
        container_factory, rabbit_config):
    config = {**rabbit_config, "SERVICE_CONTAINER_CLS": "shared.queues.Container", "max_workers": 10}
    container = container_factory(Busy, config)
    container.start()
    assert container.max_workers == 23 and container._worker_pool.size == 23
    with entrypoint_hook(container, "echo") as echo:
        assert echo("still answers") == "still answers"
