"""A RabbitMQ node and a PostgreSQL cluster of the bench's own, on loopback ports of their own.

For the control-plane leg, whose figures are the CPU of RabbitMQ and PostgreSQL per execution:
on the machine's shared broker and database other sessions' work would be counted as ours.  Each
is started from the packages' own binaries with its data in a temporary directory, listens on
127.0.0.1 only, and is stopped and deleted at the end; the shared ones are never touched (the
node registers a name of its own with the machine's epmd, as any node does).
"""
import os
import shutil
import socket
import subprocess
import tempfile
import time

import requests

from tests.support import wait_until

RABBIT_BIN = os.environ.get("BENCH_RABBIT_BIN", "/usr/lib/rabbitmq/bin/rabbitmq-server")
PG_BIN = os.environ.get("BENCH_PG_BIN", "/usr/lib/postgresql/15/bin")
PG_USER = "postgres"  # initdb and postgres refuse to run as root


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def children(pid):
    """Every descendant of ``pid`` (from /proc), itself first."""
    by_parent = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                raw = fh.read()
        except OSError:
            continue
        parent = int(raw[raw.rindex(")") + 2:].split()[1])
        by_parent.setdefault(parent, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        todo.extend(by_parent.get(current, ()))
    return out


class PrivateRabbit:
    """One RabbitMQ node (management plugin on), its AMQP and management ports on 127.0.0.1."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="stevedore-bench-rabbit-")
        self.port, self.api_port, self.dist_port = free_port(), free_port(), free_port()
        self.node = f"stevedore-bench-{os.getpid()}-{self.port}@localhost"
        self.uri = f"pyamqp://guest:guest@127.0.0.1:{self.port}/"
        self.api = f"http://guest:guest@127.0.0.1:{self.api_port}/api"
        self.proc = None

    def __enter__(self):
        try:
            return self._start()
        except BaseException:
            self.__exit__()
            raise

    def _start(self):
        with open(os.path.join(self.dir, "env.conf"), "w") as fh:
            fh.write(f"NODENAME={self.node}\nERL_EPMD_ADDRESS=127.0.0.1\n"
                     'export ERL_FLAGS="-kernel inet_dist_use_interface {127,0,0,1}"\n')
        with open(os.path.join(self.dir, "rabbitmq.conf"), "w") as fh:
            fh.write(f"listeners.tcp.local = 127.0.0.1:{self.port}\n"
                     f"management.tcp.ip = 127.0.0.1\nmanagement.tcp.port = {self.api_port}\n")
        with open(os.path.join(self.dir, "enabled_plugins"), "w") as fh:
            fh.write("[rabbitmq_management].\n")
        env = {**os.environ, "HOME": self.dir, "RABBITMQ_CONF_ENV_FILE": os.path.join(self.dir, "env.conf"),
               "RABBITMQ_CONFIG_FILE": os.path.join(self.dir, "rabbitmq.conf"),
               "RABBITMQ_ENABLED_PLUGINS_FILE": os.path.join(self.dir, "enabled_plugins"),
               "RABBITMQ_MNESIA_BASE": os.path.join(self.dir, "mnesia"),
               "RABBITMQ_LOG_BASE": os.path.join(self.dir, "log"),
               "RABBITMQ_DIST_PORT": str(self.dist_port), "RABBITMQ_NODENAME": self.node}
        self.log = open(os.path.join(self.dir, "out.log"), "wb")
        self.proc = subprocess.Popen([RABBIT_BIN], env=env, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)

        def up():
            if self.proc.poll() is not None:
                raise RuntimeError(f"the bench's RabbitMQ node exited (see {self.dir}/out.log)")
            try:
                return requests.get(f"{self.api}/overview", timeout=2).ok
            except requests.RequestException:
                return False

        wait_until(up, timeout=90, interval=0.5, what="the bench's RabbitMQ node")
        return self

    def pids(self):
        """The node's processes (beam.smp and its helpers), found under the script that started it."""
        return children(self.proc.pid) if self.proc else []

    def queues(self, vhost="/"):
        """{queue name: messages in it} of ``vhost`` (the management API's figures, a few seconds old)."""
        found = requests.get(f"{self.api}/queues/{requests.utils.quote(vhost, safe='')}",
                             params={"columns": "name,messages"}, timeout=10)
        found.raise_for_status()
        return {q["name"]: q.get("messages") or 0 for q in found.json()}

    def __exit__(self, *exc):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()  # the node stops cleanly on SIGTERM
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
                self.proc.wait(10)
        if getattr(self, "log", None):
            self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


class PrivatePostgres:
    """A PostgreSQL cluster (initdb) on a loopback port and a socket directory of its own, trust auth."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="stevedore-bench-pg-")
        self.data = os.path.join(self.dir, "data")
        self.port = free_port()
        self.admin_url = f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/postgres"
        self.proc = None

    def _as_postgres(self, *argv, **kwargs):
        return subprocess.run(["runuser", "-u", PG_USER, "--", *argv], check=True, capture_output=True,
                              **kwargs)

    def __enter__(self):
        try:
            return self._start()
        except BaseException:
            self.__exit__()
            raise

    def _start(self):
        shutil.chown(self.dir, PG_USER)
        self._as_postgres(os.path.join(PG_BIN, "initdb"), "-D", self.data, "-U", "postgres",
                          "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8")
        self.log = open(os.path.join(self.dir, "postgres.log"), "wb")
        shutil.chown(os.path.join(self.dir, "postgres.log"), PG_USER)
        # the machine's PostgreSQL's defaults but for what a throwaway cluster need not keep
        self.proc = subprocess.Popen(
            ["runuser", "-u", PG_USER, "--", os.path.join(PG_BIN, "postgres"), "-D", self.data,
             "-p", str(self.port), "-k", self.dir, "-c", "listen_addresses=127.0.0.1",
             "-c", "max_connections=200", "-c", "shared_buffers=128MB"],
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)

        def up():
            if self.proc.poll() is not None:
                raise RuntimeError(f"the bench's PostgreSQL exited (see {self.dir}/postgres.log)")
            return subprocess.run([os.path.join(PG_BIN, "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port)],
                                  capture_output=True).returncode == 0

        wait_until(up, timeout=60, interval=0.3, what="the bench's PostgreSQL")
        return self

    def postmaster(self):
        """The postmaster's pid (runuser's child)."""
        try:
            with open(os.path.join(self.data, "postmaster.pid")) as fh:
                return int(fh.readline())
        except (OSError, ValueError):
            return None

    def pids(self):
        """The cluster's processes: the postmaster, its backends and background workers."""
        master = self.postmaster()
        return children(master) if master else []

    def __exit__(self, *exc):
        if self.proc and self.proc.poll() is None:
            master = self.postmaster()
            if master:
                os.kill(master, 2)  # SIGINT: fast shutdown
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
                self.proc.wait(10)
        if getattr(self, "log", None):
            self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def cpu_of(pids):
    """CPU seconds (user + system) used so far by the processes ``pids`` (those gone count nothing)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as fh:
                raw = fh.read()
        except OSError:
            continue
        rest = raw[raw.rindex(")") + 2:].split()
        total += (int(rest[11]) + int(rest[12])) / ticks
    return total


def settle(seconds):
    time.sleep(seconds)
