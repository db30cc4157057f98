"""A redundant backbone of the tests' own, on loopback: a RabbitMQ cluster of three nodes and a
PostgreSQL primary with a synchronous streaming replica.

Nothing here touches the machine's own RabbitMQ (node rabbit@localhost, port
5672, its epmd and Erlang cookie) or PostgreSQL (port 5432): the nodes have
their own names, ports, cookie, data and epmd (on a port of its own), and the
PostgreSQL clusters are made with initdb in a temporary directory, on free
ports, with their own socket directory.  Every process is started in a session
of its own, so ``kill`` ends the whole of one (a node's beam and its helpers, a
postmaster and its backends) as a machine that dies would; ``stop`` ends
everything and removes the directory, whatever state it is in.
"""
import glob
import os
import shutil
import signal
import subprocess
import tempfile
import uuid

from tests.support import free_port, wait_until

RABBITMQ_BIN = "/usr/lib/rabbitmq/bin"  # the real scripts: /usr/sbin's wrappers switch to the rabbitmq user


def _killpg(proc, sig=signal.SIGKILL):
    if proc is not None and proc.poll() is None:
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        proc.wait(30)


def _port_open(port):
    import socket

    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def connected_ports(pid):
    """The local TCP ports process ``pid`` has connections established to (its peers' ports)."""
    out = subprocess.run(["ss", "-Htnp", "state", "established"], capture_output=True, text=True,
                         check=True).stdout
    ports = set()
    for line in out.splitlines():
        if f"pid={pid}," in line:
            peer = line.split()[3]
            ports.add(int(peer.rsplit(":", 1)[1]))
    return ports


