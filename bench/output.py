""".venv/bin/python -m bench.output [--bytes N] [--minutes M] [--label L]: the runner under a flood of output.

Sets up its own system (vhost, database, loopback registry, the four services
with one runner and config.yml's timers: heartbeat 5 s, lease 30 s) and measures:

* memory: one execution printing ``--bytes`` of NULs with no newline
  (``head -c N /dev/zero``): the runner's peak RSS (sampled every 0.1 s), its
  CPU seconds, the bytes it saw (``stdout_total``), the CPU seconds per MB seen,
  the engine's peak log size for the container (json-file, capped);
* flat out: ``yes`` for ``--minutes``: the lease's expiry read from PostgreSQL
  every second (each heartbeat moves it: heartbeats observed, and whether it
  ever fell behind the clock), the runner's peak RSS and CPU per MB seen, then a
  CANCEL and how long it took to end KILLED.

Prints a table and writes bench/results/<time>-output-<label>.json.
"""
import argparse
import json
import os
import threading
import time

import docker

from bench.backbone import Database, Images, Stevedore, Vhost, rss_mb
from tests.support import containers_of, wait_until

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results")
TICKS = os.sysconf("SC_CLK_TCK")
MB = 1024 ** 2


def cpu_s(pid):
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def log_bytes(client, container_id):
    try:
        path = client.api.inspect_container(container_id)["LogPath"]
        folder, name = os.path.split(path)
        return sum(os.path.getsize(os.path.join(folder, f)) for f in os.listdir(folder) if f.startswith(name))
    except (OSError, docker.errors.DockerException):
        return 0


class Watch:
    """Samples the runner's RSS, the container's engine log and the lease while an execution runs."""

    def __init__(self, pid, client, database, result_id, interval=0.1, lease_every=1.0):
        self.pid, self.client, self.database, self.result_id = pid, client, database, result_id
        self.interval, self.lease_every = interval, lease_every
        self.rss = 0.0
        self.log = 0
        self.leases = []  # (now, lease_expires_at)
        self.container = None
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        next_lease = 0.0
        while not self.done.wait(self.interval):
            self.rss = max(self.rss, rss_mb(self.pid) or 0.0)
            if self.container is None:
                found = containers_of(self.client, self.result_id)
                self.container = found[0].id if found else None
            else:
                self.log = max(self.log, log_bytes(self.client, self.container))
            if time.monotonic() >= next_lease:
                next_lease = time.monotonic() + self.lease_every
                lease = self.database.scalar("SELECT lease_expires_at FROM details WHERE result_id = :r",
                                             r=self.result_id)
                if lease is not None:
                    self.leases.append((time.time(), lease))

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.done.set()
        self.thread.join()


def logs_of(api, result_id):
    [detail] = api.details(result_id)
    return detail, api.get(f"/result/{result_id}/detail/{detail['detail_id']}/logs/").json()


def memory_leg(system, database, client, task, size):
    api, pid = system.api, system.pids()["runner-1"]
    cpu0, t0 = cpu_s(pid), time.monotonic()
    result_id = api.run(task, command=["head", "-c", str(size), "/dev/zero"])
    with Watch(pid, client, database, result_id) as watch:
        api.wait_result(result_id, timeout=3600)
    wall, cpu = time.monotonic() - t0, cpu_s(pid) - cpu0
    detail, logs = logs_of(api, result_id)
    seen = logs["stdout_total"]
    return {"bytes_printed": size, "status": detail["status"], "wall_s": round(wall, 1),
            "runner_peak_rss_mb": round(watch.rss, 1), "runner_cpu_s": round(cpu, 2),
            "bytes_seen": seen, "runner_cpu_s_per_mb_seen": round(cpu / (seen / MB), 5) if seen else None,
            "engine_log_peak_mb": round(watch.log / MB, 2), "kept_chars": len(logs["stdout"])}


def flat_out_leg(system, database, client, task, minutes):
    api, pid = system.api, system.pids()["runner-1"]
    result_id = api.run(task, command=["yes"])
    wait_until(lambda: api.details(result_id)[0]["status"] == "RUNNING", timeout=120, what="yes to run")
    cpu0, t0 = cpu_s(pid), time.monotonic()
    with Watch(pid, client, database, result_id) as watch:
        time.sleep(minutes * 60)
        detail, live = logs_of(api, result_id)
        cpu = cpu_s(pid) - cpu0
        asked = time.monotonic()
        api.post(f"/result/{result_id}/", {"operation": "CANCEL"})
        result = api.wait_result(result_id, timeout=300)
        cancel_s = time.monotonic() - asked
    detail_end, logs = logs_of(api, result_id)
    moves = sum(1 for (_, a), (_, b) in zip(watch.leases, watch.leases[1:]) if b != a)
    margins = [lease - now for now, lease in watch.leases]
    seen = live["stdout_total"]
    return {"minutes": minutes, "status_before_cancel": detail["status"], "attempt": detail_end["attempt"],
            "lease_samples": len(watch.leases), "lease_moves": moves,
            "lease_min_margin_s": round(min(margins), 2) if margins else None,
            "lease_ever_expired": any(m < 0 for m in margins),
            "runner_peak_rss_mb": round(watch.rss, 1), "runner_cpu_s": round(cpu, 2),
            "bytes_seen_live": seen, "runner_cpu_s_per_mb_seen": round(cpu / (seen / MB), 5) if seen else None,
            "engine_log_peak_mb": round(watch.log / MB, 2),
            "final_status": detail_end["status"], "final_reason": detail_end["reason"],
            "result_status": result["status"], "cancel_to_end_s": round(cancel_s, 2),
            "final_stdout_total": logs["stdout_total"]}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bytes", type=int, default=2_000_000_000)
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--label", default="run")
    args = parser.parse_args(argv)
    client = docker.DockerClient(base_url=os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock"), timeout=120)
    report = {"label": args.label, "started": time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()),
              "docker": client.version().get("Version"), "cpus": os.cpu_count()}
    with Vhost() as vhost, Database() as database, Images(client) as images, \
            Stevedore(vhost, database, runners=1) as system:
        task = system.api.register(images.ref, name="bench-output")["task_id"]
        report["memory"] = memory_leg(system, database, client, task, args.bytes)
        print(json.dumps(report["memory"], indent=1), flush=True)
        report["flat_out"] = flat_out_leg(system, database, client, task, args.minutes)
        print(json.dumps(report["flat_out"], indent=1), flush=True)
    os.makedirs(RESULTS, exist_ok=True)
    path = os.path.join(RESULTS, f"{report['started']}-output-{args.label}.json")
    with open(path, "w") as fh:
        json.dump(report, fh, indent=1)
    print(path)


if __name__ == "__main__":
    main()
