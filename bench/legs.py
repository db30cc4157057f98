"""The measurements: throughput, latency, fan-out, API reads.

Times are ``time.time()`` of this host, the clock the engine stamps
``State.StartedAt`` with, so submit-to-start is measured on one clock.
"""
import os
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

from docker.types import Resources, RestartPolicy, ServiceMode

from bench.backbone import cpu_seconds, cpu_used, load, rss_mb, run_queue_wait, waited
from bench.stats import rate, ratio, summary
from bench.turnaround import (
    LANE_LABEL,
    EngineLifecycle,
    phase_means,
    scrape_runner_phases,
    summarise,
    turnarounds,
)
from services.runner.dependencies import Executor
from shared.docker_engine import create_container, read_logs
from shared.timeutil import parse_docker_time
from shared.validation import memory_bytes

TERMINAL = ("COMPLETE", "ERROR", "CANCELLED", "KILLED")

# the runner's policy with config.yml's defaults (services/runner/dependencies.py DockerExecutor)
RUNNER_POLICY = {"default_memory": memory_bytes("1g"), "pids_limit": 1024, "network": "bridge",
                 "grace": 10, "log_limit": 1024 * 1024}


def wait_result(api, result_id, timeout=600, interval=0.5):
    """Poll until the result ends; (result, when it was seen ended).

    Polled slowly: every GET is work for the gateway and scheduler, on the
    same two cores as the runners being measured.
    """
    deadline = time.time() + timeout
    while time.time() < deadline:
        result = api.get(f"/result/{result_id}/").json()
        if result["status"] in TERMINAL:
            return result, time.time()
        time.sleep(interval)
    raise RuntimeError(f"result {result_id} did not finish within {timeout}s")


def register(api, ref):
    task = api.register(ref, name=f"bench-{uuid.uuid4().hex[:8]}", timeout=120)
    assert task["status"] == "READY", task
    return task


# ------------------------------------------------------------------ raw docker

class Raw:
    """The Docker SDK doing what a runner does for one execution, with the runner's own options."""

    def __init__(self, client, image):
        self.client = client
        self.image = image
        self.executor = Executor(client, RUNNER_POLICY)

    def options(self):
        detail_id = uuid.uuid4().hex
        work = {"result_id": uuid.uuid4().hex, "detail_id": detail_id, "index": 0, "attempt": 1,
                "command": None, "env": {}}
        options = self.executor.container_options(work, "bench-raw")
        options["labels"]["stevedore.bench"] = "raw"
        options["labels"][LANE_LABEL] = threading.current_thread().name  # its slot turnaround (bench/turnaround.py)
        return options

    def create_start(self):
        """create + start; returns (container, submit time, engine's StartedAt)."""
        submitted = time.time()
        container = self.client.containers.create(self.image, **self.options())
        container.start()
        container.reload()
        return container, submitted, parse_docker_time(container.attrs["State"]["StartedAt"])

    def one(self):
        """The SDK's own calls: create (and its inspect), start, wait, each stream's logs (and
        their inspects), remove: nine engine calls."""
        container = self.client.containers.create(self.image, **self.options())
        try:
            container.start()
            outcome = container.wait()
            container.logs(stdout=True, stderr=False)
            container.logs(stdout=False, stderr=True)
            return outcome["StatusCode"]
        finally:
            container.remove(force=True)

    def one_lean(self):
        """The fewest engine calls that do the same: create, start, wait, both streams' logs
        in one call, remove: five (the runner makes these plus one inspect)."""
        container = create_container(self.client, self.image, self.options())
        try:
            container.start()
            outcome = container.wait()
            read_logs(self.client, container.id, 1024 * 1024)
            return outcome["StatusCode"]
        finally:
            container.remove(force=True)

    def many(self, n, threads, lean=False):
        one = self.one_lean if lean else self.one
        started = time.time()
        with ThreadPoolExecutor(threads) as pool:
            codes = list(pool.map(lambda _: one(), range(n)))
        took = time.time() - started
        return {"runs": n, "seconds": took, "runs_per_s": rate(n, took),
                "ok": sum(1 for c in codes if c == 0)}


