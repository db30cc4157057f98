"""Separate hosts on one machine: network namespaces, veth links, and a Docker engine each.

The model (docs/multihost.md):

* a "hub" address (``10.N.0.1``) on the root namespace's loopback stands for
  the machines that serve every host: RabbitMQ and the image registry are
  reached there, through TCP forwarders (socat) to their loopback listeners;
* each host is a network namespace joined to the root namespace by a veth
  pair (``10.N.<i>.1`` root side, ``10.N.<i>.2`` host side, default route to
  the root side), so all it can reach is the hub, and only while its link is up;
* each host has its own dockerd, started inside its namespace (so its pulls
  go over its link) with its own data root, exec root, socket and pidfile,
  ``--bridge=none --iptables=false --ip6tables=false`` so that it never touches
  the main engine's bridge or firewall rules; containers run with network "none";
* the registry service gets an engine of its own in the root namespace (the
  main engine would refuse the hub registry as insecure, and must not be
  reconfigured), so the hosts' engines start without the image.

Everything made here is recorded in a ``Cleanup`` as it is made, and undone
in reverse order even when the setup fails half way.
"""
import contextlib
import logging
import os
import random
import re
import shutil
import signal
import subprocess
import time
import uuid

import docker
import pytest

from tests.support import wait_until

log = logging.getLogger(__name__)


def sh(*command, check=True):
    return subprocess.run(command, check=check, capture_output=True, text=True, timeout=60)


def require_tools():
    if os.geteuid() != 0:
        pytest.skip("these tests make network namespaces and start dockerd: they need root")
    missing = [tool for tool in ("ip", "nsenter", "socat", "ss", "dockerd") if not shutil.which(tool)]
    assert not missing, f"these tests need {', '.join(missing)} (.ci/run installs them)"


@contextlib.contextmanager
def rig_cleanup():
    """A Cleanup run when the block ends, also on failure; then docker0 is checked untouched."""
    require_tools()
    main_bridge = docker0()
    cleanup = Cleanup()
    try:
        yield cleanup
    finally:
        errors = cleanup.run()
        assert not errors, f"cleanup failed: {errors}"
        # the main engine's bridge, which every other test's containers use, is untouched
        assert docker0() == main_bridge, f"docker0 was {main_bridge}, is now {docker0()}"


class Cleanup:
    """Undo actions, run last-made first; each one runs even if another failed."""

    def __init__(self):
        self.actions = []

    def add(self, what, action):
        self.actions.append((what, action))

    def enter(self, what, manager):
        """What ``manager`` (a context manager) gives; its exit is an undo action."""
        value = manager.__enter__()
        self.add(what, lambda: manager.__exit__(None, None, None))
        return value

    def run(self):
        errors = []
        while self.actions:
            what, action = self.actions.pop()
            try:
                action()
            except Exception as exc:  # noqa: BLE001 (whatever failed: keep undoing the rest)
                log.warning("cleanup of %s failed: %s", what, exc)
                errors.append(f"{what}: {exc}")
        return errors


def free_subnet():
    """An unused 10.N.0.0/16 (N from 200 to 249), so concurrent sessions do not collide."""
    taken = set(re.findall(r"\b10\.(\d+)\.", sh("ip", "-4", "-o", "addr").stdout
                           + sh("ip", "-4", "route").stdout))
    for n in random.sample(range(200, 250), 50):
        if str(n) not in taken:
            return n
    raise RuntimeError("no free 10.N.0.0/16 for the test hosts")


