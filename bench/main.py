"""bench/run [throughput|latency|fanout|reads|control-plane|all] [--label L] [--profile SERVICE,...]

Sets up its own system (a fresh RabbitMQ vhost and PostgreSQL database, a
loopback registry with the trivial image, the four services as stevedore-host
runs them with 4 runners, and for the Swarm leg a dockerd of its own), runs
the chosen legs, prints a table and writes bench/results/<time>-<label>.json.
``control-plane`` (not part of ``all``) sets up a system of its own instead:
see bench/control_plane.py.
"""
import argparse
import collections
import contextlib
import json
import os
import signal
import subprocess
import sys
import time

import docker

from bench import control_plane, legs
from bench.backbone import Database, ExecutionPlane, Images, Stevedore, SwarmEngine, Vhost, ensure_docker0, load
from bench.stats import fmt

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results")


class Profiler:
    """py-spy on some service processes for the length of a leg; collapsed stacks kept and summarised."""

    def __init__(self, services, stevedore, name):
        self.procs = {}
        self.files = {}
        if not services:
            return
        spy = os.path.join(os.path.dirname(sys.executable), "py-spy")
        os.makedirs(os.path.join(RESULTS, "profiles"), exist_ok=True)
        for label, pid in stevedore.pids().items():
            if not any(label.startswith(s) for s in services):
                continue
            path = os.path.join(RESULTS, "profiles", f"{name}-{label}.txt")
            self.files[label] = path
            self.procs[label] = subprocess.Popen(
                [spy, "record", "--pid", str(pid), "--format", "raw", "--rate", "50", "--nonblocking",
                 "--output", path], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop(self):
        summary = {}
        for label, proc in self.procs.items():
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
            summary[label] = top_frames(self.files[label])
        return summary


def top_frames(path, n=12):
    """The functions of our code (services/, shared/) most often on the stack, by share of samples."""
    inclusive, total = collections.Counter(), 0
    try:
        with open(path) as fh:
            for line in fh:
                stack, _, count = line.rstrip().rpartition(" ")
                count = int(count)
                total += count
                seen = set()
                for frame in stack.split(";"):
                    if ("(services/" in frame or "(shared/" in frame) and frame not in seen:
                        seen.add(frame)
                        inclusive[frame] += count
    except OSError:
        return {}
    return {frame: round(100.0 * c / total, 1) for frame, c in inclusive.most_common(n)} if total else {}


def table(results):
    rows = []
    if "throughput" in results:
        t = results["throughput"]
        # a side where some runs failed (say, a missing docker0) did less work: not comparable
        def ok(side):
            got = t.get(side) or {}
            return "" if got.get("ok") == got.get("runs") else f"INVALID: only {got.get('ok')} of {got.get('runs')} ok"

        rows.append(("throughput", "raw SDK, 4 threads (runs/s)", fmt(t["raw"]["runs_per_s"], 2), ok("raw")))
        rows.append(("throughput", "raw, fewest engine calls (runs/s)", fmt(t["raw_lean"]["runs_per_s"], 2),
                     ok("raw_lean")))
        rows.append(("throughput", "Stevedore, 4 runners (runs/s)", fmt(t["stevedore"]["runs_per_s"], 2),
                     ok("stevedore")))
        rows.append(("throughput", "Swarm replicated-job (runs/s)",
                     fmt(t.get("swarm", {}).get("runs_per_s"), 2), t.get("swarm", {}).get("error", "")))
        rows.append(("throughput", "Stevedore / raw (>= 0.9)", fmt(t["ratio_stevedore_raw"], 2),
                     fmt(t["target_0_9_of_raw"])))
        rows.append(("throughput", "Stevedore / raw fewest calls", fmt(t["ratio_stevedore_raw_lean"], 2), ""))
        rows.append(("throughput", "Stevedore / Swarm (> 1)", fmt(t["ratio_stevedore_swarm"], 2),
                     fmt(t["target_ahead_of_swarm"])))
        for side, parts in (t.get("slot_turnaround_ms") or {}).items():
            total = parts.get("total") or {}
            rows.append(("throughput", f"slot turnaround, {side}: exit->next start p50/mean (ms)",
                         f"{fmt(total.get('p50'))} / {fmt(total.get('mean'))}",
                         ", ".join(f"{k} p50 {fmt((parts.get(k) or {}).get('p50'))}"
                                   for k in ("exit_to_create", "create_to_start", "exit_to_destroy"))))
        if t.get("runner_phase_ms"):
            rows.append(("throughput", "runner steps, mean (ms)", "",
                         ", ".join(f"{k} {v:.1f}" for k, v in t["runner_phase_ms"].items())))
        for side in ("raw", "raw_lean", "stevedore", "swarm"):
            per_run = (t.get(side) or {}).get("cpu_ms_per_run")
            if per_run:
                rows.append(("throughput", f"CPU ms per run, {side}",
                             f"machine {per_run.get('machine', 0):.0f}",
                             ", ".join(f"{k} {v:.0f}" for k, v in per_run.items() if k != "machine" and v >= 1)))
    if "latency" in results:
        lat = results["latency"]
        rows.append(("latency", "Stevedore submit->start p50/p95 (ms)",
                     f"{fmt(lat['stevedore_ms']['p50'])} / {fmt(lat['stevedore_ms']['p95'])}", ""))
        rows.append(("latency", "raw create+start p50/p95 (ms)",
                     f"{fmt(lat['raw_ms']['p50'])} / {fmt(lat['raw_ms']['p95'])}", ""))
        rows.append(("latency", "p50 gap (<= 50 ms)", fmt(lat["p50_gap_ms"]), fmt(lat["target_p50_within_50ms"])))
        if lat.get("p50_gap_to_created_ms") is not None:
            rows.append(("latency", "submit->engine created p50: Stevedore / raw (ms)",
                         f"{fmt(lat['stevedore_to_created_ms']['p50'])} / {fmt(lat['raw_to_created_ms']['p50'])}",
                         f"gap {fmt(lat['p50_gap_to_created_ms'])}"))
            rows.append(("latency", "engine created->started p50: Stevedore / raw (ms)",
                         f"{fmt(lat['stevedore_created_to_start_ms']['p50'])} / "
                         f"{fmt(lat['raw_created_to_start_ms']['p50'])}", ""))
    if "fanout" in results:
        f = results["fanout"]
        rows.append(("fan-out", "RUN times=100000 answered (s, < 1)", fmt(f["run_answer_s"], 3),
                     fmt(f["target_run_answer_under_1s"])))
        rows.append(("fan-out", "all details exist (s, <= 10)", fmt(f["all_details_s"], 2),
                     fmt(f["target_all_details_within_10s"])))
        g = f["get_result_ms"]
        rows.append(("fan-out", "GET result meanwhile p50/p95/max (ms, max < 50)",
                     f"{fmt(g['p50'])} / {fmt(g['p95'])} / {fmt(g['max'])}", fmt(f["target_get_result_under_50ms"])))
        for probe, what in (("sql_row", "its row read from PostgreSQL"), ("health", "GET /health/ (RPC pings)")):
            if f.get(f"{probe}_ms"):
                p = f[f"{probe}_ms"]
                rows.append(("fan-out", f"  meanwhile {what} p50/p95/max (ms)",
                             f"{fmt(p['p50'])} / {fmt(p['p95'])} / {fmt(p['max'])}", ""))
        if f.get("run_queue_wait_ms_per_s"):
            rows.append(("fan-out", "  waiting for a CPU, RUN to CANCEL done (ms/s)",
                         ", ".join(f"{k} {v:.0f}" for k, v in sorted(f["run_queue_wait_ms_per_s"].items())), ""))
        rows.append(("fan-out", "CANCEL: queued all CANCELLED (s, <= 5)", fmt(f["cancel_all_queued_cancelled_s"], 2),
                     fmt(f["target_cancel_within_5s"])))
        rows.append(("fan-out", "stale work after cancel (= 0)", fmt(f["stale_work"]), fmt(f["target_no_stale_work"])))
        rows.append(("memory", "peak RSS per service (MB, < 150)",
                     ", ".join(f"{k} {v:.0f}" for k, v in sorted(f["rss_peak_mb"].items())),
                     fmt(f["target_rss_under_150mb"])))
    if "reads" in results:
        r = results["reads"]
        rows.append(("reads", "GET result, 8 clients (req/s, >= 300)", fmt(r["requests_per_s"]), fmt(r["target_300_rps"])))
        per_request = r.get("cpu_ms_per_request") or {}
        if per_request:
            rows.append(("reads", "CPU ms per request", f"machine {per_request.get('machine', 0):.1f}",
                         ", ".join(f"{k} {v:.1f}" for k, v in per_request.items() if k != "machine" and v >= 0.1)))
        rows.append(("reads", "latency p50/p99 (ms, p99 < 100)",
                     f"{fmt(r['latency_ms']['p50'])} / {fmt(r['latency_ms']['p99'])}", fmt(r["target_p99_under_100ms"])))
        distinct = r.get("distinct_results")
        if distinct:
            rows.append(("reads", "8 clients, each its own result (req/s)", fmt(distinct["requests_per_s"]),
                         f"p50/p99 {fmt(distinct['latency_ms']['p50'])} / {fmt(distinct['latency_ms']['p99'])} ms"))
    width = max(len(r[1]) for r in rows) if rows else 10
    lines = [f"{'leg':<11} {'measure':<{width}}  {'value':<30} target met"]
    for leg, what, value, met in rows:
        lines.append(f"{leg:<11} {what:<{width}}  {value:<30} {met}")
    return "\n".join(lines)


def cpu_list(text):
    """CPUs as ``taskset -c`` takes them: ``1``, ``0,2``, ``2-3``."""
    cpus = set()
    try:
        for part in text.split(","):
            first, _, last = part.partition("-")
            cpus.update(range(int(first), int(last or first) + 1))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a CPU list: {text!r} (e.g. 1, 0,2 or 2-3)") from None
    return sorted(cpus)


def run_control_plane(args):
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    report = {"label": args.label, "started": stamp, "legs": ["control-plane"], "machine": {
        "cpus": os.cpu_count(), "load_at_start": load(), "uname": " ".join(os.uname())},
        # runner settings the bench's environment set (passed to its services): what a side compared
        "runner_settings": {name: os.environ[name] for name in ("RUNNER_PREPARE_AHEAD_SECONDS",
                                                                "RUNNER_REMOVE_BACKLOG") if name in os.environ}}
    print(f"bench: control-plane (load {load()})", file=sys.stderr, flush=True)
    try:
        result = control_plane.control_plane(
            runners=args.cp_runners, slots=args.slots, rate=args.rate, seconds=args.cp_seconds,
            idle=args.idle, container_seconds=args.container_seconds,
            profiler=(lambda system: Profiler([s for s in args.profile.split(",") if s], system,
                                              f"{stamp}-{args.label}-control-plane")) if args.profile else None)
        report["results"] = {"control-plane": result}
        lines = control_plane.rows(result)
        width = max(len(r[1]) for r in lines)
        print(f"{'leg':<13} {'measure':<{width}}  {'value':<30} target met")
        for leg, what, value, met in lines:
            print(f"{leg:<13} {what:<{width}}  {value:<30} {met}")
    except Exception as exc:
        report["results"] = {"control-plane": {"error": f"{type(exc).__name__}: {exc}"}}
        print(f"bench: control-plane failed: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
    report["machine"]["load_at_end"] = load()
    path = os.path.join(RESULTS, f"{stamp}-{args.label}.json")
    with open(path, "w") as fh:
        json.dump(report, fh, indent=2, default=str)
    print(f"bench: wrote {os.path.relpath(path)}", file=sys.stderr)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("legs", nargs="*", default=["all"],
                        choices=["throughput", "latency", "fanout", "reads", "control-plane", "all"])
    parser.add_argument("--label", default="run", help="a name for this run, in the JSON file's name")
    parser.add_argument("--profile", default="", help="comma-separated services to profile with py-spy "
                                                      "(gateway,scheduler,runner,registry)")
    parser.add_argument("--runs", type=int, default=200, help="executions in the throughput leg")
    parser.add_argument("--rounds", type=int, default=50, help="rounds of the latency leg")
    parser.add_argument("--interleave", type=int, default=4,
                        help="throughput: sides alternate in this many rounds (same load for each)")
    parser.add_argument("--times", type=int, default=100000, help="executions of the fan-out")
    parser.add_argument("--network", default="bridge",
                        help="CONTAINER_NETWORK of the runners and of the raw side (default: bridge, as deployed)")
    parser.add_argument("--no-swarm", action="store_true", help="skip the Swarm side of the throughput leg")
    parser.add_argument("--http-rate-limit", default="0",
                        help="the gateway's HTTP_RATE_LIMIT (default 0: off; the bench is one client asking as fast "
                             "as it is answered); a large value measures the cost of the buckets without refusals")
    parser.add_argument("--execution-nice", type=int, default=0,
                        help="run the runners and the machine's dockerd/containerd at this nice value "
                             "(as a shared host would give them less CPU weight than the control plane)")
    parser.add_argument("--fan-out-probes", action="store_true",
                        help="fan-out: also time the result's row read from PostgreSQL and GET /health/ "
                             "beside the GETs (more load on the same services)")
    parser.add_argument("--execution-cpus", type=cpu_list, default=None,
                        help="pin the runners and the machine's dockerd/containerd to these CPUs (e.g. 1 or 2-3), "
                             "and the control plane, PostgreSQL and RabbitMQ to the others (a stand-in for "
                             "runners on hosts of their own)")
    cp = parser.add_argument_group("control-plane (bench/control_plane.py)")
    cp.add_argument("--cp-runners", type=int, default=8, help="runner processes (8)")
    cp.add_argument("--slots", type=int, default=32, help="slots of each runner (32)")
    cp.add_argument("--rate", type=float, default=50.0,
                    help="executions offered a second (50; 0: flat out, a backlog kept)")
    cp.add_argument("--cp-seconds", type=float, default=60.0, help="length of the measured load window (60)")
    cp.add_argument("--container-seconds", type=float, default=1.5,
                    help="how long each stand-in container runs (1.5: started, output and finished reported)")
    cp.add_argument("--idle", type=float, default=20.0, help="length of the idle baseline window (20)")
    args = parser.parse_args(argv)
    chosen = ["throughput", "latency", "fanout", "reads"] if "all" in args.legs else args.legs
    if "control-plane" in chosen:
        chosen = [leg for leg in chosen if leg != "control-plane"]
        run_control_plane(args)
        if not chosen:
            return 0
    profile = [s for s in args.profile.split(",") if s]

    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    report = {"label": args.label, "started": stamp, "legs": chosen, "machine": {
        "cpus": os.cpu_count(), "load_at_start": load(), "uname": " ".join(os.uname())},
        # runner settings the bench's environment set (passed to its services): what a side compared
        "runner_settings": {name: os.environ[name] for name in ("RUNNER_PREPARE_AHEAD_SECONDS",
                                                                "RUNNER_REMOVE_BACKLOG") if name in os.environ}}
    results = report["results"] = {}
    profiles = report["profiles"] = {}
    client = docker.DockerClient(base_url=os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock"),
                                 timeout=120)
    report["machine"]["docker"] = client.version().get("Version")
    with contextlib.ExitStack() as stack:
        vhost = stack.enter_context(Vhost())
        database = stack.enter_context(Database())
        images = stack.enter_context(Images(client))
        legs.RUNNER_POLICY["network"] = args.network
        report["network"] = args.network
        report["http_rate_limit"] = args.http_rate_limit
        system = stack.enter_context(Stevedore(vhost, database, runners=4,
                                               env={"CONTAINER_NETWORK": args.network,
                                                    "HTTP_RATE_LIMIT": args.http_rate_limit}))
        if args.execution_nice or args.execution_cpus:
            report["execution_nice"], report["execution_cpus"] = args.execution_nice, args.execution_cpus
            pids = system.pids()
            stack.enter_context(ExecutionPlane(
                [pid for label, pid in pids.items() if label.startswith("runner")],
                [pid for label, pid in pids.items() if not label.startswith("runner")] + [os.getpid()],
                nice=args.execution_nice, cpus=args.execution_cpus))
        swarm = None
        if "throughput" in chosen and not args.no_swarm:
            try:
                swarm = stack.enter_context(SwarmEngine())
            except Exception as exc:
                results["swarm_setup_error"] = f"{type(exc).__name__}: {exc}"
        for leg in chosen:
            if ensure_docker0(client):
                report.setdefault("docker0_recreated", []).append(leg)
                print("bench: docker0 was missing (deleted by a dockerd --bridge none?); recreated it",
                      file=sys.stderr, flush=True)
            print(f"bench: {leg} (load {load()})", file=sys.stderr, flush=True)
            spy = Profiler(profile, system, f"{stamp}-{args.label}-{leg}")
            try:
                if leg == "throughput":
                    results[leg] = legs.throughput(system, client, swarm, images.ref, n=args.runs,
                                                      rounds=args.interleave)
                elif leg == "latency":
                    results[leg] = legs.latency(system, client, images.ref, rounds=args.rounds)
                elif leg == "fanout":
                    results[leg] = legs.fan_out(system, database, images.ref, times=args.times,
                                                 probes=args.fan_out_probes)
                elif leg == "reads":
                    result_id = (results.get("fanout") or {}).get("result_id")
                    if result_id is None:
                        task = legs.register(system.api, images.ref)
                        result_id = system.api.run(task["task_id"], times=args.times)
                        system.api.post(f"/result/{result_id}/", {"operation": "CANCEL"})
                        legs.wait_result(system.api, result_id, timeout=120)
                    task = legs.register(system.api, images.ref)
                    distinct = [system.api.run(task["task_id"], times=1) for _ in range(8)]
                    for other in distinct:
                        legs.wait_result(system.api, other, timeout=120)
                    results[leg] = legs.reads(system, result_id, distinct_ids=distinct)
            except Exception as exc:
                results[leg] = {"error": f"{type(exc).__name__}: {exc}"}
                print(f"bench: {leg} failed: {exc}", file=sys.stderr, flush=True)
            finally:
                profiles[leg] = spy.stop()
            with open(os.path.join(RESULTS, f"{stamp}-{args.label}.json"), "w") as fh:
                json.dump(report, fh, indent=2, default=str)
    report["machine"]["load_at_end"] = load()
    ok = {k: v for k, v in results.items() if isinstance(v, dict) and "error" not in v}
    print(table(ok))
    for leg, value in results.items():
        if isinstance(value, dict) and "error" in value or isinstance(value, str):
            print(f"{leg}: {value}")
    path = os.path.join(RESULTS, f"{stamp}-{args.label}.json")
    with open(path, "w") as fh:
        json.dump(report, fh, indent=2, default=str)
    print(f"bench: wrote {os.path.relpath(path)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
