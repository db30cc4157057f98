"""RPC calls that give up: nameko's ``RpcProxy`` with the ``RPC_TIMEOUT`` of config.yml.

nameko waits for an RPC reply forever.  A reply can be lost when RabbitMQ
restarts while the callee works (the request is then delivered again and
answered twice; or the answer is published while the broker is away), and a
caller that waits forever is a worker that never comes back: for a runner,
a heartbeat timer that never ticks again.  With this proxy a call raises
``Unavailable`` after ``RPC_TIMEOUT`` seconds instead; a late reply is
dropped.

It also makes a call wait until the caller's reply queue is consumed: nameko
starts a service's timers alongside its consumer, so an RPC made by a timer
(or any entrypoint) that fires at start is otherwise answered into a reply
queue that does not exist yet, and the answer is lost.

Reads travel as transient messages.  nameko publishes every request and
reply persistent, with publisher confirms, to durable queues: RabbitMQ then
writes each to disk before it confirms, a few milliseconds a message on our
machines and half of RabbitMQ's CPU per read (docs/performance.md).  The
calls declared ``read`` (shared/messages.py, with each RPC's reply) change
nothing, so a request or reply of theirs lost to a broker restart loses nothing either: the caller gets ``Unavailable`` and may
ask again.  A reply that carries secrets (a claim's) is transient too, so that RabbitMQ does not write it
to disk; one lost is a claim the runner never heard of, handed back (services/runner/reconcile.py).  The calls
a runner makes again anyway (claims, heartbeats: ``repeated``) travel transient both ways, as reads do.  Their
requests go out transient (still confirmed, so an unknown service is still an error at once), and ``rpc``
answers a transient request with a transient reply.  Everything else (a RUN, a cancel, a hand-back) stays
persistent.
"""
import inspect
import logging

import eventlet
import nameko.rpc
from nameko.amqp.publish import Publisher
from nameko.constants import (AMQP_SSL_CONFIG_KEY, AMQP_URI_CONFIG_KEY, DEFAULT_SERIALIZER,
                              LOGIN_METHOD_CONFIG_KEY, SERIALIZER_CONFIG_KEY)
from nameko.exceptions import UnknownService
from nameko.rpc import RpcProxy, ServiceProxy, get_rpc_exchange

from shared.errors import Unavailable
from shared.handlers import first_line, is_transient
from shared.messages import secret_replies, transient_calls
from shared.principals import Caller
from shared.settings import settings_of

log = logging.getLogger(__name__)

TRANSIENT = 1  # AMQP delivery mode: kept in memory only

class _Method:
    def __init__(self, method, timeout, ready):
        self._method = method
        self._timeout = timeout
        self._ready = ready

    def __call__(self, *args, **kwargs):
        try:
            with eventlet.Timeout(self._timeout):
                self._ready.wait()
                reply = self._method.call_async(*args, **kwargs)
                return reply.result()
        except UnknownService:  # no consumer of its queue: not started yet, or stopped
            raise Unavailable(f"{self._method.service_name} is not running (nothing consumes its RPC queue); "
                              "try again", "rpc") from None
        except eventlet.Timeout:
            raise Unavailable(f"{self._method.service_name}.{self._method.method_name} did not answer "
                              f"within {self._timeout:g}s", "rpc") from None

    def call_async(self, *args, **kwargs):
        return self._method.call_async(*args, **kwargs)

    def within(self, seconds):
        """The same call, giving up after ``seconds`` if that is sooner than ``RPC_TIMEOUT``: for a call
        repeated on a timer (a heartbeat), whose timer waits for it before it ticks again."""
        return _Method(self._method, min(self._timeout, seconds), self._ready)


class _Service:
    def __init__(self, proxy, transient_proxy, reads, timeout, ready):
        self._proxy = proxy
        self._transient_proxy = transient_proxy
        self._reads = reads
        self._timeout = timeout
        self._ready = ready

    def __getattr__(self, name):
        proxy = self._transient_proxy if name in self._reads else self._proxy
        return _Method(getattr(proxy, name), self._timeout, self._ready)


