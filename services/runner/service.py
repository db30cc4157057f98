"""Runner: executes containers on its host's Docker engine, one per slot, and reports by events."""
import logging

from nameko.events import BROADCAST, EventDispatcher, event_handler
from nameko.rpc import RpcProxy

from services.runner.dependencies import DockerExecutor
from services.runner.reporting import ReliableDispatcher
from services.runner.slots import HoldingsProvider, execution_slot
from shared import events
from shared.extensions import config_timer

log = logging.getLogger(__name__)


class RunnerService:
    name = "runner"

    scheduler = RpcProxy("scheduler")
    registry = RpcProxy("registry")
    docker = DockerExecutor()
    report = ReliableDispatcher()
    live = EventDispatcher()
    holdings = HoldingsProvider()

    @execution_slot
    def run_next(self, slot):
        runner = self.holdings.runner_id
        if not self.docker.engine_ok():
            return False  # take no work this host cannot run; ask again after the poll interval
        work = self.scheduler.claim_execution(runner)
        if work is None:
            return False
        detail_id, attempt = work["detail_id"], work["attempt"]
        self.holdings.hold(work)
        try:
            log.info("slot %s runs execution %s (result %s, index %s, attempt %s)",
                     slot, detail_id, work["result_id"], work["index"], attempt)

            def started(start, container_id):
                self.report(events.EXECUTION_STARTED, {
                    "detail_id": detail_id, "attempt": attempt, "runner": runner,
                    "start": start, "container_id": container_id})

            def output(logs):
                try:  # live output is best effort; the final logs come with the finish report
                    self.live(events.EXECUTION_OUTPUT, {
                        "detail_id": detail_id, "attempt": attempt, "logs": logs})
                except Exception as exc:  # the broker's errors vary by what failed
                    log.warning("could not send live output of %s: %s", detail_id, exc)

            outcome = self.docker.run(
                work, runner, on_started=started, on_output=output,
                should_stop=lambda: detail_id in self.holdings.stop_requested,
                credentials=lambda: self._pull_credentials(work["task_id"]))
            self.report(events.EXECUTION_FINISHED, {
                "detail_id": detail_id, "attempt": attempt, "runner": runner, **outcome})
        finally:
            self.holdings.release(detail_id)
        return True

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

    @config_timer("HEARTBEAT_INTERVAL", 5)
    def heartbeat(self):
        held = list(self.holdings.held)
        if not held:
            return
        for detail_id in self.scheduler.heartbeat(self.holdings.runner_id, held):
            log.info("execution %s is no longer ours to run; stopping it", detail_id)
            self.holdings.request_stop(detail_id)

    @event_handler(events.SCHEDULER, events.EXECUTIONS_QUEUED,
                   handler_type=BROADCAST, reliable_delivery=False)
    def on_executions_queued(self, payload):
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
