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
``CONTAINER_DEFAULT_MEMORY``), a disk bound (the RUN's ``disk``, else
``CONTAINER_DEFAULT_DISK``: measured, services/runner/disk.py), never
privileged, no device, no volume but those its image declares.

Network (``CONTAINER_NETWORK``): ``host`` and ``container:...`` are refused
(the runner does not start); the default, ``stevedore``, is a bridge the
runner makes if absent with inter-container traffic off, so executions of
different runs do not reach each other.  Docker enforces that with iptables:
on an engine started with ``--iptables=false`` it is not enforced, and the
runner can tell only when the engine says bridged traffic bypasses iptables
(``BridgeNfIptables`` false); it logs a warning then.
"""
import logging
import time

import docker

from shared.timeutil import parse_docker_time

log = logging.getLogger(__name__)

# Docker's default set less these: raw sockets (spoofing, sniffing), device nodes,
# file capabilities, audit records; batch jobs need none of them
DROPPED_CAPABILITIES = ["NET_RAW", "MKNOD", "SETFCAP", "AUDIT_WRITE"]
RESTRICTED_USER = "65534:65534"  # nobody:nogroup on Debian; needs no /etc/passwd in the image
ICC_OPTION = "com.docker.network.bridge.enable_icc"
NETWORK_LABEL = "stevedore.network"
SETTLE_SECONDS = 1.0  # a runner that made the network waits this long for others making it too
SETTLE_TRIES = 50  # looks for duplicates of a network being made by several runners at once
SETTLE_PAUSE = 0.1
DEFAULT_DISK = 10 * 1024 ** 3  # CONTAINER_DEFAULT_DISK's default (a policy without it: a test's)


def read_policy(settings):
    """The runner's container policy from its parsed settings (shared/settings.py checked them)."""
    return {
        "profile": settings.container_profile,
        "default_memory": settings.container_default_memory,
        "default_disk": settings.container_default_disk,
        "disk_check_interval": settings.disk_check_interval,
        "disk_measure_image": settings.disk_measure_image,
        "pids_limit": settings.container_pids_limit,
        "tmp_size": settings.container_tmp_size,
        "network": settings.container_network,
        # this runner's own ceilings; None: its engine's (docker info), see engine_ceilings
        "max_memory": settings.runner_max_memory,
        "max_cpus": settings.runner_max_cpus,
    }


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


def log_config(settings):
    """The engine's log driver for execution containers, capped at ``CONTAINER_LOG_MAX_FILES`` files
    of ``CONTAINER_LOG_MAX_SIZE`` (docs/deployment.md; docs/guarantees.md says why json-file)."""
    driver = settings.container_log_driver
    options = {"max-size": settings.container_log_max_size, "max-file": str(settings.container_log_max_files)}
    if driver == "local":
        options["compress"] = "false"
    return {"type": driver, "config": options}


def with_gpus(options, gpu_ids):
    """``options`` with the container given exactly ``gpu_ids`` (its own, from the claim): an NVIDIA device
    request, as ``docker run --gpus '"device=0,1"'`` makes.  On an engine without the NVIDIA runtime the
    start fails, and the execution ends ERROR with the engine's words."""
    if gpu_ids:
        options["device_requests"] = [docker.types.DeviceRequest(
            driver="nvidia", device_ids=[str(gpu) for gpu in gpu_ids], capabilities=[["gpu"]])]
        options["labels"]["stevedore.gpus"] = ",".join(str(gpu) for gpu in gpu_ids)
    return options
