"""What an execution's container may do: the operator's policy, read once at the runner's start
(and ``log_config``: how much of its output the engine keeps).

Two profiles (``CONTAINER_PROFILE``):

* ``default`` keeps ordinary images working: the image's user (often root),
  Docker's default capabilities less ``DROPPED_CAPABILITIES`` (stricter than
  Kubernetes Pod Security "baseline"), a writable root filesystem;
* ``restricted``: user ``RESTRICTED_USER`` (nobody), no capability at all, a
  read-only root filesystem and a writable tmpfs ``/tmp`` of
  ``CONTAINER_TMP_SIZE``.

Both: no-new-privileges, the pids limit, a memory limit (the RUN's, else
``CONTAINER_DEFAULT_MEMORY``), never privileged, no device, no volume.

Network (``CONTAINER_NETWORK``): ``host`` and ``container:...`` are refused
(the runner does not start); the default, ``stevedore``, is a bridge the
runner makes if absent with inter-container traffic off, so executions of
different runs do not reach each other.  Docker enforces that with iptables:
on an engine started with ``--iptables=false`` it is not enforced, and the
runner can tell only when the engine says bridged traffic bypasses iptables
(``BridgeNfIptables`` false); it logs a warning then.
"""
import logging
import re
import time

import docker

from shared.errors import ValidationError
from shared.timeutil import parse_docker_time
from shared.validation import memory_bytes

log = logging.getLogger(__name__)

PROFILES = ("default", "restricted")
# Docker's default set less these: raw sockets (spoofing, sniffing), device nodes,
# file capabilities, audit records; batch jobs need none of them
DROPPED_CAPABILITIES = ["NET_RAW", "MKNOD", "SETFCAP", "AUDIT_WRITE"]
RESTRICTED_USER = "65534:65534"  # nobody:nogroup on Debian; needs no /etc/passwd in the image
DEFAULT_NETWORK = "stevedore"
ICC_OPTION = "com.docker.network.bridge.enable_icc"
NETWORK_LABEL = "stevedore.network"
SETTLE_SECONDS = 1.0  # a runner that made the network waits this long for others making it too
SETTLE_TRIES = 50  # looks for duplicates of a network being made by several runners at once
SETTLE_PAUSE = 0.1


class SettingError(ValueError):
    """A setting the runner cannot start with; the message names it."""


def _setting(config, name, default=None):
    value = config.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        return default
    return value.strip() if isinstance(value, str) else value


def _size(config, name, default=None):
    value = _setting(config, name, default)
    if value is None:
        return None
    try:
        return memory_bytes(str(value))
    except ValidationError as exc:
        raise SettingError(f"{name}={value!r}: {exc.message}") from None


def _cpus(config, name):
    value = _setting(config, name)
    if value is None:
        return None
    try:
        cpus = float(value)
    except (TypeError, ValueError):
        cpus = 0.0
    if not 0.01 <= cpus <= 1024:
        raise SettingError(f"{name}={value!r}: must be a number of CPUs from 0.01 to 1024")
    return cpus


def check_network(name):
    """Refuse a network that would share the host's or another container's stack."""
    lowered = name.lower()
    if lowered == "host" or lowered.startswith("container:"):
        raise SettingError(
            f"CONTAINER_NETWORK={name!r} is refused: an execution would share the network stack of "
            f"{'the host' if lowered == 'host' else 'another container'} (its interfaces, its loopback "
            f"services, its ports); use a bridge network such as {DEFAULT_NETWORK!r} (the default) or 'none'")
    return name


def read_policy(config):
    """The runner's container policy from its config; raises ``SettingError`` naming a bad setting."""
    profile = str(_setting(config, "CONTAINER_PROFILE", "default")).lower()
    if profile not in PROFILES:
        raise SettingError(f"CONTAINER_PROFILE={profile!r}: must be one of {', '.join(PROFILES)}")
    pids = _setting(config, "CONTAINER_PIDS_LIMIT", 1024)
    try:
        pids = int(pids)
    except (TypeError, ValueError):
        pids = 0
    if pids < 1:
        raise SettingError("CONTAINER_PIDS_LIMIT: must be a positive integer")
    policy = {
        "profile": profile,
        "default_memory": _size(config, "CONTAINER_DEFAULT_MEMORY"),
        "pids_limit": pids,
        "tmp_size": _size(config, "CONTAINER_TMP_SIZE", "64m"),
        "network": check_network(str(_setting(config, "CONTAINER_NETWORK", DEFAULT_NETWORK))),
        # this runner's own ceilings; None: its engine's (docker info), see engine_ceilings
        "max_memory": _size(config, "RUNNER_MAX_MEMORY"),
        "max_cpus": _cpus(config, "RUNNER_MAX_CPUS"),
    }
    return policy


def security_options(policy):
    """The docker-py ``containers.create`` options that confine a container under ``policy``."""
    options = {
        "privileged": False,
        "security_opt": ["no-new-privileges"],
        "pids_limit": policy["pids_limit"],
    }
    if policy.get("profile") == "restricted":
        options.update({
            "user": RESTRICTED_USER,
            "cap_drop": ["ALL"],
            "read_only": True,
            "tmpfs": {"/tmp": f"rw,nosuid,nodev,size={policy.get('tmp_size') or 64 * 1024 ** 2}"},
        })
    else:
        options["cap_drop"] = list(DROPPED_CAPABILITIES)
    return options