# ------------------------------------------------------------------ swarm

def swarm_jobs(engine, image, n, concurrency):
    client = engine.client
    client.images.pull(image)  # a digest reference: the same image bytes as the others run
    name = f"stevedore-bench-{uuid.uuid4().hex[:6]}"
    started = time.time()
    service = client.services.create(
        image, name=name, mode=ServiceMode("replicated-job", replicas=n, concurrency=concurrency),
        restart_policy=RestartPolicy(condition="none"),
        resources=Resources(mem_limit=RUNNER_POLICY["default_memory"]),
        container_labels={"stevedore.bench": "swarm"})
    try:
        while True:
            tasks = service.tasks()
            states = [t["Status"]["State"] for t in tasks]
            done = sum(1 for s in states if s == "complete")
            failed = sum(1 for s in states if s in ("failed", "rejected", "shutdown", "orphaned"))
            if done + failed >= n:
                break
            if time.time() - started > 900:
                raise RuntimeError(f"swarm job: {done} complete after 900s")
            time.sleep(0.1)
        took = time.time() - started
        return {"runs": n, "seconds": took, "runs_per_s": rate(n, took), "ok": done, "failed": failed,
                "engine": "own dockerd (own bridge, no iptables), one-node swarm on loopback"}
    finally:
        service.remove()


# ------------------------------------------------------------------ 1. throughput

