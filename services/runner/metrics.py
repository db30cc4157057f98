"""The runner's metrics (docs/metrics.md), served by each runner on its METRICS_PORT.

Its slots, busy and free, labelled by runner id and read when scraped; the
image pulls it made (an image not yet on its engine); and how long its claims
took, asked to answered (the control plane's latency as a runner sees it).
"""
import time
from contextlib import contextmanager

from prometheus_client import Counter, Histogram
from prometheus_client.core import GaugeMetricFamily

from services.runner.slots import Holdings, slot_count
from shared.metrics import PREFIX, PullMetrics


def slot_usage(holdings, slots):
    """(busy, free) slots: a slot is busy from its claim until the execution is reported.

    Executions adopted after a restart but not yet given a slot do not count, nor those prepared ahead.
    """
    busy = min(slots, max(0, len(holdings.held) - len(holdings.adoptions) - len(holdings.prepared)))
    return busy, slots - busy


# a slot's steps from one execution's end to the next one's start, as the runner sees them (the claim between
# them is the claim histogram): "outcome" = its exit seen to its final state and output read, "report" = its
# finished report sent, "remove" = what removing its container cost the slot (nothing but a hand-over with the
# background remover, unless its backlog was full), "create" = claim answered to container created,
# "start" = created to started (the attach and the start)
PHASES = (("outcome", "exited", "outcome"), ("report", "outcome", "reported"), ("create", "begin", "created"),
          ("start", "created", "started"))

CLAIM_BUCKETS = (0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3,
                 0.5, 0.75, 1.0, 2.0, 5.0, 10.0, 30.0)


class RunnerMetrics(PullMetrics):
    where = "runner"
    holdings = Holdings()

    def declare(self, registry):
        super().declare(registry)
        self.slots = slot_count(self.container)
        registry.register(_SlotCollector(self))
        self.phases = Histogram(f"{PREFIX}_runner_phase_seconds",
                                "Seconds each step between one execution's end and the next one's start took "
                                "on a slot", ["phase"], buckets=CLAIM_BUCKETS, registry=registry)
        self.claims = Histogram(f"{PREFIX}_runner_claim_seconds",
                                "Seconds a claim took, from the runner's call to the scheduler's answer",
                                ["outcome"], buckets=CLAIM_BUCKETS, registry=registry)

        self.ahead = Counter(f"{PREFIX}_runner_prepared",
                             "Executions a busy slot claimed ahead (services/runner/ahead.py), by what became of "
                             "them", ["outcome"], registry=registry)

    def prepared(self, outcome):
        """Count what became of an execution a slot prepared ahead: started, handed_back or not_ours."""
        self.ahead.labels(outcome).inc()

    @contextmanager
    def timed_claim(self):
        """Observe the claim in the block; the block sets ``box["outcome"]`` (work, none), else error."""
        started = time.monotonic()
        box = {"outcome": "error"}
        try:
            yield box
        finally:
            self.claims.labels(box["outcome"]).observe(time.monotonic() - started)


    def observe_phases(self, timings, removing=None):
        """The steps of one execution's lifecycle (``Executor.run``'s ``timings``, with ``reported``) that
        happened; ``removing``: the seconds the slot spent removing its container."""
        for phase, begin, end in PHASES:
            if begin in timings and end in timings:
                self.phases.labels(phase).observe(max(0.0, timings[end] - timings[begin]))
        if removing is not None:
            self.phases.labels("remove").observe(removing)


class _SlotCollector:
    def __init__(self, metrics):
        self.metrics = metrics

    DESCRIPTIONS = (("busy", "Slots of this runner running an execution"),
                    ("free", "Slots of this runner waiting for work"))

    def describe(self):
        # the names only: the registry asks at declaration, before the slots exist
        for name, text in self.DESCRIPTIONS:
            yield GaugeMetricFamily(f"{PREFIX}_runner_slots_{name}", text, labels=["runner"])

    def collect(self):
        holdings = self.metrics.holdings
        usage = dict(zip(("busy", "free"), slot_usage(holdings, self.metrics.slots)))
        for family in self.describe():
            family.add_metric([holdings.runner_id], usage[family.name.rsplit("_", 1)[1]])
            yield family
