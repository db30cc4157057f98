"""Which kind of RabbitMQ queue each of a service's queues is: ``QUEUE_TYPE``, decided in one place.

nameko 2 declares every queue itself, classic, and has no setting for its
type.  config.yml names ``Container`` as nameko's ``SERVICE_CONTAINER_CLS``:
once every extension of a service is set up, and before any consumes, it looks
at each queue the service will declare and, with ``QUEUE_TYPE=quorum``:

* a durable queue that outlives its consumer (``rpc-<service>``, every
  ``evt-<source>-<event>--<service>.<handler>`` of a service-pool handler: the
  work and the reports) is declared ``x-queue-type: quorum``, replicated over
  the cluster's nodes and kept while a majority of them is up;
* each process's RPC reply queue (``rpc.reply-<service>-<uuid>``) is made
  exclusive, so it stays classic and lives and dies with its connection: a
  process whose node fails declares it again on the node it fails over to
  (a durable classic queue of a node that is down cannot be declared
  elsewhere), and a reply lost with it is an RPC that gives up after
  ``RPC_TIMEOUT`` (shared/rpc.py);
* broadcast queues (wake-ups, cancels, the scheduler's probe) are exclusive
  already and stay classic.

``classic`` (the default) changes nothing: one RabbitMQ node, and every
existing installation, whose queues were declared classic (RabbitMQ refuses to
declare a queue again with another type), go on as before.  docs/deployment.md
"RabbitMQ" says how to move to quorum queues.
"""
import logging

from kombu import Queue
from nameko.containers import ServiceContainer, _log_time

from shared.settings import settings_of

log = logging.getLogger(__name__)

QUORUM = "quorum"
REPLY_PREFIX = "rpc.reply-"


def typed(queue, queue_type):
    """``queue`` as ``queue_type`` has it declared (changed in place; the one the service consumes)."""
    if queue_type != QUORUM:
        return queue
    if queue.name.startswith(REPLY_PREFIX):
        queue.exclusive = True
    elif queue.durable and not queue.exclusive and not queue.auto_delete:
        queue.queue_arguments = {**(queue.queue_arguments or {}), "x-queue-type": QUORUM}
    return queue


class Container(ServiceContainer):
    """nameko's container, with each queue given its type between the extensions' setup and start; and a
    worker pool at least as big as its extensions need (``workers_needed()``: a runner's slots each hold a
    worker while their execution runs, its heartbeats and event handlers need theirs besides)."""

    def start(self):
        self.started = True
        with _log_time("started %s", self):
            self.grow_workers()
            self.extensions.all.setup()
            queue_type = settings_of(self).queue_type
            for extension in self.extensions:
                queue = getattr(extension, "queue", None)
                if isinstance(queue, Queue):
                    typed(queue, queue_type)
            self.extensions.all.start()

    def grow_workers(self):
        """``max_workers`` (MAX_WORKERS) raised to what the extensions need, before any of them is set up (a
        consumer's prefetch follows it)."""
        needed = workers_needed(self)
        if needed > self.max_workers:
            log.info("%s: MAX_WORKERS %s raised to %s (what its extensions need at once)",
                     self.service_name, self.max_workers, needed)
            self.max_workers = needed
            self._worker_pool.resize(needed)


def workers_needed(container):
    """The workers the container's extensions need at once (0: no extension says)."""
    return max((extension.workers_needed() for extension in container.extensions
                if callable(getattr(extension, "workers_needed", None))), default=0)