class RabbitCluster:
    """Three RabbitMQ nodes clustered on loopback: ``uri(first)`` lists all three, ``first`` first."""

    def __init__(self, size=3):
        self.dir = tempfile.mkdtemp(prefix="stevedore-ha-rabbit-")
        self.tag = uuid.uuid4().hex[:6]
        self.names = [f"ha{n}-{self.tag}@localhost" for n in range(1, size + 1)]
        self.ports = [free_port() for _ in self.names]
        self.dist_ports = [free_port() for _ in self.names]
        self.epmd_port = free_port()
        self.procs = {}
        self.epmd = None
        self.home = os.path.join(self.dir, "home")
        os.makedirs(self.home)
        cookie = os.path.join(self.home, ".erlang.cookie")
        with open(cookie, "w") as fh:
            fh.write(uuid.uuid4().hex)
        os.chmod(cookie, 0o400)
        with open(os.path.join(self.dir, "enabled_plugins"), "w") as fh:
            fh.write("[].\n")  # no management listener: it would want the machine's port 15672
        open(os.path.join(self.dir, "rabbitmq-env.conf"), "w").close()  # not /etc/rabbitmq's

    def env(self, n=None):
        env = {"PATH": "/usr/bin:/bin:/usr/sbin:/sbin", "HOME": self.home, "LANG": "C.UTF-8",
               "ERL_EPMD_PORT": str(self.epmd_port), "ERL_EPMD_ADDRESS": "127.0.0.1",
               "RABBITMQ_CONF_ENV_FILE": os.path.join(self.dir, "rabbitmq-env.conf"),
               "RABBITMQ_ENABLED_PLUGINS_FILE": os.path.join(self.dir, "enabled_plugins")}
        if n is not None:
            env.update({
                "RABBITMQ_NODENAME": self.names[n], "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
                "RABBITMQ_NODE_PORT": str(self.ports[n]), "RABBITMQ_DIST_PORT": str(self.dist_ports[n]),
                "RABBITMQ_CONFIG_FILE": os.path.join(self.dir, f"node{n}.conf"),
                "RABBITMQ_MNESIA_BASE": os.path.join(self.dir, "mnesia"),
                "RABBITMQ_LOG_BASE": os.path.join(self.dir, "log"),
                "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}"})
        return env

    def _config(self, n):
        peers = "".join(f"cluster_formation.classic_config.nodes.{i + 1} = {name}\n"
                        for i, name in enumerate(self.names))
        with open(os.path.join(self.dir, f"node{n}.conf"), "w") as fh:
            fh.write(f"listeners.tcp.local = 127.0.0.1:{self.ports[n]}\n"
                     "loopback_users = none\n"
                     "cluster_formation.peer_discovery_backend = classic_config\n" + peers +
                     "cluster_formation.randomized_startup_delay_range.min = 0\n"
                     "cluster_formation.randomized_startup_delay_range.max = 0\n")

    def _spawn(self, n):
        self._config(n)
        log = open(os.path.join(self.dir, f"node{n}.out"), "ab")
        self.procs[n] = subprocess.Popen([f"{RABBITMQ_BIN}/rabbitmq-server"], env=self.env(n), cwd=self.dir,
                                         stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()

    def start(self):
        self.epmd = subprocess.Popen(["epmd", "-port", str(self.epmd_port), "-address", "127.0.0.1"],
                                     env=self.env(), start_new_session=True,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # the first node forms the cluster; the others find it (classic_config) and join
        self._spawn(0)
        self._wait_listening(0)
        for n in range(1, len(self.names)):
            self._spawn(n)
        for n in range(1, len(self.names)):
            self._wait_listening(n)
        wait_until(lambda: self.running_nodes() == set(self.names), timeout=60, interval=1,
                   what="the three RabbitMQ nodes to form one cluster")
        return self

    def _wait_listening(self, n):
        def up():
            if self.procs[n].poll() is not None:
                raise AssertionError(f"RabbitMQ node {self.names[n]} exited: {self.log(n)[-2000:]}")
            return _port_open(self.ports[n])

        wait_until(up, timeout=90, interval=0.3, what=f"RabbitMQ node {self.names[n]} to listen")

    def ctl(self, *args, node=0, check=True):
        alive = [n for n in range(len(self.names)) if self.alive(n)]
        target = node if node in alive else alive[0]
        return subprocess.run([f"{RABBITMQ_BIN}/rabbitmqctl", "-n", self.names[target], "-q", *args],
                              env=self.env(), capture_output=True, text=True, check=check, timeout=60)

    def running_nodes(self):
        import json

        done = self.ctl("cluster_status", "--formatter", "json", check=False)
        if done.returncode != 0:
            return set()
        return set(json.loads(done.stdout).get("running_nodes", []))

    def quorum_members(self, vhost="/"):
        """{quorum queue: (leader, members)} as the cluster lists them."""
        done = self.ctl("list_queues", "-p", vhost, "name", "type", "leader", "members", "--formatter", "json")
        import json

        return {q["name"]: (q["leader"], q["members"]) for q in json.loads(done.stdout) if q["type"] == "quorum"}

    def alive(self, n):
        proc = self.procs.get(n)
        return proc is not None and proc.poll() is None

    def uri(self, first=0, vhost=""):
        """AMQP_URI naming every node (kombu fails over in turn, ';'-separated), node ``first`` first."""
        order = [(first + i) % len(self.names) for i in range(len(self.names))]
        return ";".join(f"pyamqp://guest:guest@127.0.0.1:{self.ports[n]}/{vhost}" for n in order)

    def nodes_of(self, pid):
        """The nodes whose AMQP ports process ``pid`` is connected to."""
        ports = connected_ports(pid)
        return {n for n, port in enumerate(self.ports) if port in ports}

    def wait_node_of(self, pid, other_than=None, timeout=30):
        """The node process ``pid`` is connected to, once it is one and not ``other_than``.  After a failover
        (``other_than``: the dead node) a process's connections may each have gone to another of the nodes
        left (kombu tries them in turn, connection by connection): then any of them, so long as none is
        ``other_than``."""
        def connected():
            nodes = self.nodes_of(pid)
            fine = len(nodes) == 1 if other_than is None else bool(nodes) and other_than not in nodes
            return sorted(nodes) if fine else False

        try:
            return wait_until(connected, timeout=timeout, interval=0.3,
                              what=f"process {pid} to be connected to RabbitMQ nodes (not {other_than})")[0]
        except AssertionError as exc:
            raise AssertionError(f"{exc}; connected to nodes {sorted(self.nodes_of(pid))}") from None

    def kill(self, n):
        """SIGKILL node ``n``: its beam and everything it started, at once."""
        _killpg(self.procs[n])

    def log(self, n):
        with open(os.path.join(self.dir, f"node{n}.out"), errors="replace") as fh:
            return fh.read()

    def stop(self):
        for proc in self.procs.values():
            _killpg(proc)
        _killpg(self.epmd)
        shutil.rmtree(self.dir, ignore_errors=True)


def postgres_bin():
    return sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]))[-1]


