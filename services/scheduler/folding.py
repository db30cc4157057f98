"""The scheduler's side of runner reports: each start and end folded, alone or a runner's batch at once.

A runner sends its reports coalesced (``execution_reports``: several executions' starts and ends in one
persistent message, services/runner/reporting.py); a runner from before sends each as its own event
(``execution_started``, ``execution_finished``), and both are handled.  A batch is folded in one transaction
(services/scheduler/executions/batch.py); should that fail for anything but a passing outage, it is rolled
back and its reports folded one by one, each as its own event would be: one report PostgreSQL refuses
fails alone, and the rest are folded.  A report folded twice (a batch delivered again after a crash) changes
nothing the second time.
"""
import logging
from collections import Counter, defaultdict

from nameko.events import SERVICE_POOL

from services.scheduler import executions as ex
from services.scheduler import fleet, tes_views
from services.scheduler.executions import batch
from shared import events, statuses
from shared import messages as m
from shared.handlers import first_line, is_transient, retrying_event_handler
from shared.messages import wire

log = logging.getLogger(__name__)

# what a finished report's outcome is made of: folded alone when its whole report cannot be
# (anything else it carries, a container_id the database refuses among it, is left out)
OUTCOME_FIELDS = ("detail_id", "attempt", "runner", "lease_expired", "status", "exit_code", "reason",
                  "start", "end")


def sized(params):
    """Whether a run asks for memory or CPUs, so that not every runner may fit it."""
    params = params or {}
    return bool(params.get("memory") or params.get("cpus")) or fleet.placed(params)


def _read(item):
    """One report of a batch as ``batch.fold`` takes it, or None (logged: it cannot be folded)."""
    item = m.received(m.ExecutionReport, item, "a report of a batch")
    if item is None:
        return None
    if item.event == events.EXECUTION_STARTED:
        report = m.received(m.ExecutionStarted, item.report, "a started report")
        return None if report is None else (batch.STARTED, wire(report))
    report = dict(item.report)
    if m.received(m.ReportKey, report, "a finished report") is None:
        log.error("a finished report names no execution; dropped: %.300r", report)
        return None
    return batch.FINISHED, (report, report.pop("logs", None), tes_views.storable_log(report.pop("tes_log", None)))


