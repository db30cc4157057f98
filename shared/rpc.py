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
"""
import eventlet
from nameko.rpc import RpcProxy

from shared.errors import Unavailable

DEFAULT_TIMEOUT = 30.0


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
        except eventlet.Timeout:
            raise Unavailable(f"{self._method.service_name}.{self._method.method_name} did not answer "
                              f"within {self._timeout:g}s", "rpc") from None

    def call_async(self, *args, **kwargs):
        return self._method.call_async(*args, **kwargs)


class _Service:
    def __init__(self, proxy, timeout, ready):
        self._proxy = proxy
        self._timeout = timeout
        self._ready = ready

    def __getattr__(self, name):
        return _Method(getattr(self._proxy, name), self._timeout, self._ready)


class TimeoutRpcProxy(RpcProxy):
    """An ``RpcProxy`` whose calls raise ``Unavailable`` after ``RPC_TIMEOUT`` seconds."""

    def setup(self):
        super().setup()
        value = self.container.config.get("RPC_TIMEOUT")
        self.timeout = float(value) if value not in (None, "") else DEFAULT_TIMEOUT

    def get_dependency(self, worker_ctx):
        # nameko's QueueConsumer sends this event once it consumes (our reply queue among the rest)
        ready = self.rpc_reply_listener.queue_consumer._consumers_ready
        return _Service(super().get_dependency(worker_ctx), self.timeout, ready)
