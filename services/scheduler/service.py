"""Scheduler: owns results and details; turns a RUN into executions; folds runner reports."""
import logging

from nameko.events import SERVICE_POOL, EventDispatcher, event_handler

from services.scheduler import executions as ex
from services.scheduler import (auditing, changes, deliveries, failurepolicy, fleet, knowntasks, recovery, secrets,
                                teams, waits, webhooks)
from services.scheduler import folding  # the module: `nameko run` would start a class
from services.scheduler import tes
from services.scheduler.holdings import installation_id
from services.scheduler.runnersizes import RunnerSizesProvider
from services.scheduler.idlerunners import IdleRunnersProvider
from services.scheduler.metrics import SchedulerMetrics, execution_figures
from services.scheduler.models import Base
from services.scheduler.schedules import entrypoints as schedules  # the module: `nameko run` would start a class
from shared import events, pages, statuses, validation
from shared import messages as m
from shared.db import Database, ping
from shared.errors import NotFound, Unavailable
from shared.extensions import Settings, config_timer
from shared.handlers import retrying_event_handler, swept
from shared.messages import wire
from shared.principals import Caller
from shared.sealing import SealingKey
from shared.rpc import TRANSIENT, rpc
from shared.timeutil import now

log = logging.getLogger(__name__)

INLINE_FAN_OUT = 100  # runs of at most this many executions are fanned out by the RUN itself