def timeout_service(worker_ctx, target_service, reply_listener, timeout, **options):
    """The calls to ``target_service`` as ``TimeoutRpcProxy`` makes them, for ``worker_ctx``.

    An extension that is no dependency (an entrypoint) may use it too, with a
    ``WorkerContext`` of its own and the container's ``ReplyListener``.
    """
    # nameko's QueueConsumer sends this event once it consumes (our reply queue among the rest)
    ready = reply_listener.queue_consumer._consumers_ready
    persistent = ServiceProxy(worker_ctx, target_service, reply_listener, **options)
    transient = ServiceProxy(worker_ctx, target_service, reply_listener,
                             **{**options, "delivery_mode": TRANSIENT})
    return _Service(persistent, transient, transient_calls(target_service), timeout, ready)


class TimeoutRpcProxy(RpcProxy):
    """An ``RpcProxy`` whose calls raise ``Unavailable`` after ``RPC_TIMEOUT`` seconds."""

    def setup(self):
        super().setup()
        self.timeout = settings_of(self.container).rpc_timeout

    def get_dependency(self, worker_ctx):
        return timeout_service(worker_ctx, self.target_service, self.rpc_reply_listener, self.timeout,
                               **self.options)


class _TransientPublisher(Publisher):
    delivery_mode = TRANSIENT


class _TransientResponder(nameko.rpc.Responder):
    publisher_cls = _TransientPublisher


def names_caller(fn):
    """Whether an RPC's method takes a ``caller`` (a role or a team limits it: shared/principals.py)."""
    return "caller" in inspect.signature(fn).parameters


class Rpc(nameko.rpc.Rpc):
    """nameko's ``@rpc`` entrypoint, answering a transient request (a read), or any request of an RPC whose
    reply carries secrets (``shared.messages.secret_replies``), with a transient reply.

    An RPC whose method takes a ``caller`` refuses a request that names none, or names something that is
    no caller (``Caller.from_dict``: Forbidden, answered to the caller), before any worker runs: no such
    RPC runs for nobody, whatever its own code checks.

    A reply the broker cannot take (it is away) is given up, not raised: nameko
    kills the whole service when sending a reply fails.  The caller's call
    gives up after ``RPC_TIMEOUT``.  The request is acknowledged if its
    connection still stands; on a connection the outage broke it was not, and
    the broker delivers it again if it was persistent.
    """

    def check_signature(self, args, kwargs):
        super().check_signature(args, kwargs)
        fn = getattr(self.container.service_cls, self.method_name)
        if names_caller(fn):
            Caller.from_dict(inspect.getcallargs(fn, None, *args, **kwargs)["caller"])

    def handle_result(self, message, worker_ctx, result, exc_info):
        try:
            return self._reply(message, worker_ctx, result, exc_info)
        except Exception as exc:
            if not is_transient(exc):
                raise
            log.warning("could not answer %s (%s); its caller will time out",
                        worker_ctx.entrypoint.method_name, first_line(exc))
            self.rpc_consumer.queue_consumer.ack_message(message)
            return result, exc_info

    def _reply(self, message, worker_ctx, result, exc_info):
        if message.properties.get("delivery_mode") != TRANSIENT \
                and self.method_name not in secret_replies(self.container.service_name):
            return super().handle_result(message, worker_ctx, result, exc_info)
        config = self.container.config
        responder = _TransientResponder(
            config[AMQP_URI_CONFIG_KEY], get_rpc_exchange(config),
            config.get(SERIALIZER_CONFIG_KEY, DEFAULT_SERIALIZER), message,
            ssl=config.get(AMQP_SSL_CONFIG_KEY), login_method=config.get(LOGIN_METHOD_CONFIG_KEY))
        result, exc_info = responder.send_response(result, exc_info)
        self.rpc_consumer.queue_consumer.ack_message(message)
        return result, exc_info


rpc = Rpc.decorator
