"""Slot turnaround: on each lane (a runner's slot, a raw thread), from one container's exit to the next one's start.

Read from the engine's own event stream (``die``, ``destroy``, ``create``, ``start``, stamped by the engine,
one clock for both sides), so Stevedore and the raw SDK loop are measured alike; split into

* ``exit_to_create``: the exit seen, the outcome and output read, the report (Stevedore), the claim (Stevedore),
  and, where the remove is on the path, the remove, until the engine created the next container (negative:
  created before the exit, prepared ahead: services/runner/ahead.py);
* ``create_to_start``: the engine's create done to its start done (the attach and the start);
* ``exit_to_destroy``: the previous container's exit to its removal done (on the path when the remove is
  in line: it then ends before the next create; with the background remover it overlaps the claim).

And from the runners' own histograms (``stevedore_runner_phase_seconds``, ``stevedore_runner_claim_seconds``),
scraped before and after, the mean of each step as the runner saw it.

Pure helpers (``turnarounds``, ``phase_means``) are unit-tested in tests/unit/test_bench_stats.py.
"""
import threading
import time

import requests
from prometheus_client.parser import text_string_to_metric_families

from bench.stats import summary

ACTIONS = ["create", "start", "die", "destroy"]
LANE_LABEL = "stevedore.bench.lane"  # the raw side's thread, on its containers


class EngineLifecycle(threading.Thread):
    """Every container event of ``actions``, as (engine time, action, container id, labels), while running.

    The throughput leg reads its slot turnarounds from it; the latency leg asks it when the engine
    created a container (``seen``), to split a submit-to-start time at the engine's create.
    """

    def __init__(self, client, actions=ACTIONS):
        super().__init__(daemon=True)
        self.stream = client.events(decode=True, filters={"type": "container", "event": list(actions)})
        self.events = []
        self.lock = threading.Lock()

    def run(self):
        try:
            for event in self.stream:
                actor = event.get("Actor") or {}
                with self.lock:
                    self.events.append((event["timeNano"] / 1e9, event.get("Action") or event.get("status"),
                                        actor.get("ID") or event.get("id"), actor.get("Attributes") or {}))
        except Exception:  # noqa: BLE001, S110 -- the stream is closed by stop()
            pass

    def between(self, begin, end):
        with self.lock:
            return [e for e in self.events if begin <= e[0] <= end]

    def seen(self, action, container_id=None, detail_id=None, timeout=5.0):
        """The engine time of ``action`` on a container (see ``first_seen``), waiting up to ``timeout``
        seconds for its event to arrive; None if it did not."""
        deadline = time.monotonic() + timeout
        while True:
            with self.lock:
                at = first_seen(self.events, action, container_id, detail_id)
            if at is not None or time.monotonic() >= deadline:
                return at
            time.sleep(0.01)

    def stop(self):
        self.stream.close()


def first_seen(events, action, container_id=None, detail_id=None):
    """The engine time of the first ``action`` event of a container named by its id or by its
    ``stevedore.detail_id`` label (an execution's container, whose id the client never sees); None if none."""
    for at, what, cid, labels in events:
        if what == action and (cid == container_id or (detail_id and labels.get("stevedore.detail_id") == detail_id)):
            return at
    return None


def lane_of(labels):
    """The lane a container ran on: a raw thread, or a Stevedore runner (one slot each in the bench)."""
    if labels.get(LANE_LABEL):
        return "raw:" + labels[LANE_LABEL]
    if labels.get("stevedore.managed") == "true" and not labels.get("stevedore.bench"):
        return "runner:" + (labels.get("stevedore.runner") or "?")
    return None


def turnarounds(events, max_gap=5.0):
    """From (time, action, id, labels) events of one side's window: the exit-to-next-start gaps of each lane.

    Returns {"total", "exit_to_create", "create_to_start", "exit_to_destroy"}: lists of seconds.  A gap
    over ``max_gap`` seconds is a lane that waited for work (none queued), not a turnaround: left out.
    """
    by_container = {}
    lanes = {}
    for at, action, cid, labels in sorted(events, key=lambda e: e[0]):
        lane = lane_of(labels)
        if lane is None:
            continue
        seen = by_container.setdefault(cid, {"lane": lane})
        seen.setdefault(action, at)
        lanes.setdefault(lane, [])
        if cid not in lanes[lane]:
            lanes[lane].append(cid)
    out = {"total": [], "exit_to_create": [], "create_to_start": [], "exit_to_destroy": []}
    for cids in lanes.values():
        ended = [by_container[c] for c in cids if "die" in by_container[c]]
        begun = sorted((by_container[c] for c in cids if "start" in by_container[c] and "create" in by_container[c]),
                       key=lambda c: c["start"])
        for previous in ended:
            # the next container started after the exit (a slot's next one may have been created before it:
            # prepared ahead, services/runner/ahead.py; then exit_to_create is negative)
            following = next((c for c in begun if c["start"] >= previous["die"] and c is not previous), None)
            if following is None:
                continue
            gap = following["start"] - previous["die"]
            if gap > max_gap:
                continue
            out["total"].append(gap)
            out["exit_to_create"].append(following["create"] - previous["die"])
            out["create_to_start"].append(following["start"] - following["create"])
            if previous.get("destroy") is not None:
                out["exit_to_destroy"].append(previous["destroy"] - previous["die"])
    return out


def summarise(gaps):
    return {part: summary(values, 1000) for part, values in gaps.items()}


def scrape_runner_phases(system):
    """{(metric, label value): (sum, count)} of the runners' phase and claim histograms, summed over runners."""
    totals = {}
    for label in system.procs:
        if not label.startswith("runner"):
            continue
        try:
            body = requests.get(system.metrics_url(label), timeout=10).text
        except requests.RequestException:
            continue
        for family in text_string_to_metric_families(body):
            if family.name == "stevedore_runner_prepared":  # executions prepared ahead, by outcome (a counter)
                for sample in family.samples:
                    if sample.name.endswith("_total"):
                        got = totals.setdefault((family.name, sample.labels["outcome"]), [0.0, 0.0])
                        got[0] += sample.value
                continue
            if family.name not in ("stevedore_runner_phase_seconds", "stevedore_runner_claim_seconds"):
                continue
            key_label = "phase" if family.name.endswith("phase_seconds") else "outcome"
            for sample in family.samples:
                if sample.name.endswith(("_sum", "_count")):
                    key = (family.name, sample.labels[key_label])
                    got = totals.setdefault(key, [0.0, 0.0])
                    got[0 if sample.name.endswith("_sum") else 1] += sample.value
    return totals


def phase_means(before, after):
    """Mean milliseconds of each step between two scrapes: the runner's phases, and its claims that got work."""
    means = {}
    for (metric, which), (total, count) in after.items():
        old_total, old_count = before.get((metric, which), (0.0, 0.0))
        if metric == "stevedore_runner_prepared":  # a count, not a mean: executions prepared ahead, by outcome
            if total > old_total:
                means[f"prepared_{which}"] = total - old_total
            continue
        n = count - old_count
        if n <= 0:
            continue
        name = "claim" if metric.endswith("claim_seconds") else which
        if metric.endswith("claim_seconds") and which != "work":
            continue
        means[name] = round(1000 * (total - old_total) / n, 1)
    return means
