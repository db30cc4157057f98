"""``bench/run control-plane``: what the central parts spend per execution, with hundreds of runner slots.

Sets up everything of its own: a RabbitMQ node and a PostgreSQL cluster (``bench/private.py``,
so that their CPU is ours alone), a stand-in Docker engine (``bench/standin_engine.py``: every
"container" runs ``--container-seconds`` and prints one line), and the services as
``stevedore-host`` runs them with ``--runners`` runner processes of ``--slots`` slots each and
config.yml's production timers.  The runner code, the Docker SDK, RabbitMQ, the scheduler and
PostgreSQL are all real: each execution is claimed, reported started, its live output sent, its end
reported, as on a real engine; only containers are not.

Then: an idle window (``--idle`` seconds, nothing queued: the timers and polls of an idle fleet),
and a load window (``--seconds``, after ``--warm`` seconds of load) while the bench offers
executions at ``--rate`` a second (RUNs of at most 100, the inline fan-out, spread over each
second; ``--rate 0``: flat out, a backlog kept).  Reported: executions finished a second, claim
latency (the runners' ``stevedore_runner_claim_seconds``), the queue depths (queued and
unclaimed executions; messages in RabbitMQ's queues), and CPU milliseconds per execution of each
process group (scheduler, RabbitMQ, PostgreSQL; runners, gateway, registry, stand-in, bench
apart) with the idle baseline's rate subtracted.
"""
import contextlib
import math
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import requests
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, text

from bench.backbone import PRODUCTION_TIMERS, load
from bench.private import PrivatePostgres, PrivateRabbit, children, cpu_of
from bench.stats import histogram_percentile, summary
from tests.support import System, create_database, wait_until

CENTRAL = ("scheduler", "rabbitmq", "postgres")
STANDIN_REPOSITORY = "127.0.0.1:9/stevedore-bench/standin:ok"  # never contacted: the stand-in "pulls" it


