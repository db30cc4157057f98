"""The runner's metrics (docs/metrics.md), served by each runner on its METRICS_PORT.

Its slots, busy and free, labelled by runner id and read when scraped; and the
image pulls it made (an image not yet on its engine).
"""
from prometheus_client.core import GaugeMetricFamily

from services.runner.slots import Holdings, slot_count
from shared.metrics import PREFIX, PullMetrics


def slot_usage(holdings, slots):
    """(busy, free) slots: a slot is busy from its claim until the execution is reported.

    Executions adopted after a restart but not yet given a slot do not count.
    """
    busy = min(slots, max(0, len(holdings.held) - len(holdings.adoptions)))
    return busy, slots - busy


class RunnerMetrics(PullMetrics):
    where = "runner"
    holdings = Holdings()

    def declare(self, registry):
        super().declare(registry)
        self.slots = slot_count(self.container)
        registry.register(_SlotCollector(self))


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