class FoldingMixin:
    """Mixed into ``SchedulerService`` (which provides ``db``, ``settings``, ``metrics``, ``dispatch``,
    ``_wake``, ``_stop`` and ``_dependents``/``_settle``)."""

    @retrying_event_handler(events.RUNNER, events.EXECUTION_STARTED, handler_type=SERVICE_POOL)
    def on_execution_started(self, report):
        self._started(report)

    @retrying_event_handler(events.RUNNER, events.EXECUTION_FINISHED, handler_type=SERVICE_POOL)
    def on_execution_finished(self, report):
        self._finish(report)

    @retrying_event_handler(events.RUNNER, events.EXECUTION_REPORTS, handler_type=SERVICE_POOL)
    def on_execution_reports(self, payload):
        items = payload.get("reports") if isinstance(payload, dict) else None
        if not isinstance(items, list):
            log.error("a batch of reports holds no list of reports; dropped: %.300r", payload)
            return
        for first in range(0, len(items), m.REPORTS_PER_MESSAGE):  # a transaction at most this many
            chunk = items[first:first + m.REPORTS_PER_MESSAGE]
            self._fold_batch([read for read in map(_read, chunk) if read is not None], chunk)

    def _fold_batch(self, reports, items):
        if not reports:
            return
        try:
            folded = batch.fold(self.db.session, reports, retry_base=self.settings.retry_backoff,
                                retry_cap=self.settings.retry_backoff_max)
        except Exception as exc:  # noqa: BLE001 -- one report may be what failed: each alone, then
            if is_transient(exc):
                raise  # the whole batch again, by the retrying handler (folding twice changes nothing)
            self.db.session.rollback()
            log.warning("folding a batch of %s reports failed (%s); folding them one by one",
                        len(reports), first_line(exc)[:200])
            self._fold_each(items)
            return
        self._after_batch(folded)

    def _fold_each(self, items):
        for item in items:
            if not isinstance(item, dict) or not isinstance(item.get("report"), dict):
                continue  # logged by ``_read``
            try:
                if item.get("event") == events.EXECUTION_STARTED:
                    self._started(item["report"])
                elif item.get("event") == events.EXECUTION_FINISHED:
                    self._finish(dict(item["report"]))
            except Exception as exc:  # noqa: BLE001 -- the poison one is logged; the others are folded
                if is_transient(exc):
                    raise
                self.db.session.rollback()
                log.exception("a report of execution %.40r could not be folded; dropped",
                              item["report"].get("detail_id"))

    def _started(self, report):
        # one that cannot be read is dropped: the finished report carries the start too
        report = m.received(m.ExecutionStarted, report, "a started report")
        if report is None:
            return
        _, detail = ex.mark_started(self.db.session, wire(report))
        if detail is not None:
            self.metrics.execution_started(detail)

    def _after_batch(self, folded):
        """What follows a batch's commit, once per run where once is what is meant (its end notified once)."""
        for _, detail in folded.started:
            self.metrics.execution_started(detail)
        for wait in folded.waits:
            self.metrics.unreported_start(wait)
        runs, wakes, ended = {}, Counter(), defaultdict(list)
        for result, detail in folded.finished:
            self.metrics.attempt_finished(detail)
            runs[result.id] = result
            if detail.status == statuses.QUEUED or result.parallelism:
                wakes[result.id] += 1  # a retry is queued, or a parallelism slot came free
            if detail.status in statuses.TERMINAL:
                ended[result.id].append(detail.index)
        for result_id, count in wakes.items():
            result = runs[result_id]
            self._wake(result_id, count, sized=sized(result.params), whose=ex.owner(result))
        for result in runs.values():
            if ex.needs_stop(result):  # it reached max_failures: the rest are stopped now
                self._stop(result.id, result.ended_by)
            elif result.status in statuses.TERMINAL:
                self._notify_finished(result)
        for result_id, indexes in ended.items():
            for dependent in folded.waiting_on.get(result_id, ()):
                for index in indexes:
                    self._settle(dependent, index)

    def _finish(self, report):
        """Fold an attempt's end.  The outcome is never dropped for what came with it.

        Output or fields that cannot be stored are left out by ``mark_finished``
        (the reason says so).  Should folding fail for anything else that is not
        transient, it is folded again with the report's outcome alone and a
        reason saying why.  Only a report naming no execution (no detail id and
        attempt) cannot be folded; it is logged, and an execution it was about
        ends when its lease runs out.
        """
        # its outcome fields are read one by one (``executions.reports.readable``), never refused whole
        if not isinstance(report, dict) or m.received(m.ReportKey, report, "a finished report") is None:
            log.error("a finished report names no execution; dropped: %.300r", report)
            return
        logs = report.pop("logs", None)
        tes_log = tes_views.storable_log(report.pop("tes_log", None))
        fold = dict(retry_base=self.settings.retry_backoff, retry_cap=self.settings.retry_backoff_max,
                    on_start=self.metrics.unreported_start)
        try:
            result, detail = ex.mark_finished(self.db.session, report, logs=logs, tes_log=tes_log, **fold)
        except Exception as exc:  # noqa: BLE001 -- see the docstring
            if is_transient(exc):
                raise  # the whole report again, by the retrying handler
            self.db.session.rollback()
            log.exception("folding the end of execution %s (attempt %s) failed; folding its outcome alone",
                          report["detail_id"], report["attempt"])
            note = f"its report could not be stored in full: {ex.clean_text(first_line(exc), 200)}"
            reason = report.get("reason") if isinstance(report.get("reason"), str) else None
            outcome = {field: report[field] for field in OUTCOME_FIELDS if field in report}
            result, detail = ex.mark_finished(
                self.db.session, {**outcome, "reason": f"{reason}; {note}" if reason else note}, **fold)
        if result is None:
            return
        self.metrics.attempt_finished(detail)
        if detail.status == statuses.QUEUED or result.parallelism:
            # a retry is queued, or a parallelism slot came free: wake idle runners
            self._wake(result.id, 1, sized=sized(result.params), whose=ex.owner(result))
        if ex.needs_stop(result):  # it reached max_failures: the rest are stopped now
            self._stop(result.id, result.ended_by)
        elif result.status in statuses.TERMINAL:
            self._notify_finished(result)
        if detail.status in statuses.TERMINAL:
            self._dependents(result.id, detail.index)

    def _notify_finished(self, result):
        self.dispatch(events.RESULT_FINISHED, ex.result_as_dict(result))
        ex.mark_notified(self.db.session, result.id)