def engine_ceilings(info, policy):
    """(max memory bytes, max cpus) this runner fits: its settings, else its engine's size."""
    memory = policy.get("max_memory") or info.get("MemTotal") or None
    cpus = policy.get("max_cpus") or info.get("NCPU") or None
    return memory, (float(cpus) if cpus else None)


def warn_if_unenforced(info, network):
    """Log a warning when the engine says inter-container traffic cannot be blocked."""
    if network == "none":
        return False
    if info.get("BridgeNfIptables") is False:
        log.warning("the Docker engine reports bridge-nf-call-iptables disabled: traffic between containers "
                    "on network %r is not filtered, so executions of different runs can reach each other",
                    network)
        return True
    return False


def ensure_network(client, name, settle_tries=SETTLE_TRIES):
    """The network mode for execution containers; makes the dedicated bridge if it is absent.

    ``none`` and ``bridge`` (Docker's own) are used as they are.  Any other name
    is found by exact name, or created as a bridge with inter-container traffic
    off.  Runners of one engine making it at once make several networks of that
    name (the engine's duplicate check is not atomic), and a container on a name
    several networks share cannot start ("ambiguous"): so each runner removes
    every one but the oldest (one in use cannot be removed, and is left) and
    uses it only once it is alone.  Answers the network's id.
    """
    if name in ("none", "bridge", "default"):
        if name != "none":
            log.warning("CONTAINER_NETWORK=%s: executions share Docker's default bridge, where containers "
                        "reach each other unless the engine runs with --icc=false", name)
        return name
    found = _named(client, name)
    if not found:
        try:
            client.api.create_network(
                name, driver="bridge", options={ICC_OPTION: "false"}, check_duplicate=True,
                labels={NETWORK_LABEL: "true"})
            log.info("created network %s (bridge, inter-container traffic off) for executions", name)
        except docker.errors.APIError as exc:
            if exc.status_code != 409:  # 409: made meanwhile by another runner
                raise
        # another runner's network of the same name may still be being made: let it land
        time.sleep(SETTLE_SECONDS)
    found = settle_network(client, name, settle_tries)
    if not found:
        raise docker.errors.NotFound(f"network {name} vanished as it was made")
    if len(found) > 1:
        log.warning("%d networks are named %s and some are in use; containers on it may fail to start "
                    "until one is left (docker network ls)", len(found), name)
    chosen = found[0]
    options = chosen.get("Options") or {}
    if chosen.get("Driver") != "bridge" or options.get(ICC_OPTION) != "false":
        log.warning("network %s (driver %s) lets containers reach each other: executions of different "
                    "runs are not isolated from one another (make it a bridge with %s=false)",
                    name, chosen.get("Driver"), ICC_OPTION)
    return chosen["Id"]


def settle_network(client, name, tries=SETTLE_TRIES):
    """Remove every network named ``name`` but the oldest (those in use stay); the ones left, oldest first."""
    found = _named(client, name)
    for _ in range(tries):
        if len(found) <= 1:
            break
        for extra in found[1:]:
            try:
                client.api.remove_network(extra["Id"])
                log.info("removed network %s, a duplicate of %s made at the same time", extra["Id"][:12], name)
            except docker.errors.APIError as exc:  # removed by another runner, or in use
                log.debug("could not remove duplicate network %s: %s", extra["Id"], exc)
        time.sleep(SETTLE_PAUSE)
        found = _named(client, name)
    return found


def _named(client, name):
    """Networks named exactly ``name``, oldest first (the engine's filter matches substrings)."""
    networks = [n for n in client.api.networks(names=[name]) if n.get("Name") == name]
    return sorted(networks, key=lambda n: (parse_docker_time(n.get("Created")) or 0.0, n["Id"]))


LOG_DRIVERS = ("json-file", "local")


def log_config(config):
    """The engine's log driver for execution containers, capped at ``CONTAINER_LOG_MAX_FILES`` files
    of ``CONTAINER_LOG_MAX_SIZE`` (docs/deployment.md; docs/guarantees.md says why json-file)."""
    driver = str(config.get("CONTAINER_LOG_DRIVER") or "json-file").strip()
    if driver not in LOG_DRIVERS:  # stop the runner at once, naming it
        raise ValueError(f"CONTAINER_LOG_DRIVER: must be one of {', '.join(LOG_DRIVERS)}, not {driver!r}")
    size = str(config.get("CONTAINER_LOG_MAX_SIZE") or "16m").strip().lower()
    if not re.fullmatch(r"[1-9][0-9]*[kmg]", size):
        raise ValueError(f'CONTAINER_LOG_MAX_SIZE: must be a size such as "16m", not {size!r}')
    files = int(config.get("CONTAINER_LOG_MAX_FILES") or 2)
    if files < 1:
        raise ValueError("CONTAINER_LOG_MAX_FILES: must be at least 1")
    options = {"max-size": size, "max-file": str(files)}
    if driver == "local":
        options["compress"] = "false"
    return {"type": driver, "config": options}