class SchedulerService(folding.FoldingMixin, recovery.RecoveryMixin, failurepolicy.PolicyMixin, changes.ChangeMixin,
                       waits.DependenciesMixin, schedules.SchedulesMixin, deliveries.DeliveriesMixin,
                       fleet.FleetMixin, tes.TesMixin, secrets.SecretsMixin, auditing.AuditMixin, teams.TeamsMixin):
    name = "scheduler"

    # an UPDATE of many rows by primary key (a batch of reports' details, services/scheduler/executions/batch.py)
    # goes in pages of 100 statements a round trip (psycopg2's execute_batch), not one round trip a row
    db = Database(Base, engine_options={"executemany_mode": "values_plus_batch"})
    settings = Settings()
    dispatch = EventDispatcher()
    # wake-ups: kept in memory only (one lost costs a poll interval at most, and the broker writes none to disk)
    wake = EventDispatcher(delivery_mode=TRANSIENT)
    webhook_sender = webhooks.WebhookSender()
    metrics = SchedulerMetrics()
    idle = IdleRunnersProvider()
    runner_sizes = RunnerSizesProvider()
    heard = fleet.HeardProvider()
    sealer = SealingKey()  # opens a run's secrets when a runner claims an execution (secrets.py)

    # --------------------------------------------------------------- API

    @rpc
    def run_task(self, task_id, body, idempotency_key=None, task=None, caller=None):
        """Accept a RUN of ``task_id``; ``task``: the registry's ``task_facts`` of it, sent by the
        gateway when this answered ``TaskUnconfirmed`` (services/scheduler/knowntasks.py), and always for a
        caller of one team (the registry found the task visible to it).  The run is of the task's team
        (``knowntasks.team_for_run``: an admin or operator acting for another team runs a task of that
        one), made by ``caller``, within the team's ``max_queued`` (executions/quotas.py)."""
        caller = Caller.from_dict(caller)
        params, spread = validation.run_parts(body, self.settings.run_max_times, *self.settings.ceilings)
        self.webhook_sender.require_configured(params)
        session = self.db.session
        team = knowntasks.team_for_run(session, task_id, task, caller)
        if idempotency_key:
            earlier = ex.find_by_key(session, idempotency_key, task_id, params, spread, team)
            if earlier is not None:
                return ex.result_as_dict(earlier)
        self._require_secrets(team, params)  # each one its secret_env names, in the run's team
        # held until the result is committed: the task's DELETE waits for it, and then counts it
        known = knowntasks.for_run(session, task_id, self.settings.task_cache_seconds, task)
        # the runs ``after`` names, of the new run's team only: held until the result is committed
        ex.dependencies.check(session, params, team)
        # a small run gets its executions in the same transaction: claimable when the
        # RUN commits, runners woken at once (result_submitted then finds nothing to do)
        inline = params["times"] <= INLINE_FAN_OUT
        result, created = ex.create_result(session, known.task_id, known.name, known.digest,
                                           params, idempotency_key, with_details=inline, spread=spread,
                                           prepare=ex.dependencies.declare if params.get("after") else None,
                                           record=ex.audited(caller, "result.run"),
                                           team=team, submitted_by=caller.principal)
        if created:
            if inline and not params.get("after"):
                self._wake(result.id, result.times, sized=folding.sized(params), whose=ex.owner(result))
            self.dispatch(events.RESULT_SUBMITTED, ex.submitted(result, inline))
            if fleet.placed(params):  # says at once when no live runner can take it
                self._place([result.id])
                session.expire(result)
            if params.get("after"):  # released or cancelled now if what it waits for ended
                self._settle(result.id)
                result = ex.get_result(session, result.id)
        return ex.result_as_dict(result)

    @rpc
    def rerun_failed(self, result_id, caller=None):
        caller = Caller.from_dict(caller)
        session = self.db.session
        original = ex.get_result(session, result_id, caller=caller)
        # the ceilings may have been lowered since: a rerun no runner may take is refused
        validation.within_ceilings(original.params, *self.settings.ceilings)
        knowntasks.for_rerun(session, original.task_id)  # held until the rerun is made, as for a RUN
        result = ex.rerun_failed(session, result_id, caller, most=self.settings.rerun_max)
        self.dispatch(events.RESULT_SUBMITTED, ex.submitted(result))
        if fleet.placed(result.params):  # keeps the run's constraints and gpus: says at once, as a RUN does
            self._place([result.id])
            session.expire(result)
        return ex.result_as_dict(result)

    @rpc
    def close_task(self, task_id, until=None):
        """Close a task to RUNs for good, or refuse (409) while it has active runs: a DELETE's first step.

        ``until``: epoch seconds after which the caller no longer waits; a request
        taken later (it waited in RabbitMQ while no scheduler ran) is refused, so
        that a DELETE answered 503 leaves the task as it was.
        """
        if until is not None and now() > until:
            raise Unavailable(f"the DELETE of task {task_id} gave up waiting for the scheduler; send it again",
                              "task_id")
        knowntasks.close(self.db.session, task_id)

    @rpc
    def ping(self):
        return ping(self.db.session)

    @rpc
    def execution_figures(self):
        """Cluster-wide figures for the gateway's /metrics: executions by status, queue depth."""
        return execution_figures(self.db.session)

    @rpc
    def get_result(self, result_id, caller=None):
        session = self.db.session
        row = ex.get_result(session, result_id, caller=Caller.from_dict(caller))
        return ex.result_as_dict(row, durations=ex.duration_percentiles(session, result_id, row),
                                 webhook=webhooks.describe(row))

    @rpc
    def list_results(self, status=None, task_id=None, limit=100, after=None, schedule_id=None, label=None,
                     team=None, caller=None, paged=False, after_key=None):
        rows = ex.list_results(self.db.session, status, task_id, pages.fetch_limit(limit, paged),
                               pages.cursor(after, after_key),
                               schedule_id, label, team, Caller.from_dict(caller))
        return pages.reply(map(ex.result_as_dict, rows), limit, self.settings.list_page_bytes, paged)

    @rpc
    def list_details(self, result_id, status=None, limit=100, after=None, caller=None, paged=False):
        rows = ex.list_details(self.db.session, result_id, status, pages.fetch_limit(limit, paged), after,
                               Caller.from_dict(caller), stream=True)
        return pages.reply(map(ex.detail_as_dict, rows), limit, self.settings.list_page_bytes, paged)

    @rpc
    def get_detail(self, result_id, detail_id, caller=None):
        return ex.detail_as_dict(ex.get_detail(self.db.session, result_id, detail_id, Caller.from_dict(caller)))

    @rpc
    def get_logs(self, result_id, detail_id, caller=None):
        ex.get_result(self.db.session, result_id, caller=Caller.from_dict(caller))  # 404 for another team's
        return ex.get_logs(self.db.session, result_id, detail_id)

    @rpc
    def get_log_bytes(self, result_id, detail_id, streams=("stdout", "stderr"), since=None, caller=None):
        """The kept output as bytes (base64); with ``since``, only what is kept past those offsets."""
        self.metrics.log_read(since)
        ex.get_result(self.db.session, result_id, caller=Caller.from_dict(caller))  # 404 for another team's
        return ex.get_log_bytes(self.db.session, result_id, detail_id, streams, since)

    @rpc
    def cancel_result(self, result_id, caller=None):
        return self._cancel(result_id, caller)

    def _cancel(self, result_id, caller=None, summary=None):
        """Cancel a run for ``caller`` (``summary``: more for its audit row, as a TES task's)."""
        ex.get_result(self.db.session, result_id, caller=Caller.from_dict(caller))  # 404 for another team's
        result, stopped = ex.cancel_result(self.db.session, result_id, caller, summary)
        self.metrics.executions_cancelled(stopped)
        self.dispatch(events.RESULT_CANCELLED, wire(m.ResultCancelled(result_id=result.id, **ex.owner(result))))
        if result.status in statuses.TERMINAL:
            self._notify_finished(result)
        # the runs waiting for it are settled by on_result_cancelled (a pool's worker), not here: a thousand
        # of them took this call past the RPC's timeout
        return ex.result_as_dict(ex.get_result(self.db.session, result_id))

    @rpc
    def delete_result(self, result_id, caller=None):
        ex.get_result(self.db.session, result_id, caller=Caller.from_dict(caller))  # 404 for another team's
        self._delete(result_id, expired=False, caller=caller)

    @rpc
    def cancel_detail(self, result_id, detail_id, caller=None):
        ex.get_result(self.db.session, result_id, caller=Caller.from_dict(caller))  # 404 for another team's
        result, detail = ex.cancel_detail(self.db.session, result_id, detail_id, caller)
        if detail.status == statuses.CANCELLED:
            self.metrics.executions_cancelled(1)
        # its runner stops it; ended CANCELLED now, its per_index pairs are settled by on_execution_cancel_requested.
        # One that had ended before never gets here: ex.cancel_detail refused it (409), nothing sent
        self.dispatch(events.EXECUTION_CANCEL_REQUESTED,
                      wire(m.ExecutionCancelRequested(result_id=result.id, detail_id=detail.id, **ex.owner(result))))
        if result.status in statuses.TERMINAL:
            self._notify_finished(result)
        return ex.detail_as_dict(detail)

    # --------------------------------------------------------------- runners (claims, heartbeats: fleet.py)

    @event_handler(events.RUNNER, events.EXECUTION_OUTPUT, handler_type=SERVICE_POOL)
    def on_execution_output(self, report):
        # live output is best effort: a snapshot lost to an outage (or unreadable) is followed by the next
        report = m.received(m.ExecutionOutput, report, "a live output report")
        if report is not None:
            ex.store_live_logs(self.db.session, wire(report))

    # --------------------------------------------------------------- the registry's tasks
    # the scheduler's copy of them (services/scheduler/knowntasks.py), each event handled once

    @retrying_event_handler(events.REGISTRY, events.TASK_SUBMITTED, handler_type=SERVICE_POOL)
    def on_task_submitted(self, payload):
        knowntasks.heard(self.db.session, payload, statuses.SUBMITTED)

    @retrying_event_handler(events.REGISTRY, events.TASK_IMPORTED, handler_type=SERVICE_POOL)
    def on_task_imported(self, payload):
        knowntasks.heard(self.db.session, payload, statuses.READY)
        self._tes_images_heard()

    @retrying_event_handler(events.REGISTRY, events.TASK_IMPORT_FAILED, handler_type=SERVICE_POOL)
    def on_task_import_failed(self, payload):
        knowntasks.heard(self.db.session, payload, statuses.ERROR)
        self._tes_images_heard()

    @retrying_event_handler(events.REGISTRY, events.TASK_DELETED, handler_type=SERVICE_POOL)
    def on_task_deleted(self, payload):
        knowntasks.deleted(self.db.session, payload["task_id"])

    # --------------------------------------------------------------- fan-out

    @retrying_event_handler(events.SCHEDULER, events.RESULT_SUBMITTED, handler_type=SERVICE_POOL)
    def on_result_submitted(self, payload):
        if payload.get("fanned_out"):
            return  # made with the result: nothing to do while the woken runners claim it
        self._fan_out(payload["result_id"])

    @config_timer("sweep_interval")
    def sweep(self):
        """Finish what a crash or a lost message left undone; each item on its own (``swept``)."""
        session = self.db.session
        for result_id in ex.unfinished_fan_outs(session, older_than=now() - 10):
            log.warning("resuming the fan-out of result %s", result_id)
            swept(session, "the fan-out of result", result_id, self._fan_out, result_id)
        if self.backbone.trusted_for(self._lease()):
            # only once runners have had a full lease to report in since broker and
            # database last failed us (or since our start): see services.scheduler.recovery
            for detail_id, attempt, runner in ex.expired_leases(session):
                log.warning("runner %s lost execution %s (attempt %s)", runner, detail_id, attempt)
                swept(session, "the lost lease of execution", detail_id, self._finish, {
                    "detail_id": detail_id, "attempt": attempt, "runner": runner,
                    "status": statuses.ERROR, "exit_code": None, "lease_expired": True,
                    "reason": f"runner {runner} was lost (no heartbeat for {self._lease():g}s)",
                })
        for result_id, params in ex.sized_active_results(session):
            reason = self.runner_sizes.misfit(params)
            if reason:
                swept(session, "the waiting note of result", result_id, ex.note_waiting, session, result_id, reason)
        swept(session, "the fleet's", "placement", self._sweep_fleet)
        for result_id in ex.unfinished_cancels(session):
            log.warning("finishing the cancel of result %s", result_id)
            swept(session, "the cancel of result", result_id, self._finish_cancel, result_id)
        self.finish_stops()
        for result in ex.unnotified_finished(session):
            swept(session, "the end notice of result", result.id, self._notify_finished, result)

    def _finish_cancel(self, result_id):
        self.metrics.executions_cancelled(ex.finish_cancel(self.db.session, result_id))
        self._dependents(result_id)

    @config_timer("retention_sweep_interval")
    def delete_expired_results(self):
        """Delete the results that ended more than RESULT_RETENTION_DAYS ago (0: keep them all)."""
        days = self.settings.result_retention_days
        if days <= 0:
            return
        session = self.db.session
        ended_before = now() - days * 86400
        deleted = 0
        while True:  # each result in a transaction of its own; a batch at a time
            expired = ex.expired_results(session, ended_before)
            for result_id in expired:
                try:
                    self._delete(result_id, expired=True)
                except NotFound:  # another scheduler deleted it meanwhile
                    continue
                deleted += 1
            if len(expired) < ex.RETENTION_BATCH:
                break
        if deleted:
            log.info("deleted %s results that ended more than %g days ago", deleted, days)

    # --------------------------------------------------------------- helpers

    def _lease(self):
        return self.settings.lease_seconds

    def _fan_out(self, result_id):
        session = self.db.session
        sized = whose = None
        while True:
            made = ex.fan_out_batch(session, result_id,
                                    batch=self.settings.fan_out_batch)
            if not made:
                break
            if sized is None:  # read once for the run's every batch
                result = ex.get_result(session, result_id)
                sized, whose = folding.sized(result.params), ex.owner(result)
            self._wake(result_id, made, sized, whose=whose)
        if sized is not None:  # its new executions may wait, or be the pairs others wait for
            self._settle(result_id)
            self._dependents(result_id)

    def _delete(self, result_id, expired, caller=None):
        whose = ex.owner(ex.get_result(self.db.session, result_id))  # for the event (the row goes)
        task_id = ex.delete_result(self.db.session, result_id, caller, expired)
        self.dispatch(events.RESULT_DELETED,
                      wire(m.ResultDeleted(result_id=result_id, task_id=task_id, expired=expired, **whose)))

    def _wake(self, result_id, count, sized=False, whose=None):
        """Tell runners that ``count`` executions can be claimed: as many idle ones as needed, or all.

        All when the run asks for memory or CPUs (``sized``): which idle runners
        fit it is known only to their claims.  ``whose``: the run's ``ex.owner`` (else read).
        """
        runners = None if sized else self.idle.pick(count)
        whose = whose if whose is not None else ex.owner_of(self.db.session, result_id)
        queued = m.ExecutionsQueued(result_id=result_id, count=count, runners=runners, **whose)
        self.wake(events.EXECUTIONS_QUEUED, wire(queued, exclude_none=True))