class Network:
    def __init__(self, cleanup):
        self.cleanup = cleanup
        self.tag = uuid.uuid4().hex[:4]
        for _ in range(5):  # another session may take the same network at the same moment
            self.octet = free_subnet()
            self.hub = f"10.{self.octet}.0.1"
            if sh("ip", "addr", "add", f"{self.hub}/32", "dev", "lo", check=False).returncode == 0:
                break
        else:
            raise RuntimeError("could not put a hub address on lo")
        cleanup.add(f"hub address {self.hub}", lambda: sh("ip", "addr", "del", f"{self.hub}/32", "dev", "lo"))

    def add_host(self, index):
        return HostLink(self, index)

    def add_bridge(self, name, index):
        """A bridge of its own (``10.N.<index>.1/24``) for an engine in the root namespace."""
        bridge = f"stv{self.tag}{name}"
        sh("ip", "link", "add", bridge, "type", "bridge")
        self.cleanup.add(f"bridge {bridge}", lambda: sh("ip", "link", "del", bridge, check=False))
        sh("ip", "addr", "add", f"10.{self.octet}.{index}.1/24", "dev", bridge)
        return bridge

    def forward(self, port, target):
        """Listen on hub:port (root namespace) and forward each connection to ``target``."""
        proc = subprocess.Popen(
            ["socat", f"TCP-LISTEN:{port},bind={self.hub},reuseaddr,fork", f"TCP:{target}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        self.cleanup.add(f"forwarder {self.hub}:{port}", lambda: stop_group(proc))
        wait_until(lambda: _listening(self.hub, port), timeout=10, what=f"forwarder on {self.hub}:{port}")
        return f"{self.hub}:{port}"


def _listening(host, port):
    import socket

    try:
        socket.create_connection((host, port), timeout=1).close()
        return True
    except OSError:
        return False


def stop_group(proc, grace=5):
    """Stop a process started with start_new_session=True, and its children (socat forks)."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(grace)
        except ProcessLookupError:
            pass
    try:  # forks that outlived their parent
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


class HostLink:
    """One host's network namespace and its veth link to the root namespace."""

    def __init__(self, network, index):
        self.namespace = Namespace(network.cleanup, f"stv-{network.tag}-h{index}")
        self.netns = self.namespace.name
        self.veth = f"stv{network.tag}h{index}"  # root side; interface names fit 15 characters
        peer = self.veth + "p"
        self.root_address = f"10.{network.octet}.{index}.1"
        self.address = f"10.{network.octet}.{index}.2"
        cleanup = network.cleanup
        sh("ip", "link", "add", self.veth, "type", "veth", "peer", "name", peer)
        cleanup.add(f"veth {self.veth}", lambda: sh("ip", "link", "del", self.veth, check=False))
        sh("ip", "link", "set", peer, "netns", self.netns)
        sh("ip", "addr", "add", f"{self.root_address}/24", "dev", self.veth)
        sh("ip", "link", "set", self.veth, "up")
        inside = ("ip", "netns", "exec", self.netns)
        sh(*inside, "ip", "addr", "add", f"{self.address}/24", "dev", peer)
        sh(*inside, "ip", "link", "set", peer, "up")
        sh(*inside, "ip", "route", "add", "default", "via", self.root_address)

    @property
    def enter(self):
        return self.namespace.enter

    def cut(self):
        sh("ip", "link", "set", self.veth, "down")

    def restore(self):
        sh("ip", "link", "set", self.veth, "up")

    def pids(self):
        return self.namespace.pids()


class Namespace:
    """A network namespace of our own with its loopback up and nothing else: no link, no route.

    Programs in it reach its own loopback only, unless a ``reach_out``
    forwarder carries one port across; deleting it kills whatever still runs in it.
    """

    def __init__(self, cleanup, name):
        self.cleanup = cleanup
        self.name = name
        sh("ip", "netns", "add", name)
        cleanup.add(f"netns {name}", self._delete)
        sh("ip", "-n", name, "link", "set", "lo", "up")

    @property
    def enter(self):
        """The command prefix that runs a program in this network namespace only.

        ``nsenter --net`` rather than ``ip netns exec``: the latter also
        remounts /sys, which hides the cgroup mounts dockerd needs.
        """
        return ("nsenter", f"--net=/var/run/netns/{self.name}")

    def run(self, *command, check=True):
        return sh(*self.enter, *command, check=check)

    def listening(self, port):
        """Whether something listens on TCP ``port`` in this namespace (asked of the kernel, nothing sent)."""
        return bool(self.run("ss", "-Hltn", f"sport = :{port}").stdout.strip())

    def reach_out(self, port, target, directory):
        """Listen on 127.0.0.1:``port`` in here and carry each connection to ``target`` (host:port) outside.

        Two socats joined by a unix socket in ``directory`` (a file, so it is
        seen from both namespaces): the namespace gets one port, not a route.
        """
        socket_path = os.path.join(directory, f"reach-{port}.sock")
        outside = subprocess.Popen(["socat", f"UNIX-LISTEN:{socket_path},fork", f"TCP:{target}"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        self.cleanup.add(f"forwarder {socket_path} -> {target}", lambda: stop_group(outside))
        wait_until(lambda: os.path.exists(socket_path), timeout=10, what=f"forwarder socket {socket_path}")
        inside = subprocess.Popen([*self.enter, "socat", f"TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork",
                                   f"UNIX-CONNECT:{socket_path}"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        self.cleanup.add(f"forwarder {self.name} 127.0.0.1:{port}", lambda: stop_group(inside))
        wait_until(lambda: self.listening(port), timeout=10, what=f"forwarder on {self.name} 127.0.0.1:{port}")

    def pids(self):
        out = sh("ip", "netns", "pids", self.name, check=False).stdout
        return [int(pid) for pid in out.split()]

    def _delete(self):
        # whatever still runs in the namespace was started by this test
        for pid in self.pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        sh("ip", "netns", "del", self.name, check=False)


class Engine:
    """A dockerd of its own: data root, exec root, socket, pidfile under ``directory``."""

    def __init__(self, cleanup, directory, insecure_registry, enter=(), bridge=None):
        # with --bridge=none dockerd deletes the link named docker0 in its network
        # namespace (moby's removeDefaultBridgeInterface): harmless in a host's netns,
        # where there is none, but in the root namespace it is the main engine's bridge
        if not enter and bridge is None:
            raise ValueError("an engine in the root namespace needs a bridge of its own, "
                             "or it deletes the main engine's docker0")
        self.dir = directory
        os.makedirs(directory)
        cleanup.add(f"engine directory {directory}", self._remove_dir)
        self.url = f"unix://{directory}/docker.sock"
        self.log_path = os.path.join(directory, "dockerd.log")
        config = os.path.join(directory, "daemon.json")
        with open(config, "w") as fh:
            fh.write("{}\n")  # never the machine's /etc/docker/daemon.json
        self.command = command = [*enter, "dockerd", "--config-file", config,
                   "--data-root", f"{directory}/data", "--exec-root", f"{directory}/exec",
                   "-H", self.url, "--pidfile", f"{directory}/docker.pid",
                   f"--bridge={bridge or 'none'}", "--iptables=false", "--ip6tables=false",
                   "--insecure-registry", insecure_registry, "--log-level=warn"]
        with open(self.log_path, "ab") as out:
            self.proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        cleanup.add(f"dockerd {directory}", self.stop)
        self.client = docker.DockerClient(base_url=self.url, version="1.41", timeout=60)

    def wait_up(self, timeout=60):
        def up():
            if self.proc.poll() is not None:
                raise AssertionError(f"dockerd in {self.dir} exited: {self.tail_log()}")
            try:
                return self.client.ping()
            except Exception:  # noqa: BLE001 (not listening yet, in whatever words)
                return False

        wait_until(up, timeout=timeout, interval=0.2, what=f"dockerd in {self.dir}")
        return self

    def restart(self, grace=30):
        """SIGTERM this dockerd, as a service manager's restart does, and start it again on the same data."""
        self.proc.terminate()
        try:
            self.proc.wait(grace)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        with open(self.log_path, "ab") as out:
            self.proc = subprocess.Popen(self.command, stdout=out, stderr=subprocess.STDOUT)
        return self.wait_up()

    def tail_log(self, lines=20):
        with open(self.log_path, errors="replace") as fh:
            return "".join(fh.readlines()[-lines:])

    def stop(self, grace=30):
        self.client.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        # its managed containerd and shims exit with it; any left is ours (its paths are)
        for pid in _pids_mentioning(self.dir):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def _remove_dir(self):
        mounts = []
        with open("/proc/self/mounts") as fh:
            for line in fh:
                point = line.split()[1]
                if point.startswith(self.dir + "/"):
                    mounts.append(point)
        for point in sorted(mounts, key=len, reverse=True):
            sh("umount", "-l", point, check=False)
        shutil.rmtree(self.dir, ignore_errors=True)


def docker0():
    """The main engine's bridge as ``ip`` shows it (name and addresses), or None if there is none."""
    shown = sh("ip", "-4", "-o", "addr", "show", "dev", "docker0", check=False)
    if shown.returncode != 0:
        return None
    return sorted(line.split()[3] for line in shown.stdout.splitlines())


def _pids_mentioning(directory):
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                if directory.encode() in fh.read():
                    found.append(int(entry))
        except OSError:
            continue
    return found


def wait_all_up(engines, timeout=60):
    start = time.monotonic()
    for engine in engines:
        engine.wait_up(max(1.0, timeout - (time.monotonic() - start)))