class Fleet:
    """The services, their own broker and database, and the stand-in engine, for one leg."""

    def __init__(self, runners, slots, container_seconds):
        self.runners, self.slots, self.container_seconds = runners, slots, container_seconds
        self.stack = contextlib.ExitStack()
        self.dir = tempfile.mkdtemp(prefix="stevedore-bench-cp-")
        self.socket = os.path.join(self.dir, "engine.sock")

    def __enter__(self):
        try:
            self.rabbit = self.stack.enter_context(PrivateRabbit())
            self.pg = self.stack.enter_context(PrivatePostgres())
            self.database_url = create_database(self.pg.admin_url)
            self.db = create_engine(self.database_url, pool_size=2)
            self.stack.callback(self.db.dispose)
            self.standin = subprocess.Popen(
                [sys.executable, "-m", "bench.standin_engine", self.socket,
                 "--seconds", str(self.container_seconds)],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            self.stack.callback(self._stop_standin)
            wait_until(lambda: os.path.exists(self.socket), timeout=30, what="the stand-in engine")
            env = {**PRODUCTION_TIMERS, "DOCKER_HOST": f"unix://{self.socket}", "CONTAINER_NETWORK": "none",
                   "RUNNER_SLOTS": str(self.slots)}
            self.system = System(self.rabbit.uri, self.database_url, runners=self.runners, name="bench-cp",
                                 env=env)
            for label, (service, extra) in self.system.plan.items():
                if service == "runner":  # a worker per slot, and some for its handlers and timers
                    extra["MAX_WORKERS"] = str(self.slots + 16)
            self.stack.callback(self.system.stop, grace=30)
            self.system.start().wait_healthy(timeout=120)
            self.api = self.system.api
            return self
        except BaseException:
            self.stack.close()
            raise

    def _stop_standin(self):
        self.standin.terminate()
        try:
            out, _ = self.standin.communicate(timeout=10)
            self.standin_counts = out.decode(errors="replace").strip().splitlines()[-1:] if out else []
        except subprocess.TimeoutExpired:
            self.standin.kill()

    def __exit__(self, *exc):
        self.stack.close()
        import shutil
        shutil.rmtree(self.dir, ignore_errors=True)

    # ------------------------------------------------------------ readings

    def pids(self):
        """The services' processes by label (for py-spy)."""
        return {label: proc.pid for label, proc in self.system.procs.items()}

    def groups(self):
        """Process group -> its pids, now (PostgreSQL's backends come and go with the pools)."""
        procs = self.system.procs
        out = {"scheduler": [procs["scheduler"].pid], "gateway": [procs["gateway"].pid],
               "registry": [procs["registry"].pid],
               "runners": [p.pid for label, p in procs.items() if label.startswith("runner")],
               "rabbitmq": self.rabbit.pids(), "postgres": self.pg.pids(),
               "stand-in engine": children(self.standin.pid), "bench": [os.getpid()]}
        return out

    def cpu(self):
        """CPU seconds so far by group, and the machine's busy seconds (all its CPUs)."""
        out = {group: cpu_of(pids) for group, pids in self.groups().items()}
        with open("/proc/stat") as fh:
            fields = [int(v) for v in fh.readline().split()[1:]]
        out["machine"] = (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")
        return out

    def sql(self, statement):
        with self.db.connect() as conn:
            return conn.execute(text(statement)).first()

    def finished(self):
        """Executions ended so far (every result's finished counters)."""
        return int(self.sql("SELECT coalesce(sum(n_complete + n_error + n_cancelled + n_killed), 0) "
                            "FROM results")[0])

    def transactions(self):
        """PostgreSQL's commits and rollbacks so far in the services' database (pg_stat_database)."""
        commits, rollbacks = self.sql("SELECT xact_commit, xact_rollback FROM pg_stat_database "
                                      "WHERE datname = current_database()")
        return {"commit": int(commits), "rollback": int(rollbacks)}

    def queued(self):
        """Executions waiting for a runner now (queued, unclaimed: the claim's partial index)."""
        return int(self.sql("SELECT count(*) FROM details WHERE status = 'QUEUED' AND runner IS NULL "
                            "AND NOT waiting")[0])

    def scrape(self, label):
        try:
            body = requests.get(self.system.metrics_url(label), timeout=10).text
        except requests.RequestException:
            return []
        return list(text_string_to_metric_families(body))

    def counters(self):
        """The scheduler's claims by outcome, the runners' claim-time buckets, RabbitMQ's message totals."""
        claims = {}
        for family in self.scrape("scheduler"):
            if family.name == "stevedore_claims":
                for sample in family.samples:
                    if sample.name.endswith("_total"):
                        claims[sample.labels["outcome"]] = claims.get(sample.labels["outcome"], 0) + sample.value
        buckets = {}
        for label in self.system.procs:
            if not label.startswith("runner"):
                continue
            for family in self.scrape(label):
                if family.name != "stevedore_runner_claim_seconds":
                    continue
                for sample in family.samples:
                    if sample.name.endswith("_bucket"):
                        key = (sample.labels["outcome"], float(sample.labels["le"]))
                        buckets[key] = buckets.get(key, 0) + sample.value
        try:
            stats = requests.get(f"{self.rabbit.api}/overview", timeout=10).json().get("message_stats") or {}
        except (requests.RequestException, ValueError):
            stats = {}
        messages = {k: stats.get(k, 0) for k in ("publish", "deliver_get", "ack", "confirm")}
        return {"claims": claims, "claim_buckets": buckets, "messages": messages}


class Offer(threading.Thread):
    """Submits executions at ``rate`` a second (RUNs of at most 100), or with rate 0 keeps a backlog."""

    def __init__(self, fleet, task_id, rate, backlog):
        super().__init__(daemon=True)
        self.fleet, self.task_id, self.rate, self.backlog = fleet, task_id, rate, backlog
        self.halt = threading.Event()
        self.offered = 0
        self.errors = []
        self.answer_times = []
        # RUNs go out on time even when the system answers slowly (answer times are reported)
        self.pool = ThreadPoolExecutor(8)

    def run(self):
        if self.rate <= 0:
            return self._flat_out()
        size = min(100, max(1, int(round(self.rate))))
        period = size / self.rate
        due = time.monotonic()
        while not self.halt.is_set():
            self.pool.submit(self._submit, size)
            due += period
            self.halt.wait(max(0.0, due - time.monotonic()))
        self.pool.shutdown(wait=True)

    def _flat_out(self):
        while not self.halt.is_set():
            if self.fleet.queued() < self.backlog:
                self._submit(max(1000, self.backlog))
            self.halt.wait(1.0)

    def _submit(self, times):
        started = time.monotonic()
        try:
            self.fleet.api.run(self.task_id, times=times)
            self.offered += times
            self.answer_times.append(time.monotonic() - started)
        except Exception as exc:  # noqa: BLE001 -- counted and shown, the leg goes on
            self.errors.append(f"{type(exc).__name__}: {exc}"[:300])


class Depths(threading.Thread):
    """Queue depths every ``interval`` seconds: queued executions, and messages in RabbitMQ's queues."""

    def __init__(self, fleet, interval=2.0):
        super().__init__(daemon=True)
        self.fleet, self.interval = fleet, interval
        self.halt = threading.Event()
        self.samples = []

    def run(self):
        while not self.halt.wait(self.interval):
            try:
                queues = self.fleet.rabbit.queues("/")
            except (requests.RequestException, ValueError):
                queues = {}
            busiest = max(queues.items(), key=lambda kv: kv[1]) if queues else (None, 0)
            self.samples.append({"queued": self.fleet.queued(), "messages": sum(queues.values()),
                                 "busiest_queue": busiest})

    def stop(self):
        self.halt.set()
        self.join()
        return self.samples


def window(fleet, seconds):
    """CPU, finished executions and counters over ``seconds``; (readings before, readings after, seconds)."""
    before = {"cpu": fleet.cpu(), "finished": fleet.finished(), **fleet.counters(), "xacts": fleet.transactions(),
              "at": time.monotonic()}
    time.sleep(seconds)
    after = {"cpu": fleet.cpu(), "finished": fleet.finished(), **fleet.counters(), "xacts": fleet.transactions(),
             "at": time.monotonic()}
    return before, after, after["at"] - before["at"]


def delta(before, after):
    return {k: after[k] - before.get(k, 0) for k in after}


def claim_latency(before, after, outcome=None):
    """p50/p99 (ms) of the runners' claims in the window, from their histograms' bucket deltas."""
    buckets = {}
    for (kind, bound), count in after.items():
        if outcome is None or kind == outcome:
            buckets[bound] = buckets.get(bound, 0) + count - before.get((kind, bound), 0)
    pairs = sorted(buckets.items())
    out = {}
    for q in (50, 99):
        value = histogram_percentile(pairs, q)
        out[f"p{q}"] = None if value is None else round(1000 * value, 1)
    out["n"] = pairs[-1][1] if pairs else 0
    return out


def control_plane(runners=8, slots=32, rate=50.0, seconds=60.0, warm=10.0, idle=20.0, container_seconds=1.5,
                  profiler=None):
    """The leg; ``profiler(fleet)``: started for the load window (py-spy, bench/main.py), its ``stop()``
    answer kept as ``profile``."""
    report = {"runners": runners, "slots": slots, "rate_offered": rate, "seconds": seconds, "warm": warm,
              "idle_seconds": idle, "container_seconds": container_seconds, "load_before": load()}
    with Fleet(runners, slots, container_seconds) as fleet:
        task = fleet.api.register(STANDIN_REPOSITORY, name=f"bench-cp-{uuid.uuid4().hex[:8]}", timeout=120)
        assert task["status"] == "READY", task
        # warm-up: every slot runs one (connections open, the image known to every runner)
        first = fleet.api.run(task["task_id"], times=runners * slots)
        fleet.api.wait_result(first, timeout=300)
        time.sleep(5)

        before, after, took = window(fleet, idle)
        idle_cpu = {group: used / took for group, used in delta(before["cpu"], after["cpu"]).items()}
        report["idle"] = {
            "seconds": round(took, 1),
            "cpu_ms_per_s": {group: round(1000 * v, 1) for group, v in idle_cpu.items()},
            "claims_per_s": {k: round(v / took, 1) for k, v in delta(before["claims"], after["claims"]).items()},
            "messages_per_s": {k: round(v / took, 1)
                               for k, v in delta(before["messages"], after["messages"]).items()},
        }

        offer = Offer(fleet, task["task_id"], rate, backlog=2 * runners * slots)
        depths = Depths(fleet)
        offer.start()
        time.sleep(warm)
        depths.start()
        spy = profiler(fleet) if profiler else None
        try:
            before, after, took = window(fleet, seconds)
        finally:
            if spy is not None:
                report["profile"] = spy.stop()
            offer.halt.set()
            samples = depths.stop()
            offer.join()
        done = after["finished"] - before["finished"]
        used = delta(before["cpu"], after["cpu"])
        report["load_after"] = load()
        report["offered"] = offer.offered
        report["run_answer_ms"] = summary(offer.answer_times, 1000)
        report["submit_errors"] = offer.errors[:5]
        report["finished"] = done
        report["executions_per_s"] = round(done / took, 1)
        per = max(done, 1)
        report["cpu_ms_per_execution"] = {
            group: round(1000 * (used[group] - idle_cpu.get(group, 0.0) * took) / per, 2) for group in used}
        report["cpu_ms_per_execution_with_idle"] = {group: round(1000 * used[group] / per, 2) for group in used}
        report["central_ms_per_execution"] = round(sum(report["cpu_ms_per_execution"][g] for g in CENTRAL), 2)
        report["claim_latency_ms"] = claim_latency(before["claim_buckets"], after["claim_buckets"], "work")
        report["claim_latency_all_ms"] = claim_latency(before["claim_buckets"], after["claim_buckets"])
        claims = delta(before["claims"], after["claims"])
        report["claims_per_execution"] = {k: round(v / per, 2) for k, v in claims.items()}
        report["messages_per_execution"] = {k: round(v / per, 2)
                                            for k, v in delta(before["messages"], after["messages"]).items()}
        report["pg_transactions_per_execution"] = {k: round(v / per, 2)
                                                   for k, v in delta(before["xacts"], after["xacts"]).items()}
        report["queued"] = summary([s["queued"] for s in samples])
        report["rabbit_messages"] = summary([s["messages"] for s in samples])
        report["busiest_queue_max"] = max((s["busiest_queue"] for s in samples), key=lambda b: b[1],
                                          default=None)
        report["kept_up"] = bool(samples) and samples[-1]["queued"] <= max(rate, 1) * 2 if rate else None
    report["standin_counts"] = getattr(fleet, "standin_counts", None)
    return report


def rows(result):
    """The leg's lines of bench/run's table."""
    r = result
    cpu = r["cpu_ms_per_execution"]
    idle = r["idle"]["cpu_ms_per_s"]
    out = [("control-plane", f"{r['runners']} runners x {r['slots']} slots, {r['container_seconds']:g} s containers",
            f"offered {r['rate_offered']:g}/s" if r["rate_offered"] else "flat out", ""),
           ("control-plane", "executions finished (/s)", f"{r['executions_per_s']:.1f}",
            "" if r["kept_up"] in (None, True) else "fell behind (queue grew)"),
           ("control-plane", "RUN answered p50/p99 (ms)",
            f"{_fmt(r['run_answer_ms']['p50'])} / {_fmt(r['run_answer_ms']['p99'])}", ""),
           ("control-plane", "claim latency p50/p99 (ms)",
            f"{_fmt(r['claim_latency_ms']['p50'])} / {_fmt(r['claim_latency_ms']['p99'])}", ""),
           ("control-plane", "queued executions p50/max",
            f"{_fmt(r['queued']['p50'])} / {_fmt(r['queued']['max'])}", ""),
           ("control-plane", "messages in RabbitMQ p50/max",
            f"{_fmt(r['rabbit_messages']['p50'])} / {_fmt(r['rabbit_messages']['max'])}", ""),
           ("control-plane", "central CPU ms/execution (<= 4)", f"{r['central_ms_per_execution']:.2f}",
            "yes" if r["central_ms_per_execution"] <= 4 else "NO"),
           ("control-plane", "  scheduler / RabbitMQ / PostgreSQL",
            " / ".join(f"{cpu[g]:.2f}" for g in CENTRAL), "idle subtracted"),
           ("control-plane", "  runners / gateway / stand-in engine",
            " / ".join(f"{cpu[g]:.2f}" for g in ("runners", "gateway", "stand-in engine")), ""),
           ("control-plane", "idle CPU ms/s: scheduler / RabbitMQ / PostgreSQL / runners",
            " / ".join(f"{idle[g]:.0f}" for g in (*CENTRAL, "runners")), ""),
           ("control-plane", "claims per execution (work / none)",
            f"{r['claims_per_execution'].get('work', 0):.2f} / {r['claims_per_execution'].get('none', 0):.2f}", ""),
           ("control-plane", "RabbitMQ publishes per execution", f"{r['messages_per_execution'].get('publish', 0):.1f}",
            ""),
           ("control-plane", "PostgreSQL commits / rollbacks per execution",
            " / ".join(f"{r.get('pg_transactions_per_execution', {}).get(k, 0):.2f}" for k in ("commit", "rollback")),
            "")]
    return out


def _fmt(value):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.1f}" if isinstance(value, float) else str(value)
