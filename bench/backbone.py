"""What the benchmark sets up for itself: vhost, database, loopback registry, image, system, swarm engine.

Everything is its own and removed afterwards; the shared RabbitMQ, PostgreSQL
and Docker engine are only used, never restarted.
"""
import os
import shutil
import subprocess
import tempfile
import time
import uuid

import docker
import requests
from sqlalchemy import create_engine, text

from tests.support import ImageRegistry, System, build_test_images, create_database, drop_database, wait_until

RABBIT_API = os.environ.get("BENCH_RABBIT_API", "http://guest:guest@127.0.0.1:15672/api")
RABBIT_AMQP = os.environ.get("BENCH_RABBIT_AMQP", "pyamqp://guest:guest@127.0.0.1:5672")
PG_ADMIN = os.environ.get("BENCH_PG_ADMIN", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")

# the system as deployed: config.yml's defaults, not the tests' quick timers
PRODUCTION_TIMERS = {"RUNNER_POLL_INTERVAL": "2", "HEARTBEAT_INTERVAL": "5", "LEASE_SECONDS": "30",
                     "RETRY_BACKOFF": "1", "STOP_GRACE_PERIOD": "10", "LOG_LEVEL": "INFO"}
# the bench is one client (the configured admin, from 127.0.0.1) asking as fast as the gateway answers, several
# hundred requests a second in the reads leg: what the per-client rate limit is there to stop.  It measures the
# gateway's capacity, so the limit is off unless a run asks for it (bench/main.py --http-rate-limit)
NO_RATE_LIMIT = {"HTTP_RATE_LIMIT": "0"}


def load():
    """The 1, 5 and 15 minute load averages of this machine, as now."""
    with open("/proc/loadavg") as fh:
        one, five, fifteen = fh.read().split()[:3]
    return {"1m": float(one), "5m": float(five), "15m": float(fifteen)}


TICKS = os.sysconf("SC_CLK_TCK")
# long-lived processes whose CPU is worth telling apart, by their command name
CPU_GROUPS = {"beam.smp": "rabbitmq", "postgres": "postgres", "dockerd": "dockerd",
              "containerd": "containerd", "containerd-shim": "shims", "containerd-shim-runc-v2": "shims"}


def _grouped_processes(labelled_pids=None):
    """(pid, group) of each running process in a group: ``labelled_pids`` (label -> pid), else by ``CPU_GROUPS``."""
    by_pid = {pid: label for label, pid in (labelled_pids or {}).items()}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        label = by_pid.get(int(entry))
        if label is None:
            try:
                with open(f"/proc/{entry}/comm") as fh:
                    label = CPU_GROUPS.get(fh.read().strip())
            except OSError:
                continue
        if label is not None:
            yield entry, label


def cpu_seconds(labelled_pids=None):
    """CPU seconds used so far: the whole machine (busy, from /proc/stat) and by group of processes.

    Groups: each pid of ``labelled_pids`` (label -> pid) under its label, the rest by
    ``CPU_GROUPS``.  A process that exits between two readings takes its seconds
    with it, so only the machine figure is complete (runc, shims that ended).
    """
    with open("/proc/stat") as fh:
        fields = [int(v) for v in fh.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    out = {"machine": (sum(fields[:8]) - idle) / TICKS}
    for entry, label in _grouped_processes(labelled_pids):
        try:
            with open(f"/proc/{entry}/stat") as fh:
                raw = fh.read()
        except OSError:
            continue
        rest = raw[raw.rindex(")") + 2:].split()
        out[label] = out.get(label, 0.0) + (int(rest[11]) + int(rest[12])) / TICKS  # utime + stime
    return out


def run_queue_wait(labelled_pids=None):
    """Seconds each thread of the groups has spent runnable but waiting for a CPU, so far.

    From each thread's ``/proc/<pid>/task/<tid>/schedstat`` (second field), keyed by
    (group, pid, tid); groups as in ``cpu_seconds``.  ``waited`` turns two readings
    into seconds per group.  On a saturated machine each hop of a request pays it.
    """
    out = {}
    for entry, label in _grouped_processes(labelled_pids):
        try:
            tids = os.listdir(f"/proc/{entry}/task")
        except OSError:
            continue
        for tid in tids:
            try:
                with open(f"/proc/{entry}/task/{tid}/schedstat") as fh:
                    out[(label, int(entry), int(tid))] = int(fh.read().split()[1]) / 1e9
            except OSError:
                continue
    return out


def waited(before, after):
    """Seconds per group its threads waited for a CPU between two ``run_queue_wait`` readings.

    Threads in the later reading only (started since) count from zero; threads that
    ended take their time with them (short-lived runc and shims), so those groups
    are a floor.  Never negative.
    """
    out = {}
    for key, seconds in after.items():
        out[key[0]] = out.get(key[0], 0.0) + max(0.0, seconds - before.get(key, 0.0))
    return out


def cpu_used(before, after):
    """CPU seconds per group between two ``cpu_seconds`` readings (groups in both)."""
    return {k: round(after[k] - before[k], 3) for k in after if k in before}


def rss_mb(pid):
    """Resident set size of a process in MB, None once it is gone."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


def ensure_docker0(client):
    """Put the shared engine's default bridge back if something deleted it; True if it had to.

    Any dockerd started with ``--bridge none`` deletes the host's ``docker0``
    (moby's removeDefaultBridgeInterface), which breaks every container on the
    shared engine's default network ("could not find bridge docker0") until
    the link exists again; the engine finds it by name, so recreating it with
    the network's own gateway address is enough.  Nothing is restarted.
    """
    if subprocess.run(["ip", "link", "show", "docker0"], capture_output=True).returncode == 0:
        return False
    network = client.networks.get("bridge").attrs
    if network.get("Options", {}).get("com.docker.network.bridge.name", "docker0") != "docker0":
        return False
    config = (network.get("IPAM") or {}).get("Config") or [{}]
    subnet = config[0].get("Subnet") or "172.17.0.0/16"
    gateway = config[0].get("Gateway") or subnet.split("/")[0].rsplit(".", 1)[0] + ".1"
    subprocess.run(["ip", "link", "add", "docker0", "type", "bridge"], check=True)
    subprocess.run(["ip", "addr", "add", f"{gateway}/{subnet.split('/')[1]}", "dev", "docker0"], check=True)
    subprocess.run(["ip", "link", "set", "docker0", "up"], check=True)
    return True


class Vhost:
    def __init__(self):
        self.name = f"stevedore-bench-{uuid.uuid4().hex[:8]}"
        self.uri = f"{RABBIT_AMQP}/{self.name}"

    def __enter__(self):
        requests.put(f"{RABBIT_API}/vhosts/{self.name}", timeout=10).raise_for_status()
        requests.put(f"{RABBIT_API}/permissions/{self.name}/guest",
                     json={"configure": ".*", "write": ".*", "read": ".*"}, timeout=10).raise_for_status()
        return self

    def __exit__(self, *exc):
        requests.delete(f"{RABBIT_API}/vhosts/{self.name}", timeout=30)


class Database:
    def __init__(self):
        self.url = None
        self.engine = None

    def __enter__(self):
        self.url = create_database(PG_ADMIN)
        self.engine = create_engine(self.url, pool_size=3)  # the leg's checks and a probe thread
        return self

    def scalar(self, sql, **params):
        with self.engine.connect() as conn:
            return conn.execute(text(sql), params).scalar()

    def __exit__(self, *exc):
        self.engine.dispose()
        drop_database(self.url)


class Images:
    """A loopback registry holding the trivial image (busybox printing a line, exit 0)."""

    def __init__(self, client):
        self.client = client
        self.registry = ImageRegistry()

    def __enter__(self):
        self.registry.start()
        self.ref = build_test_images(self.client, self.registry, behaviours=("ok",),
                                     repository=f"stevedore-bench/busybox-{uuid.uuid4().hex[:6]}")["ok"]
        return self

    def __exit__(self, *exc):
        try:
            remove_images(self.client, self.ref.rsplit(":", 1)[0])
        finally:
            self.registry.stop()


def remove_images(client, repository):
    """Untag every reference of ``repository`` on the engine (the runners' and registry's pulls too).

    By reference, never by id with force: layers other sessions' builds share stay.
    """
    for image in client.images.list(name=repository):
        for ref in list(image.tags) + list(image.attrs.get("RepoDigests") or []):
            if ref.startswith(repository):
                try:
                    client.images.remove(ref, noprune=True)
                except docker.errors.APIError:
                    pass


class Stevedore:
    """The four services as stevedore-host runs them (``runners`` runner processes), on our vhost and database."""

    def __init__(self, vhost, database, runners=4, env=None):
        self.system = System(vhost.uri, database.url, runners=runners, name="bench",
                             env={**PRODUCTION_TIMERS, **NO_RATE_LIMIT, **(env or {})})
        self.api = self.system.api

    def __enter__(self):
        self.system.start().wait_healthy(timeout=90)
        # the runners have said hello to the broker once the health check passes;
        # give their first reconcile a moment so no slot is still waiting on it
        time.sleep(3)
        return self

    def pids(self):
        return {label: proc.pid for label, proc in self.system.procs.items()}

    def __exit__(self, *exc):
        self.system.stop(grace=30)


class SwarmEngine:
    """A dockerd of our own as a one-node swarm on loopback: own data/exec roots, socket and pidfile,
    and a bridge of its own made here (never ``--bridge none``: dockerd then deletes the host's
    ``docker0``, the shared engine's bridge), with iptables and masquerading off.
    """

    BRIDGE = "stvbench0"
    SUBNET = "10.231.77.1/24"

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="stevedore-bench-swarm-")
        self.socket = os.path.join(self.dir, "docker.sock")
        self.proc = None
        self.client = None
        self.made_gwbridge = False
        self.made_bridge = False
        self.log = None

    @staticmethod
    def _link_exists(name):
        return subprocess.run(["ip", "link", "show", name], capture_output=True).returncode == 0

    def __enter__(self):
        try:
            return self._start()
        except BaseException:
            self.__exit__()  # nothing of ours is left behind when the start fails half-way
            raise

    def _start(self):
        if self._link_exists(self.BRIDGE):
            raise RuntimeError(f"{self.BRIDGE} exists already: another bench run?")
        if self._link_exists("docker_gwbridge"):
            raise RuntimeError("docker_gwbridge exists already (a swarm on this host?); not touching it")
        self.made_bridge = True
        subprocess.run(["ip", "link", "add", self.BRIDGE, "type", "bridge"], check=True)
        subprocess.run(["ip", "addr", "add", self.SUBNET, "dev", self.BRIDGE], check=True)
        subprocess.run(["ip", "link", "set", self.BRIDGE, "up"], check=True)
        self.log = open(os.path.join(self.dir, "dockerd.log"), "wb")
        self.proc = subprocess.Popen(
            ["dockerd", "--data-root", os.path.join(self.dir, "data"), "--exec-root", os.path.join(self.dir, "exec"),
             "-H", f"unix://{self.socket}", "--pidfile", os.path.join(self.dir, "docker.pid"),
             "--bridge", self.BRIDGE, "--iptables=false", "--ip6tables=false", "--ip-masq=false"],
            stdout=self.log, stderr=subprocess.STDOUT)
        wait_until(lambda: os.path.exists(self.socket), timeout=60, what="the swarm leg's dockerd socket")
        self.client = docker.DockerClient(base_url=f"unix://{self.socket}", version="1.41", timeout=120)

        def up():
            try:
                return self.client.ping()
            except Exception:
                return False

        wait_until(up, timeout=60, what="the swarm leg's dockerd")
        self.made_gwbridge = True  # swarm init makes docker_gwbridge on the host; it did not exist before
        self.client.swarm.init(advertise_addr="127.0.0.1")
        return self

    def __exit__(self, *exc):
        try:
            if self.client and self.proc and self.proc.poll() is None:
                try:
                    self.client.swarm.leave(force=True)
                except docker.errors.APIError:
                    pass
                self.client.close()
        finally:
            if self.proc and self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(60)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(10)
            if self.log:
                self.log.close()
            subprocess.run(["umount", "-R", os.path.join(self.dir, "exec")], capture_output=True)
            shutil.rmtree(self.dir, ignore_errors=True)
            if self.made_gwbridge and self._link_exists("docker_gwbridge"):
                subprocess.run(["ip", "link", "del", "docker_gwbridge"], capture_output=True)
            if self.made_bridge:
                subprocess.run(["ip", "link", "del", self.BRIDGE], capture_output=True)


class ExecutionPlane:
    """``--execution-nice N`` / ``--execution-cpus C``: where the execution plane runs, for the whole run.

    The runner processes and the machine's Docker engine (``dockerd``, ``containerd``;
    the shims and containers they start from then on inherit it) are given nice ``N``
    and/or the CPUs ``C`` (a list, as ``taskset -c`` takes), every thread of each (Linux
    keeps both per thread).  With CPUs, the control plane (``control_pids``: gateway,
    scheduler, registry; and the machine's PostgreSQL and RabbitMQ, found by name) is
    given the other CPUs: a stand-in for runners on hosts of their own.  Everything is
    put back at the end.  What an operator does with ``CPUWeight=`` / ``AllowedCPUs=``
    on docker.service and containerd.service, or ``cpu_shares`` / ``cpuset`` in compose,
    when runners share a host with the control plane; docs/performance.md measures the
    effect.  Needs root.
    """

    ENGINE = ("dockerd", "containerd")
    BACKBONE = ("postgres", "beam.smp")

    def __init__(self, runner_pids, control_pids=(), nice=0, cpus=None):
        self.nice, self.cpus = nice, set(cpus) if cpus else None
        self.execution, self.control = list(runner_pids), list(control_pids)
        self.before = {}  # tid -> (nice, affinity)

    @staticmethod
    def _threads(pid):
        try:
            return [int(tid) for tid in os.listdir(f"/proc/{pid}/task")]
        except FileNotFoundError:
            return []

    @staticmethod
    def _named(names):
        found = subprocess.run(["pgrep", "-x", "|".join(names)], capture_output=True, text=True)
        return [int(pid) for pid in found.stdout.split()]

    def _place(self, pids, nice=None, cpus=None):
        for pid in pids:
            for tid in self._threads(pid):
                try:
                    self.before.setdefault(tid, (os.getpriority(os.PRIO_PROCESS, tid), os.sched_getaffinity(tid)))
                    if nice is not None:
                        os.setpriority(os.PRIO_PROCESS, tid, nice)
                    if cpus:
                        os.sched_setaffinity(tid, cpus)
                except (ProcessLookupError, PermissionError):
                    pass

    def __enter__(self):
        rest = os.sched_getaffinity(0) - (self.cpus or set())
        if self.cpus and not rest:  # refused before anything is moved
            raise ValueError(f"--execution-cpus {sorted(self.cpus)} leaves no CPU for the control plane")
        self.execution += self._named(self.ENGINE)
        self._place(self.execution, nice=self.nice or None, cpus=self.cpus)
        if self.cpus:
            self._place(self.control + self._named(self.BACKBONE), cpus=rest)
        return self

    def __exit__(self, *exc):
        for tid, (nice, cpus) in self.before.items():
            try:
                os.setpriority(os.PRIO_PROCESS, tid, nice)
                os.sched_setaffinity(tid, cpus)
            except (ProcessLookupError, PermissionError):
                pass