class PostgresPair:
    """A primary on loopback and a streaming replica it commits synchronously to (``ha_replica``).

    ``url(database)`` is the libpq multi-host URL the services get: both, with
    ``target_session_attrs=read-write``, so a connection reaches whichever is
    the primary.  ``kill_primary`` SIGKILLs the primary's postmaster and every
    backend; ``promote`` makes the replica the primary.
    """

    REPLICA = "ha_replica"

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="stevedore-ha-postgres-")
        os.chmod(self.dir, 0o755)
        self.bin = postgres_bin()
        self.ports = {"primary": free_port(), "replica": free_port()}
        self.data = {role: os.path.join(self.dir, role) for role in self.ports}
        self.procs = {}

    def _as_postgres(self, *command):
        subprocess.run(list(command), check=True, capture_output=True, text=True, timeout=120,
                       user="postgres", group="postgres", extra_groups=[], cwd=self.dir)

    def _conf(self, role, lines):
        with open(os.path.join(self.data[role], "postgresql.auto.conf"), "a") as fh:
            fh.write("".join(f"{line}\n" for line in lines))

    def _spawn(self, role):
        log = open(os.path.join(self.dir, f"{role}.log"), "ab")
        self.procs[role] = subprocess.Popen([f"{self.bin}/postgres", "-D", self.data[role]], cwd=self.dir,
                                            user="postgres", group="postgres", extra_groups=[],
                                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        wait_until(lambda: self._ready(role), timeout=60, interval=0.3, what=f"PostgreSQL {role} to answer")

    def _ready(self, role):
        if self.procs[role].poll() is not None:
            raise AssertionError(f"PostgreSQL {role} exited: {self.log(role)[-2000:]}")
        return subprocess.run([f"{self.bin}/pg_isready", "-q", "-h", "127.0.0.1", "-p", str(self.ports[role])],
                              timeout=10).returncode == 0

    def start(self):
        shutil.chown(self.dir, "postgres", "postgres")
        self._as_postgres(f"{self.bin}/initdb", "-D", self.data["primary"], "-U", "postgres", "-A", "trust",
                          "--no-sync", "-E", "UTF8", "--locale", "C.UTF-8")
        self._conf("primary", [
            "listen_addresses = '127.0.0.1'", f"port = {self.ports['primary']}",
            f"unix_socket_directories = '{self.dir}'", "wal_level = replica", "max_wal_senders = 5",
            "wal_keep_size = '256MB'", "hot_standby = on", "max_connections = 200", "shared_buffers = '64MB'",
            "synchronous_commit = on", f"synchronous_standby_names = '{self.REPLICA}'"])
        self._spawn("primary")
        self._as_postgres(f"{self.bin}/pg_basebackup", "-h", "127.0.0.1", "-p", str(self.ports["primary"]),
                          "-U", "postgres", "-D", self.data["replica"], "-X", "stream", "-R", "--no-sync")
        # later lines win: its own port, its name for the primary's synchronous_standby_names, and no
        # synchronous standby of its own once promoted (nobody would answer, every commit would wait)
        self._conf("replica", [
            f"port = {self.ports['replica']}", "synchronous_standby_names = ''",
            f"primary_conninfo = 'host=127.0.0.1 port={self.ports['primary']} user=postgres "
            f"application_name={self.REPLICA}'"])
        self._spawn("replica")
        wait_until(lambda: self.sync_state() == "sync", timeout=60, interval=0.3,
                   what="the replica to stream synchronously")
        return self

    def admin_url(self, role="primary", database="postgres"):
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.ports[role]}/{database}"

    def url(self, database):
        hosts = "&".join(f"host=127.0.0.1:{self.ports[role]}" for role in ("primary", "replica"))
        return f"postgresql+psycopg2://postgres@/{database}?{hosts}&target_session_attrs=read-write"

    def query(self, role, statement):
        from sqlalchemy import create_engine, text
        from sqlalchemy.pool import NullPool

        engine = create_engine(self.admin_url(role), poolclass=NullPool, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                result = conn.execute(text(statement))
                return result.all() if result.returns_rows else []
        finally:
            engine.dispose()

    def sync_state(self):
        rows = self.query("primary", "SELECT sync_state FROM pg_stat_replication "
                                     f"WHERE application_name = '{self.REPLICA}' AND state = 'streaming'")
        return rows[0][0] if rows else None

    def kill_primary(self):
        _killpg(self.procs["primary"])

    def promote(self):
        [(promoted,)] = self.query("replica", "SELECT pg_promote(wait => true, wait_seconds => 30)")
        assert promoted, "the replica was not promoted"
        [(in_recovery,)] = self.query("replica", "SELECT pg_is_in_recovery()")
        assert not in_recovery

    def log(self, role):
        with open(os.path.join(self.dir, f"{role}.log"), errors="replace") as fh:
            return fh.read()

    def stop(self):
        for proc in self.procs.values():
            _killpg(proc)
        shutil.rmtree(self.dir, ignore_errors=True)
