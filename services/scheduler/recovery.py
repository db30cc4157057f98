"""The scheduler's side of recovering from faults, kept apart from its everyday rules.

* ``BackboneWatch``: whether the scheduler may believe that a silent runner
  is lost.  A lease runs out when its runner's heartbeats stop arriving; they
  also stop arriving when RabbitMQ or PostgreSQL is away, or while the
  scheduler cannot consume, and then every runner would be declared lost at
  once.  So the sweep expires leases only once the scheduler itself has been
  able to reach both for a full lease period: its own probe event has gone
  round through RabbitMQ without a gap, and no worker of the scheduler has
  failed on a transient error (a database or broker error) in that time.
* ``RecoveryMixin``: the probe, and the RPCs a runner uses to reconcile its
  Docker engine and its memory with the database (``services.runner.reconcile``).
"""
import logging
import time
import uuid

from nameko.events import BROADCAST, event_handler
from nameko.extensions import DependencyProvider

from services.scheduler import holdings
from services.scheduler.executions.state import owner
from shared import events, statuses
from shared.db import ping
from shared.extensions import config_timer
from shared.handlers import first_line, is_transient
from shared.messages import BackboneProbe, ExecutionsQueued, wire
from shared.rpc import rpc
from shared.settings import settings_of

log = logging.getLogger(__name__)

class Backbone:
    def __init__(self, probe_interval):
        self.instance = uuid.uuid4().hex
        # a probe later than this after the previous one means the round trip broke
        self.gap = max(3 * probe_interval, 3.0)
        self.streak_start = None
        self.last_probe = None
        self.last_trouble = None
        self.distrusted = False

    def probe_received(self, payload):
        if payload.get("instance") != self.instance:
            return
        stamp = time.monotonic()
        if self.last_probe is None or stamp - self.last_probe > self.gap:
            if self.last_probe is not None:
                log.warning("probes go round again after a gap of %.1fs", stamp - self.last_probe)
            self.streak_start = stamp
        self.last_probe = stamp

    def suspect(self, what):
        if not self.distrusted:
            log.warning("%s: no runner will be declared lost until broker and database have "
                        "been fine for a full lease", what)
            self.distrusted = True
        self.last_trouble = time.monotonic()

    def trusted_for(self, seconds):
        """Whether broker and database have both been fine for the last ``seconds``."""
        stamp = time.monotonic()
        trusted = (self.last_probe is not None and stamp - self.last_probe <= self.gap
                   and stamp - self.streak_start >= seconds
                   and (self.last_trouble is None or stamp - self.last_trouble >= seconds))
        if trusted and self.distrusted:
            log.info("broker and database fine for %gs: expiring silent runners' leases again", seconds)
        self.distrusted = not trusted
        return trusted


class BackboneWatch(DependencyProvider):
    """Gives the service its ``Backbone``; notes every worker that failed on a transient error."""

    def setup(self):
        self.backbone = Backbone(settings_of(self.container).probe_interval)

    def get_dependency(self, worker_ctx):
        return self.backbone

    def worker_result(self, worker_ctx, result=None, exc_info=None):
        if exc_info is not None and is_transient(exc_info[1]):
            self.backbone.suspect(f"{worker_ctx.entrypoint.method_name} failed with "
                                  f"{exc_info[0].__name__}")


class RecoveryMixin:
    """Mixed into ``SchedulerService`` (which provides ``db``, ``dispatch`` and ``_lease``)."""

    backbone = BackboneWatch()

    @config_timer("probe_interval", eager=True)
    def probe_backbone(self):
        try:
            ping(self.db.session)
        except Exception as exc:
            self.backbone.suspect(f"the database does not answer ({first_line(exc)})")
            return
        try:
            self.dispatch(events.BACKBONE_PROBE,
                          wire(BackboneProbe(instance=self.backbone.instance, at=time.time())))
        except Exception as exc:
            self.backbone.suspect(f"RabbitMQ does not take our probe ({first_line(exc)})")

    @event_handler(events.SCHEDULER, events.BACKBONE_PROBE, handler_type=BROADCAST, reliable_delivery=False)
    def on_backbone_probe(self, payload):
        self.backbone.probe_received(payload)

    @rpc
    def runner_holdings(self, runner):
        """The executions the database says ``runner`` holds (as ``claim_execution`` gives them, plus status)."""
        return holdings.runner_holdings(self.db.session, runner, self._lease())

    @rpc
    def execution_states(self, detail_ids):
        """{detail_id: {attempt, runner, status}} for the ids this scheduler knows."""
        return holdings.execution_states(self.db.session, detail_ids)

    @rpc
    def installation_id(self):
        """This installation's id, which runners put on every container (``stevedore.installation``)."""
        return holdings.installation_id(self.db.session)

    @rpc
    def release_claim(self, runner, detail_id, attempt):
        """Take back a claim that never started (its reply was lost, or its runner hands it back)."""
        result, detail = holdings.release_claim(self.db.session, runner, detail_id, attempt)
        if result is None:
            return False
        if detail.status == statuses.CANCELLED:
            self.metrics.executions_cancelled(1)
            log.info("runner %s handed back execution %s, cancelled meanwhile", runner, detail_id)
            if result.status in statuses.TERMINAL:
                self._notify_finished(result)
            return True
        log.warning("runner %s handed back execution %s (attempt %s) unstarted: back in the queue",
                    runner, detail_id, attempt)
        self.wake(events.EXECUTIONS_QUEUED, wire(ExecutionsQueued(result_id=result.id, count=1, **owner(result)),
                                                 exclude_none=True))
        return True
