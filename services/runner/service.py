"""Runner: executes containers on its host's Docker engine, one per slot, and reports by events."""
import logging
import time

import eventlet

from nameko.events import BROADCAST, EventDispatcher, event_handler

from services.runner import reconcile as reconciling
from services.runner.ahead import Ahead
from services.runner.dependencies import DockerExecutor
from services.runner.disk import sweep_measurers
from services.runner.engine import ENGINE_ERRORS, EngineUnavailable
from services.runner.metrics import RunnerMetrics
from services.runner.reporting import ReliableDispatcher, ReportBatchesProvider
from services.runner.slots import HoldingsProvider, execution_slot, holding_timer
from services.runner.tes import TesRun
from services.runner.tes import recovered as recover_tes
from services.runner.tes import sweep as sweep_tes
from shared import events, statuses
from shared import messages as m
from shared.extensions import Settings, config_timer
from shared.messages import wire
from shared.rpc import TRANSIENT, TimeoutRpcProxy
from shared.timeutil import now

log = logging.getLogger(__name__)


def heartbeat_timeout(interval):
    """How long a heartbeat waits for its answer: twice its interval, at least 2 s (the next one says it
    again; a late answer is worth nothing)."""
    return max(2.0, 2 * interval)


class RunnerService:
    name = "runner"

    scheduler = TimeoutRpcProxy("scheduler")
    registry = TimeoutRpcProxy("registry")
    docker = DockerExecutor()
    report = ReliableDispatcher()
    batches = ReportBatchesProvider()  # the slots' reports coalesced (None: each its own event)
    live = EventDispatcher(delivery_mode=TRANSIENT)  # previews: the next one, or the end's, takes a lost one's place
    holdings = HoldingsProvider()
    metrics = RunnerMetrics()
    settings = Settings()

    @execution_slot
    def run_next(self, slot):
        holdings = self.holdings
        holdings.wait_reconciled()
        adoption = holdings.next_adoption()
        if adoption is not None:
            holdings.claims.skip(slot)
            work, container_id = adoption
            return self._execute(slot, work, container_id)
        if not self._may_claim():
            holdings.claims.skip(slot)
            return False
        # one claim for every slot that wants work now (slots.ClaimRounds); this slot's share of it
        work = holdings.claims.take(self._claim, slot)
        if work is None:
            return False
        if holdings.stopping and self._hand_back(work):
            return False
        return self._run_on(slot, work)

    def _run_on(self, slot, work):
        """Run ``work``, then each next execution prepared ahead while the one before ran (ahead.py)."""
        container = None
        while True:
            ahead = self._ahead() if self.holdings.prepare_ahead > 0 else None
            try:
                ran = self._execute(slot, work, None, prepared=container, ahead=ahead)
            except BaseException:
                if ahead is not None:
                    ahead.close()
                raise
            taken = ahead.take() if ahead is not None else None
            if taken is None:
                return ran
            work, container = taken
            self.holdings.prepared.discard(work["detail_id"])  # in a slot now
            if self.holdings.stopping and self._hand_back(work):
                self._discard(work, container)
                return False

    def _ahead(self):
        """The slot's next execution, prepared once its current container starts (services/runner/ahead.py)."""
        holdings = self.holdings

        def claim():
            if not holdings.may_prepare() or not self._may_claim():
                return None
            works = self._claim(1, ahead=True)
            for work in works:
                holdings.prepared.add(work["detail_id"])
            return works[0] if works else None

        def verdict(detail_id):
            return holdings.stopping or holdings.stop_verdict(detail_id)

        return Ahead(holdings.prepare_ahead, claim, lambda work: self.docker.prepare(work, holdings.runner_id),
                     self._give_back, self._discard, verdict, count=self.metrics.prepared)

    def _give_back(self, work):
        """Hand back a prepared execution: True taken back, False no longer ours, None the scheduler not asked."""
        try:
            return bool(self.scheduler.release_claim(self.holdings.runner_id, work["detail_id"], work["attempt"]))
        except Exception as exc:  # noqa: BLE001 -- the broker's and the RPC's errors vary; kept, asked again
            log.warning("could not hand back execution %s prepared ahead: %s", work["detail_id"], exc)
            return None

    def _discard(self, work, container):
        """A prepared execution given up: its container (created, never started) removed, the claim forgotten."""
        if container is not None:
            self.docker.remove_quietly(container.id)
        self.holdings.forget(work)

    def _may_claim(self):
        """Whether a slot may ask for work now: not while stopping, nor while the engine is away."""
        if self.holdings.stopping:
            return False
        engine = self.docker.state
        if engine.paused():
            return False
        if engine.away:
            # known to be away: no work is taken until it answers
            if not self.docker.engine_ok():
                return False
            log.info("the Docker engine answers again")
            engine.away = False
        return True

    def _claim(self, count, ahead=False):
        """Claim up to ``count`` executions for as many slots, in one call: the ones this runner now holds.
        ``ahead``: for a busy slot's next execution (ahead.py; the scheduler does not take it for an idle runner)."""
        holdings = self.holdings
        engine = self.docker.state
        # known to be there: asked alongside the claim, a round trip off every start
        engine_check = None if engine.away else eventlet.spawn(self.docker.engine_ok)
        max_memory, max_cpus = self.docker.ceilings()
        works = []
        with holdings.claiming():
            # only what fits this runner's ceilings (an older scheduler has no claim_executions: upgrade it first)
            with self.metrics.timed_claim() as timed:
                answer = self.scheduler.claim_executions(
                    holdings.runner_id, count, max_memory=max_memory, max_cpus=max_cpus, labels=holdings.labels,
                    gpu_ids=holdings.free_gpus(), info={**holdings.info(engine.engine), "held": list(holdings.held),
                                                          **({"ahead": True} if ahead else {})})
                timed["outcome"] = "work" if answer else "none"
            for work in (answer if isinstance(answer, list) else [])[:count]:
                # one that cannot be read is left to its lease's end (its secrets not logged)
                work = m.received_work(work)
                if work is not None:
                    work = wire(work)
                    holdings.note_received(work)
                    holdings.hold(work)
                    works.append(work)
        if engine_check is not None and not engine_check.wait():
            log.warning("the Docker engine does not answer; taking no work until it does")
            engine.away = True
            # not handed back: it runs, and ends truthfully if the engine stays away
            works = [work for work in works if not self._hand_back(work)]
        return works

    def _execute(self, slot, work, container_id, prepared=None, ahead=None):
        """Run (or, with ``container_id``, re-attach to) one held execution and report its end.

        ``prepared``: its container, created ahead (ahead.py).  ``ahead``: the slot's next execution, begun
        once this one's container runs.  False when it could not even start for want of an engine, and was
        handed back.
        """
        runner = self.holdings.runner_id
        detail_id, attempt = work["detail_id"], work["attempt"]
        whose = m.owned(work)  # every event about the attempt says whose run it is
        timings = {}  # when each step of its lifecycle ended (the runner's phase metrics)
        try:
            log.info("slot %s %s execution %s (result %s, index %s, attempt %s)", slot,
                     "re-attaches to" if container_id else "runs", detail_id, work["result_id"],
                     work["index"], attempt)

            def started(start, container_id, logs=None):
                # persistent, as the end's; with the first output so far, if any (no live output message then)
                self._report(events.EXECUTION_STARTED, wire(m.ExecutionStarted(
                    detail_id=detail_id, attempt=attempt, runner=runner, start=start,
                    container_id=container_id, **whose, **({"logs": logs} if logs else {}))))

            def output(logs):
                try:  # live output is best effort; the final logs come with the finish report
                    self.live(events.EXECUTION_OUTPUT, wire(m.ExecutionOutput(
                        detail_id=detail_id, attempt=attempt, runner=runner, logs=logs, **whose)))
                except Exception as exc:  # the broker's errors vary by what failed
                    log.warning("could not send live output of %s: %s", detail_id, exc)

            def should_stop():
                return self.holdings.stop_verdict(detail_id)

            def starting():  # its container starts: the next one is prepared meanwhile, when it is due
                if ahead is not None:
                    ahead.begin(self.holdings.durations.delay(work["result_id"]))

            if container_id:
                outcome = self.docker.resume(container_id, work, started, should_stop, output)
            elif work.get("tes"):  # a GA4GH TES task: its executors in turn (services/runner/tes.py)
                outcome = TesRun(self.docker, self.settings, work, runner, self.metrics.timed_pull).run(
                    started, should_stop, output)
            elif prepared is not None:
                outcome = self.docker.run_prepared(prepared, work, started, should_stop, output, timings, starting)
            else:
                try:
                    outcome = self.docker.run(
                        work, runner, on_started=started, should_stop=should_stop, on_output=output,
                        credentials=lambda: self._pull_credentials(work["task_id"]),
                        pull_timer=self.metrics.timed_pull, timings=timings, on_starting=starting)
                except EngineUnavailable as exc:
                    # nothing ran: give it back rather than spend one of its attempts
                    log.warning("execution %s not started (%s); handing it back", detail_id, exc)
                    self.docker.state.failed_start()
                    if self._hand_back(work):
                        return False
                    outcome = {"status": statuses.ERROR, "reason": str(exc), "exit_code": None,
                               "start": None, "end": now()}
            self._report(events.EXECUTION_FINISHED, m.finished_report(
                detail_id=detail_id, attempt=attempt, runner=runner, **outcome, **whose))
            timings["reported"] = time.monotonic()
            if outcome.get("start") is not None and outcome.get("end") is not None:
                self.holdings.durations.note(work["result_id"], outcome["end"] - outcome["start"])
            # reported first, removed after: its container goes to the background remover (remover.py) and
            # the slot claims its next execution meanwhile; a report that raised leaves it for reconcile
            self.metrics.observe_phases(timings, removing=self.docker.dispose())
            return True
        finally:
            self.holdings.release(detail_id)

    def _report(self, event_type, payload):
        """A start or end report, persistent and retried; with the other slots' in one message when batched."""
        if self.batches is None:
            return self.report(event_type, payload)
        # mandatory: a batch no queue takes (a scheduler from before) comes back, and goes as single events
        return self.batches.send(event_type, payload, lambda reports: self.report(
            events.EXECUTION_REPORTS, {"runner": self.holdings.runner_id, "reports": reports}, mandatory=True),
            self.report)

    def _pull_credentials(self, task_id):
        """The task's registry login, asked of the registry only when the image must be pulled.

        Never stored here nor logged; if the registry cannot answer, pull anonymously
        (a private image then fails with the registry's refusal as the reason).
        """
        try:
            return self.registry.pull_credentials(task_id)
        except Exception as exc:  # the registry down, or the key unusable: the pull tells
            log.warning("could not get pull credentials of task %s: %s", task_id, exc)
            return None

    def _hand_back(self, work):
        """Give back a claim that never started (we are stopping, or the engine is away).

        True when the scheduler took it back; its attempt number is unspent.
        """
        try:
            released = self.scheduler.release_claim(self.holdings.runner_id, work["detail_id"],
                                                    work["attempt"])
        except Exception as exc:  # then it runs, or ends truthfully, here
            log.warning("could not hand back execution %s: %s", work["detail_id"], exc)
            return False
        if released:
            self.holdings.forget(work)
        return released

    @holding_timer("heartbeat_interval")
    def heartbeat(self):
        # sent while idle too: the runner list (GET /runner/) and which runs a live runner can take
        held = list(self.holdings.held)
        info = self.holdings.info(self.docker.state.engine)
        # a heartbeat whose reply is lost (its RabbitMQ node died) must not hold the next one back for a
        # whole RPC_TIMEOUT, as long as a lease (30 s each by default): this timer waits for its worker
        heartbeat = self.scheduler.heartbeat.within(heartbeat_timeout(self.settings.heartbeat_interval))
        if not held:  # only the runner list's: a scheduler away meanwhile is no news
            try:
                heartbeat(self.holdings.runner_id, held, info=info)
            except Exception as exc:  # noqa: BLE001 -- the broker's and the RPC's errors vary
                log.debug("idle heartbeat not delivered: %s", exc)
            return
        for detail_id in heartbeat(self.holdings.runner_id, held, info=info):
            log.info("execution %s is no longer ours to run; stopping it", detail_id)
            self.holdings.request_stop(detail_id)

    @config_timer("reconcile_interval", eager=True)
    def reconcile(self):
        """Square the engine's containers and the scheduler's view with ours (see reconcile.py)."""
        try:
            summary = reconciling.reconcile(
                self.holdings, self.docker, self.scheduler, self.report,
                recover=lambda detail_id, attempt: recover_tes(self.docker, detail_id, attempt,
                                                               self.settings.tes_log_bytes))
            summary["tes_leftovers"] = sweep_tes(
                self.docker, self.holdings.runner_id, set(self.holdings.held), self.scheduler.execution_states,
                lambda: reconciling.installation_of(self.holdings, self.scheduler))
            summary["disk_measurers"] = sweep_measurers(self.docker.client)
            if any(summary.values()):
                log.info("reconciled: %s", summary)
        finally:
            self.holdings.mark_reconciled()

    @config_timer("image_gc_interval")
    def collect_images(self):
        """Remove the least recently used images this engine holds for Stevedore past their bounds
        (shared/image_gc.py)."""
        try:
            self.metrics.images_removed(self.docker.collect_images())
        except ENGINE_ERRORS as exc:
            log.info("image collection skipped: the Docker engine did not answer (%s)", exc)

    @event_handler(events.SCHEDULER, events.EXECUTIONS_QUEUED,
                   handler_type=BROADCAST, reliable_delivery=False)
    def on_executions_queued(self, payload):
        # the scheduler names as many idle runners as there is work for, or nobody (all wake)
        runners = payload.get("runners")
        if runners is None or self.holdings.runner_id in runners:
            self.holdings.wake()

    # a cancel reaches the runner at once by broadcast; the heartbeat's answer
    # is the fallback if this runner was disconnected when it was sent
    @event_handler(events.SCHEDULER, events.RESULT_CANCELLED,
                   handler_type=BROADCAST, reliable_delivery=False)
    def on_result_cancelled(self, payload):
        self.holdings.request_stop_result(payload["result_id"])

    @event_handler(events.SCHEDULER, events.EXECUTION_CANCEL_REQUESTED,
                   handler_type=BROADCAST, reliable_delivery=False)
    def on_execution_cancel_requested(self, payload):
        self.holdings.request_stop(payload["detail_id"])
