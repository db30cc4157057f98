"""The scheduler's metrics (docs/metrics.md).

Served by each scheduler process on its METRICS_PORT: what that process folded
(executions finished, how long they waited in the queue and how long they
ran).  The figures of the whole cluster (executions by status, queue depth)
are read from the datastore by ``execution_figures`` and served by the
gateway's ``/metrics``.
"""
from prometheus_client import Counter, Histogram
from sqlalchemy import func, select, text

from services.scheduler.executions.reports import queue_wait
from services.scheduler.executions.state import counts
from services.scheduler.models import Result
from shared import statuses as st
from shared.messages import ExecutionFigures, wire
from shared.metrics import PREFIX, ServiceMetrics
from shared.timeutil import duration, now

INF = float("inf")
# seconds an execution waited for a runner
WAIT_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, INF)
# seconds an execution's container ran
RUN_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600, INF)


def attempt_run_time(detail):
    """Seconds the attempt just folded into ``detail`` ran, or None when it never started."""
    attempts = detail.attempts or []
    if not attempts:
        return None
    last = attempts[-1]
    return duration(last.get("start"), last.get("end"))


class SchedulerMetrics(ServiceMetrics):
    def declare(self, registry):
        self.finished = Counter(
            f"{PREFIX}_executions_finished", "Executions this scheduler saw end, by final status",
            ["status"], registry=registry)
        for status in sorted(st.TERMINAL):
            self.finished.labels(status)  # every status present from the start, at 0
        self.queue_wait = Histogram(
            f"{PREFIX}_execution_queue_wait_seconds",
            "Seconds from submission (or the end of a retry's backoff) to the container's start",
            buckets=WAIT_BUCKETS, registry=registry)
        self.claims = Counter(
            f"{PREFIX}_claims", "Claims this scheduler answered, by outcome: work handed out, or none",
            ["outcome"], registry=registry)
        for outcome in ("work", "none"):
            self.claims.labels(outcome)
        self.log_reads = Counter(
            f"{PREFIX}_log_reads", "get_log_bytes calls answered: the whole kept output, or only past offsets",
            ["kind"], registry=registry)
        for kind in ("whole", "since"):
            self.log_reads.labels(kind)
        self.runs_stopped = Counter(
            f"{PREFIX}_runs_stopped", "Runs this scheduler stopped for their failure policy, by reason",
            ["reason"], registry=registry)
        for reason in ("max_failures", "deadline"):
            self.runs_stopped.labels(reason)
        self.schedule_fires = Counter(
            f"{PREFIX}_schedule_fires", "Schedule ticks this scheduler handled, by outcome: fired (a run "
            "started), skipped (Forbid), failed (task not READY, RUN refused), missed (not run: downtime)",
            ["outcome"], registry=registry)
        for outcome in ("fired", "skipped", "failed", "missed"):
            self.schedule_fires.labels(outcome)
        self.run_time = Histogram(
            f"{PREFIX}_execution_run_seconds", "Seconds an execution's container ran (each attempt)",
            buckets=RUN_BUCKETS, registry=registry)

    def schedule_fire(self, outcome, missed=0):
        """A schedule's fire (``outcome`` FIRED, SKIPPED, FAILED, MISSED), and earlier ticks it passed over."""
        self.schedule_fires.labels(outcome.lower()).inc()
        if missed:
            self.schedule_fires.labels("missed").inc(missed)

    def claimed(self, works):
        """A claim answered (``works``: what it handed out, one call for all of a runner's free slots)."""
        self.claims.labels("work" if works else "none").inc()

    def log_read(self, since):
        """A ``get_log_bytes`` call (raw downloads, log followers' first read and their polls)."""
        self.log_reads.labels("whole" if since is None else "since").inc()

    def execution_started(self, detail):
        wait = queue_wait(detail)
        if wait is not None:
            self.queue_wait.observe(wait)

    def unreported_start(self, wait):
        """A start folded with its attempt's end (the runner reported both at once)."""
        self.queue_wait.observe(wait)

    def attempt_finished(self, detail):
        """After ``mark_finished`` folded a report: its run time, and its end unless it is retried."""
        took = attempt_run_time(detail)
        if took is not None:
            self.run_time.observe(took)
        if detail.status in st.TERMINAL:
            self.finished.labels(detail.status).inc()

    def run_stopped(self, reason):
        """A run stopped by its failure policy (``max_failures`` or ``deadline``)."""
        self.runs_stopped.labels(reason).inc()

    def executions_cancelled(self, count):
        """Executions that ended CANCELLED without a runner (never started)."""
        if count:
            self.finished.labels(st.CANCELLED).inc(count)


# ---------------------------------------------------------------- cluster figures

QUEUE_DEPTH_SQL = text("""
    SELECT COALESCE(SUM(CASE WHEN r.parallelism IS NULL THEN q.n
                             ELSE LEAST(q.n, GREATEST(r.parallelism - r.active, 0)) END), 0)
    FROM (SELECT result_id, count(*) AS n FROM details
          WHERE status = 'QUEUED' AND runner IS NULL AND NOT waiting AND (not_before IS NULL OR not_before <= :now)
          GROUP BY result_id) q
    JOIN results r ON r.id = q.result_id
    WHERE NOT r.cancel_requested
""")

_COUNTER_SUMS = (Result.times, Result.n_running, Result.n_complete, Result.n_error,
                 Result.n_cancelled, Result.n_killed)


def execution_figures(session):
    """{"executions": {status: count}, "queue_depth": n}, read from the datastore now.

    Counts are the results' counters summed (the same the API shows per
    result), so QUEUED includes executions a fan-out has not created yet.
    Queue depth counts what a runner could claim now: queued, unclaimed, past
    any retry backoff, within its run's parallelism, not cancelled.
    """
    sums = session.execute(select(*(func.coalesce(func.sum(c), 0) for c in _COUNTER_SUMS))).one()
    totals = _Totals(*(int(v) for v in sums))
    depth = session.execute(QUEUE_DEPTH_SQL, {"now": now()}).scalar()
    session.rollback()
    return wire(ExecutionFigures(executions=counts(totals), queue_depth=int(depth or 0)))


class _Totals:
    """The summed counters, shaped like a result for ``executions.state.counts``."""

    def __init__(self, times, n_running, n_complete, n_error, n_cancelled, n_killed):
        self.times, self.n_running = times, n_running
        self.n_complete, self.n_error, self.n_cancelled, self.n_killed = n_complete, n_error, n_cancelled, n_killed