def throughput(system, docker_client, swarm, ref, n=200, parallel=4, rounds=4):
    """n executions per side, in ``rounds`` interleaved rounds (raw, Stevedore, Swarm, raw, ...).

    The load of a shared machine changes by the minute: interleaving gives the
    three sides the same weather, so their ratios mean something.
    """
    api = system.api
    task = register(api, ref)
    image = task["digest"]
    # warm-up: every runner has the image and its connections open
    wait_result(api, api.run(task["task_id"], times=parallel * 2))
    out = {"n": n, "parallel": parallel, "rounds": rounds, "load_before": load()}
    raw = Raw(docker_client, image)
    sides = {"raw": [], "raw_lean": [], "stevedore": [], "swarm": []}
    cpu = {side: {} for side in sides}  # CPU seconds by group while each side ran
    pids = system.pids()

    def count_cpu(side, before):
        for group, seconds in cpu_used(before, cpu_seconds(pids)).items():
            cpu[side][group] = cpu[side].get(group, 0.0) + seconds

    # each lane's exit-to-next-start, from the engine's events (bench/turnaround.py), and the runners' steps
    lifecycle = EngineLifecycle(docker_client)
    lifecycle.start()
    gaps = {side: {} for side in sides}
    phases_before = scrape_runner_phases(system.system)

    def count_gaps(side, begin):
        time.sleep(0.5)  # the engine's last events of the side reach the stream
        for part, values in turnarounds(lifecycle.between(begin, time.time())).items():
            gaps[side].setdefault(part, []).extend(values)

    chunks = [n // rounds + (1 if r < n % rounds else 0) for r in range(rounds)]
    for size in chunks:
        before, begin = cpu_seconds(pids), time.time()
        sides["raw"].append({**raw.many(size, parallel), "load": load()})
        count_cpu("raw", before)
        count_gaps("raw", begin)

        before, begin = cpu_seconds(pids), time.time()
        sides["raw_lean"].append({**raw.many(size, parallel, lean=True), "load": load()})
        count_cpu("raw_lean", before)
        count_gaps("raw_lean", begin)

        before = cpu_seconds(pids)
        submitted = time.time()
        result_id = api.run(task["task_id"], times=size)
        result, seen = wait_result(api, result_id, interval=0.25)
        took = seen - submitted  # up to one poll late: conservative
        count_cpu("stevedore", before)
        count_gaps("stevedore", submitted)
        sides["stevedore"].append({"runs": size, "seconds": took, "runs_per_s": rate(size, took),
                                   "ok": result["counts"]["COMPLETE"], "load": load()})
        if swarm is not None and "error" not in out.get("swarm", {}):
            try:
                before = cpu_seconds(pids)
                sides["swarm"].append({**swarm_jobs(swarm, image, size, parallel), "load": load()})
                count_cpu("swarm", before)
            except Exception as exc:  # reported, not hidden
                out["swarm"] = {"error": f"{type(exc).__name__}: {exc}"}
    for side, parts in sides.items():
        if not parts or side in out:
            continue
        seconds = sum(p["seconds"] for p in parts)
        runs = sum(p["runs"] for p in parts)
        out[side] = {"runs": runs, "seconds": seconds, "runs_per_s": rate(runs, seconds),
                     "ok": sum(p["ok"] for p in parts), "rounds": parts,
                     # CPU milliseconds per execution, by group: where the machine's two cores went
                     "cpu_ms_per_run": {group: round(1000 * used / runs, 1)
                                        for group, used in sorted(cpu[side].items())}}
    lifecycle.stop()
    out["slot_turnaround_ms"] = {side: summarise(parts) for side, parts in gaps.items() if parts}
    out["runner_phase_ms"] = phase_means(phases_before, scrape_runner_phases(system.system))
    raw_rate = out["raw"]["runs_per_s"]
    out["ratio_stevedore_raw"] = ratio(out["stevedore"]["runs_per_s"], raw_rate)
    out["ratio_stevedore_raw_lean"] = ratio(out["stevedore"]["runs_per_s"], out["raw_lean"]["runs_per_s"])
    swarm_rate = (out.get("swarm") or {}).get("runs_per_s")
    out["ratio_stevedore_swarm"] = ratio(out["stevedore"]["runs_per_s"], swarm_rate)
    # a side whose runs did not all succeed measured something else: no target is met on it
    valid = out["stevedore"]["ok"] == n and out["raw"]["ok"] == n and out["raw_lean"]["ok"] == n
    out["all_runs_ok"] = valid
    out["target_0_9_of_raw"] = valid and (out["ratio_stevedore_raw"] or 0) >= 0.9
    out["target_ahead_of_swarm"] = (valid and swarm_rate is not None and out["swarm"].get("ok") == n
                                    and out["stevedore"]["runs_per_s"] > swarm_rate)
    out["load_after"] = load()
    return out


# ------------------------------------------------------------------ 2. latency

def latency(system, docker_client, ref, rounds=50, pause=0.5):
    api = system.api
    task = register(api, ref)
    image = task["digest"]
    wait_result(api, api.run(task["task_id"], times=4))
    raw = Raw(docker_client, image)
    steve, direct = [], []
    split = {"stevedore": ([], []), "raw": ([], [])}  # (submit -> created, created -> started)
    out = {"rounds": rounds, "load_before": load()}
    # the engine's create event is sent when its create is done; with the container's StartedAt it
    # splits a submit-to-start time into the part before the engine had made the container (ours,
    # plus the create) and the start itself (the engine's alone)
    engine = EngineLifecycle(docker_client, actions=["create"])
    engine.start()
    try:
        for _ in range(rounds):
            time.sleep(pause)  # idle: nothing of ours runs when a round begins
            submitted = time.time()
            result_id = api.run(task["task_id"], times=1)
            wait_result(api, result_id, interval=0.25)
            detail = api.details(result_id)[0]
            if detail["start"] is None:
                raise RuntimeError(f"execution did not start: {detail['status']} {detail['reason']}")
            steve.append(detail["start"] - submitted)
            created = engine.seen("create", detail_id=detail["detail_id"])
            if created is not None:
                split["stevedore"][0].append(created - submitted)
                split["stevedore"][1].append(detail["start"] - created)
            time.sleep(pause)
            container, submitted, started = raw.create_start()
            direct.append(started - submitted)
            created = engine.seen("create", container_id=container.id)
            if created is not None:
                split["raw"][0].append(created - submitted)
                split["raw"][1].append(started - created)
            container.wait()
            container.remove(force=True)
    finally:
        engine.stop()
    out["stevedore_ms"] = summary(steve, 1000)
    out["raw_ms"] = summary(direct, 1000)
    out["p50_gap_ms"] = out["stevedore_ms"]["p50"] - out["raw_ms"]["p50"]
    out["p95_gap_ms"] = out["stevedore_ms"]["p95"] - out["raw_ms"]["p95"]
    out["target_p50_within_50ms"] = out["p50_gap_ms"] <= 50
    # the same times split at the engine's create event: what comes before it is where
    # Stevedore differs from raw; after it, both wait for the same engine to start
    for side, (before, after) in split.items():
        out[f"{side}_to_created_ms"] = summary(before, 1000) if before else None
        out[f"{side}_created_to_start_ms"] = summary(after, 1000) if after else None
    if split["stevedore"][0] and split["raw"][0]:
        out["p50_gap_to_created_ms"] = (out["stevedore_to_created_ms"]["p50"]
                                        - out["raw_to_created_ms"]["p50"])
    out["load_after"] = load()
    return out


# ------------------------------------------------------------------ 3. fan-out (and 5. memory)

class Sampler(threading.Thread):
    """Calls ``probe()`` every ``interval`` seconds until stopped; keeps (time, value)."""

    def __init__(self, probe, interval):
        super().__init__(daemon=True)
        self.probe, self.interval = probe, interval
        self.samples = []
        self.halt = threading.Event()

    def run(self):
        while not self.halt.is_set():
            self.samples.append((time.time(), self.probe()))
            self.halt.wait(self.interval)

    def stop(self):
        self.halt.set()
        self.join()
        return self.samples


def claims_after(system, result_id, moment):
    """How many executions of ``result_id`` runners began to run after ``moment`` (by their logs)."""
    count = 0
    for label in system.system.procs:
        if not label.startswith("runner"):
            continue
        for line in system.system.log(label).splitlines():
            if f"(result {result_id}," not in line or " runs execution " not in line:
                continue
            stamp, _, millis = line[:23].partition(",")
            try:
                at = time.mktime(time.strptime(stamp, "%Y-%m-%d %H:%M:%S")) + int(millis) / 1000.0
            except ValueError:
                continue
            count += at > moment
    return count


def fan_out(system, database, ref, times=100000, watch_after_cancel=5.0, probes=False):
    """RUN ``times``, GET the result every 0.1 s meanwhile, CANCEL it; see docs/performance.md.

    With ``probes``, beside the GETs also the result's row straight from PostgreSQL and
    GET /health/ every 0.1 s (to tell where a slow read's time goes): load of the bench's
    own on the same services, so off unless asked for.
    """
    api = system.api
    task = register(api, ref)
    wait_result(api, api.run(task["task_id"], times=4))
    pids = system.pids()
    out = {"times": times, "load_before": load()}
    memory = Sampler(lambda: {label: rss_mb(pid) for label, pid in pids.items()}, 0.2)
    memory.start()
    baseline = dict(memory.samples[-1][1]) if memory.samples else {}
    result_box = {}

    def timed(call):
        """A probe for ``Sampler``: (seconds, status) of ``call(result_id)``; None before the RUN answered."""
        def probe():
            result_id = result_box.get("id")
            if result_id is None:
                return None
            started = time.perf_counter()
            status = call(result_id)
            return (time.perf_counter() - started, status)
        return probe

    read_result = timed(lambda result_id: api.get(f"/result/{result_id}/").status_code)
    # where a slow read's time goes: the same row read straight from PostgreSQL (no service,
    # no broker), and GET /health/ (gateway -> RPC ping of registry and scheduler -> back)
    def row(result_id):
        database.scalar("SELECT status FROM results WHERE id = :r", r=result_id)
        return 200

    read_row = timed(row)
    read_health = timed(lambda result_id: api.get("/health/").status_code)

    reads = Sampler(read_result, 0.1)
    waiting_pids = {**pids, "bench clients": os.getpid()}  # whose run-queue time is read
    probes = {"sql_row": Sampler(read_row, 0.1), "health": Sampler(read_health, 0.1)} if probes else {}
    try:
        waited_before = run_queue_wait(waiting_pids)
        submitted = time.time()
        response = api.post(f"/task/{task['task_id']}/", {"operation": "RUN", "times": times})
        answered = time.time()
        assert response.status_code == 202, response.text
        result_id = result_box["id"] = response.json()["result_id"]
        reads.start()
        for probe in probes.values():
            probe.start()
        out["run_answer_s"] = answered - submitted
        # the result's ``created`` is committed with each batch of its rows, so it says when
        # all exist; polled instead of count(*), which costs PostgreSQL ~13 ms at 100,000 rows
        # (a bitmap heap scan: fresh rows are not all-visible yet) and was a load of the
        # bench's own on the reads it times.  Checked by one count(*) once it says so.
        while time.time() - submitted < 120:
            if (database.scalar("SELECT created FROM results WHERE id = :r", r=result_id) or 0) >= times:
                break
            time.sleep(0.05)
        all_made = time.time()
        count = database.scalar("SELECT count(*) FROM details WHERE result_id = :r", r=result_id)
        out["details_made"] = count
        out["all_details_s"] = all_made - submitted
        out["load_after_fan_out"] = load()

        held_before = database.scalar(
            "SELECT count(*) FROM details WHERE result_id = :r AND runner IS NOT NULL", r=result_id)
        cancel_sent = time.time()
        response = api.post(f"/result/{result_id}/", {"operation": "CANCEL"})
        cancel_answered = time.time()
        assert response.status_code == 202, response.text
        out["cancel_answer_s"] = cancel_answered - cancel_sent
        while time.time() - cancel_sent < 60:
            queued = database.scalar(
                "SELECT count(*) FROM details WHERE result_id = :r AND status = 'QUEUED' AND runner IS NULL",
                r=result_id)
            if queued == 0:
                break
            time.sleep(0.05)
        out["cancel_all_queued_cancelled_s"] = time.time() - cancel_sent
        # from the RUN to the last queued execution cancelled: how long each group's
        # threads were runnable but waiting for a CPU, in ms per second of that window
        window = time.time() - submitted
        queued_for_cpu = waited(waited_before, run_queue_wait(waiting_pids))
        out["run_queue_wait_ms_per_s"] = {k: round(1000 * v / window, 1) for k, v in queued_for_cpu.items()}
        out["queued_left"] = queued
        time.sleep(watch_after_cancel)
        held_after = database.scalar(
            "SELECT count(*) FROM details WHERE result_id = :r AND runner IS NOT NULL", r=result_id)
        started_after = database.scalar(
            "SELECT count(*) FROM details WHERE result_id = :r AND start > :t", r=result_id, t=cancel_answered)
        out["claimed_at_cancel"] = held_before
        out["claimed_after_cancel_plus_5s"] = held_after
        # containers of claims made before the cancel that still started after it (then stopped)
        out["started_after_cancel"] = started_after
        # what runners were handed after the cancel answered: their own log of each claim they run
        out["stale_work"] = claims_after(system, result_id, cancel_answered)
        out["cancelled"] = database.scalar(
            "SELECT count(*) FROM details WHERE result_id = :r AND status = 'CANCELLED'", r=result_id)
        out["final"] = wait_result(api, result_id, timeout=120)[0]["counts"]
    finally:
        samples = reads.stop() if reads.is_alive() else reads.samples
        probe_samples = {name: probe.stop() if probe.is_alive() else probe.samples
                         for name, probe in probes.items()}
        memory_samples = memory.stop()
    def slow(taken):
        # the samples over 50 ms: seconds after the RUN was sent, and how long they took
        return [(round(at - submitted, 2), round(1000 * s[0])) for at, s in taken if s and s[0] > 0.05]

    out["get_result_ms"] = summary([s[0] for _, s in samples if s], 1000)
    out["slow_reads"] = slow(samples)
    for name, taken in probe_samples.items():
        out[f"{name}_ms"] = summary([s[0] for _, s in taken if s], 1000)
        out[f"{name}_slow"] = slow(taken)
    out["phases_s"] = {"all_details": out.get("all_details_s"),
                       "cancel_sent": round(cancel_sent - submitted, 2) if "cancel_answer_s" in out else None,
                       "cancel_answered": round(cancel_answered - submitted, 2) if "cancel_answer_s" in out else None}
    out["get_result_errors"] = sum(1 for s in samples if s[1] and s[1][1] != 200)
    peaks = {}
    for _, sample in memory_samples:
        for label, mb in sample.items():
            if mb is not None:
                peaks[label] = max(peaks.get(label, 0), mb)
    out["rss_peak_mb"] = peaks
    out["rss_idle_mb"] = baseline
    out["result_id"] = result_id
    out["target_run_answer_under_1s"] = out["run_answer_s"] < 1
    out["target_all_details_within_10s"] = count >= times and out["all_details_s"] <= 10
    out["target_get_result_under_50ms"] = (out["get_result_ms"]["max"] or 1e9) < 50
    out["target_cancel_within_5s"] = queued == 0 and out["cancel_all_queued_cancelled_s"] <= 5
    out["target_no_stale_work"] = out["stale_work"] == 0
    out["target_rss_under_150mb"] = bool(peaks) and max(peaks.values()) < 150
    out["load_after"] = load()
    return out


# ------------------------------------------------------------------ 4. API reads

def reads(system, result_id, clients=8, seconds=10.0, distinct_ids=None):
    """8 clients reading one result for ``seconds``; then, with ``distinct_ids``, each its own result.

    Concurrent reads of one result share the gateway's RPCs (shared/coalesce.py);
    reads of distinct results cannot, so the second figure is the floor without it.
    """
    out = _read_load(system, [result_id] * clients, seconds)
    out["target_300_rps"] = (out["requests_per_s"] or 0) >= 300
    out["target_p99_under_100ms"] = (out["latency_ms"]["p99"] or 1e9) < 100
    if distinct_ids:
        out["distinct_results"] = _read_load(system, list(distinct_ids)[:clients], seconds)
    return out


def _read_load(system, result_ids, seconds):
    api_template = system.api
    latencies, errors = [], []
    lock = threading.Lock()
    deadline = time.time() + seconds

    def client(result_id):
        from tests.support import Api

        api = Api(api_template.base_url, token=system.system.token)
        mine, bad = [], 0
        while time.time() < deadline:
            started = time.perf_counter()
            response = api.get(f"/result/{result_id}/")
            mine.append(time.perf_counter() - started)
            bad += response.status_code != 200
        with lock:
            latencies.extend(mine)
            errors.append(bad)

    out = {"clients": len(result_ids), "results": len(set(result_ids)), "seconds": seconds,
           "load_before": load()}
    pids = {**system.pids(), "bench clients": os.getpid()}
    cpu_before = cpu_seconds(pids)
    started = time.time()
    threads = [threading.Thread(target=client, args=(rid,)) for rid in result_ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    took = time.time() - started
    used = cpu_used(cpu_before, cpu_seconds(pids))
    out["requests"] = len(latencies)
    # CPU milliseconds per request, by group (the clients are this process)
    out["cpu_ms_per_request"] = {group: round(1000 * seconds / max(1, len(latencies)), 2)
                                 for group, seconds in sorted(used.items())}
    out["errors"] = sum(errors)
    out["requests_per_s"] = rate(len(latencies), took)
    out["latency_ms"] = summary(latencies, 1000)
    out["load_after"] = load()
    return out
