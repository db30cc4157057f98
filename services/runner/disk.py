"""What an execution may write to the host's disk: its container's writable layer and its volumes, bounded
(docs/guarantees.md; a TES task's: docs/tes.md#disk).

Docker's ``local`` volumes have no size limit, and ``--storage-opt size`` (a
bounded writable layer) works only for overlay2 over xfs with ``pquota``; a tmpfs
would be bounded but held in RAM.  So the runner measures instead, as Kubernetes
does for a pod's ``ephemeral-storage``: every ``DISK_CHECK_INTERVAL`` seconds while
a container runs, the engine's size of its writable layer (``SizeRw``) plus the
size of every volume mounted in it (the anonymous volumes its image declares with
``VOLUME``, in no writable layer; a TES task's own volumes), plus ``before``: bytes
already held for it elsewhere (a TES task's earlier executors' writable layers,
which stay on disk until the task's clean-up).  Past its bound the container is
killed at once (SIGKILL, no grace period: more time would be more disk written)
and ``over`` says why; a measure that fails (``du`` refused a directory, or took
longer than ``MEASURE_TIMEOUT``) kills it too: what cannot be measured is not let
grow.

The volumes are measured by ``du -sxk`` in a container of the runner's own
(``DISK_MEASURE_IMAGE``, never pulled: an image of the engine), which mounts them
read-only, with no network, no capability but ``DAC_READ_SEARCH`` (to read every
directory whatever its mode), and is removed after: nothing the measured
container does reaches the ``du`` that measures it.  An engine without that image
measures them with ``du`` inside the measured container (as its own user), which a
hostile job can remove or fake: said in the runner's log at its start and at each
such measure's first time.  A container without volumes needs no ``du``: the
engine's ``SizeRw`` is all.

The cost is bounded by what the container itself wrote (``du`` walks its volumes,
the engine its layer), once per interval.
"""
import logging
import time
import uuid

import docker
import eventlet
import greenlet
from docker.types import Mount

from services.runner.engine import ENGINE_ERRORS, measure_image_present
from shared import statuses as st
from shared.docker_engine import explain
from stevedore_jobs.contract.checks import Invalid, memory_bytes, size_text

log = logging.getLogger(__name__)

GB = 1024 ** 3
MEASURE_TIMEOUT = 60  # seconds one measure may take
NO_DU = (126, 127)    # the engine's codes of an exec that could not start (du not found: "not found")
MEASURE_LABEL = "stevedore.disk-measure"  # the runner's measuring containers (removed after each measure)
MEASURE_MEMORY = 64 * 1024 ** 2
MEASURE_OUTPUT = 65536  # bytes of a measuring container's output read
OWN_LABELS = ("stevedore.result_id", "stevedore.detail_id", "stevedore.runner")  # copied onto its measurers


def run_limit(work, default):
    """(bytes, how it is named in a reason) an ordinary execution may write: its RUN's ``disk``, else the
    runner's ``CONTAINER_DEFAULT_DISK`` (``default``, bytes)."""
    try:
        asked = memory_bytes(work.get("disk"), "disk")
    except Invalid:  # checked at the door: a value that got past it is not trusted either
        asked = None
    if asked:
        return asked, f"its disk bound of {size_text(asked)} (the RUN's disk)"
    return default, (f"its disk bound of {size_text(default)} (the runner's CONTAINER_DEFAULT_DISK, as the "
                     "RUN gave no disk)")


def tes_limit(task, cap):
    """(bytes, how it is named in a reason) a TES task's executors may write, within the operator's ``cap``."""
    asked = (task.get("resources") or {}).get("disk_gb")
    if asked and asked * GB <= cap:
        return int(asked * GB), f"resources.disk_gb ({asked:g} GB)"
    if asked:
        return cap, f"resources.disk_gb ({asked:g} GB), cut to the operator's TES_DISK_BYTES ({cap} bytes)"
    return cap, f"the operator's TES_DISK_BYTES ({cap} bytes), as resources.disk_gb was not given"


def verdict(used, limit, named, subject, before=0):
    """(ERROR, reason) for a measure ``used`` (bytes; a str: why it could not be measured) past ``limit``,
    else None.  ``subject`` begins the reason (``disk``, ``executors[0]``)."""
    if isinstance(used, str):
        return st.ERROR, f"{subject}: {used} (bounded by {named}); it was killed"
    if used is not None and used > limit:
        earlier = " (with the writable layers of the executors before it)" if before else ""
        return st.ERROR, (f"{subject}: it wrote {used} bytes to its volumes and writable layer{earlier}, past "
                          f"{named}; it was killed")
    return None


def volumes_of(mounts):
    """(name, destination) of each volume among a container's ``Mounts`` (its image's VOLUMEs included)."""
    return sorted({(m["Name"], m["Destination"]) for m in mounts or []
                   if m.get("Type") == "volume" and m.get("Name") and m.get("Destination")})


def parse_du(output):
    """The bytes ``du -sk`` printed (one ``<KiB>\\t<path>`` line per directory)."""
    total = 0
    for line in (output or b"").decode("utf-8", "replace").splitlines():
        size = line.split("\t", 1)[0].strip()
        if size.isdigit():
            total += int(size) * 1024
    return total


class DiskWatch:
    """Watches one container (``watch``) until ``stop``; ``over`` is then the verdict, if any."""

    def __init__(self, client, limit, named, interval, subject="disk", measure_image=None, before=0):
        self.client, self.limit, self.named, self.interval = client, limit, named, interval
        self.subject, self.measure_image = subject, measure_image
        self.before = before  # bytes held for it elsewhere (a TES task's earlier executors' layers)
        self.volumes = None  # (name, destination) of its volumes, read at its first measure
        self.labels = {}  # the measured container's result and execution, on its measuring containers too
        self.over = None  # (status, reason) once past the limit, or not measurable
        self.thread = None
        self.du = True  # False: no du inside the measured container (the fallback found none)
        self.measurer = None  # the id of the measuring container of a measure under way

    def watch(self, container):
        self.thread = eventlet.spawn(self._loop, container)

    def stop(self):
        """Stop watching; returns once no measuring container of its is left (its volumes free for the
        measured container's removal)."""
        thread, self.thread = self.thread, None
        if thread is not None:
            thread.kill()
            try:
                thread.wait()  # its measure's clean-up, if it was in one, ends first
            except (greenlet.GreenletExit, Exception):  # noqa: BLE001 -- what ended it is no matter here
                pass
        if self.measurer is not None:  # killed as it was naming one
            self._remove_measurer()

    def stop_if_over(self, should_stop):
        """``should_stop`` asked after this watch's verdict: what an Executor's follower asks."""
        return lambda: self.over or should_stop()

    def judged(self, report):
        """An Executor's ``report`` of the container's end, with this watch's reason if it killed it (the
        follower may see it exit, killed, before it asks ``should_stop``)."""
        if self.over and report.get("status") == st.ERROR:
            report["reason"] = self.over[1]
        return report

    def _loop(self, container):
        while self.over is None:
            eventlet.sleep(self.interval)
            try:
                with eventlet.Timeout(MEASURE_TIMEOUT):
                    used = self.measure(container)
            except eventlet.Timeout:
                self.over = (st.ERROR, (f"{self.subject}: its disk use could not be measured within "
                                        f"{MEASURE_TIMEOUT}s (bounded by {self.named}); it was killed"))
                break
            except docker.errors.APIError as exc:  # NotFound too
                if self._ended(container):
                    return  # it ended meanwhile (one not started yet is measured next time)
                log.warning("could not measure the disk use of %s: %s", container.id[:12], explain(exc))
                continue
            except ENGINE_ERRORS as exc:  # the engine away: following the container tells
                log.warning("could not measure the disk use of %s: %s", container.id[:12], explain(exc))
                continue
            except Exception:  # an answer not foreseen: said, and measured again
                log.exception("could not measure the disk use of %s", container.id[:12])
                continue
            finally:
                if self.measurer is not None:
                    self._remove_measurer()
            self.over = verdict(used, self.limit, self.named, self.subject, self.before)
        # killed at once: a grace period would be more disk written
        log.warning("killing container %s: %s", container.id[:12], self.over[1])
        try:
            self.client.api.kill(container.id)
        except ENGINE_ERRORS as exc:  # it ended meanwhile, or the follower's stop does it
            log.info("could not kill %s past its disk bound: %s", container.id[:12], explain(exc))

    def _ended(self, container):
        try:
            return self.client.api.inspect_container(container.id)["State"].get("Status") in ("exited", "dead")
        except docker.errors.NotFound:
            return True
        except ENGINE_ERRORS:
            return False

    def layer(self, container):
        """The engine's size of ``container``'s writable layer (``SizeRw``; 0 if it has none any more)."""
        listed = self.client.api.containers(all=True, size=True, filters={"id": container.id})
        return (listed[0].get("SizeRw") or 0) if listed else 0

    def measure(self, container):
        """Bytes the container wrote (its writable layer, its volumes) and ``before``; a str saying why it
        cannot tell; None when it ended meanwhile."""
        listed = self.client.api.containers(all=True, size=True, filters={"id": container.id})
        if not listed:
            return None
        used = self.before + (listed[0].get("SizeRw") or 0)
        if self.volumes is None:
            found = self.client.api.inspect_container(container.id)
            labels = (found.get("Config") or {}).get("Labels") or {}
            self.labels = {key: labels[key] for key in OWN_LABELS if key in labels}
            self.volumes = volumes_of(found.get("Mounts"))
        if not self.volumes:
            return used
        volumes = self._measured_apart() if self.measure_image else None
        if volumes is None and self.measure_image is None and self.du:  # the fallback: du in the container
            volumes = self._measured_inside(container)
            if volumes is None and self.du:  # it could not run du now: measured next time
                return None
        if isinstance(volumes, str):
            return volumes
        return used + (volumes or 0)

    def _measured_apart(self):
        """Bytes of the volumes, by ``du`` in a runner-owned container of ``measure_image`` that mounts them
        read-only; a str saying why it cannot tell; None without that image (the fallback measures)."""
        mounts = [Mount(target=f"/v/{i}", source=name, type="volume", read_only=True, no_copy=True)
                  for i, (name, _) in enumerate(self.volumes)]
        # named before it is made: a watch stopped while the engine makes it still removes it (``stop``)
        self.measurer = f"stevedore-du-{uuid.uuid4().hex[:16]}"
        try:
            self.client.api.create_container(
                self.measure_image, entrypoint=["du"], command=["-sxk", *(m["Target"] for m in mounts)],
                name=self.measurer, user="0:0", network_disabled=True, labels={**self.labels, MEASURE_LABEL: "true"},
                host_config=self.client.api.create_host_config(
                    mounts=mounts, network_mode="none", cap_drop=["ALL"], cap_add=["DAC_READ_SEARCH"],
                    security_opt=["no-new-privileges"], read_only=True, mem_limit=MEASURE_MEMORY,
                    pids_limit=16, log_config={"type": "json-file", "config": {"max-size": "1m"}}))
        except docker.errors.ImageNotFound:
            self.measurer = None
            if self.measure_image:
                measure_image_present(self.client, self.measure_image)  # says so in the log
            self.measure_image = None
            return None
        self.client.api.start(self.measurer)
        code = self.client.api.wait(self.measurer).get("StatusCode")
        stdout = self.client.api.logs(self.measurer, stdout=True, stderr=False)[-MEASURE_OUTPUT:]
        if code != 0:
            said = self.client.api.logs(self.measurer, stdout=False, stderr=True, tail=3)
            said = said.decode("utf-8", "replace").strip().splitlines()
            return f"the disk use of its volumes could not be measured ({said[0][:200] if said else f'du: {code}'})"
        return parse_du(stdout)

    def _remove_measurer(self):
        measurer, self.measurer = self.measurer, None
        try:
            self.client.api.remove_container(measurer, force=True)
        except docker.errors.NotFound:
            pass
        except ENGINE_ERRORS as exc:  # labelled: the reconcile removes it later
            log.warning("could not remove disk-measuring container %s: %s", measurer[:12], explain(exc))

    def _measured_inside(self, container):
        """Bytes of the volumes by ``du`` inside the measured container itself (no DISK_MEASURE_IMAGE: a
        hostile job can fake it); a str saying why it cannot tell; None when it cannot run ``du`` now."""
        run = self.client.api.exec_create(container.id, ["du", "-sxk", *(d for _, d in self.volumes)])
        output = self.client.api.exec_start(run["Id"], demux=True)
        code = self.client.api.exec_inspect(run["Id"]).get("ExitCode")
        stdout, stderr = output if isinstance(output, tuple) else (output, b"")
        said = b"".join(part or b"" for part in (stdout, stderr))
        if code in NO_DU and b"not found" not in said:  # the engine's own failure (the container just started?)
            log.info("could not run du in %s: %s", container.id[:12], said[:200].decode("utf-8", "replace"))
            return None
        if code in NO_DU:
            log.warning("the image of container %s has no du, and DISK_MEASURE_IMAGE is not on the engine: "
                        "only its writable layer is measured", container.id[:12])
            self.du = False
            return None
        if code is None:  # still running as the container ended
            return None
        if code != 0:
            said = (stderr or b"").decode("utf-8", "replace").strip().splitlines()
            return f"the disk use of its volumes could not be measured ({said[0][:200] if said else f'du: {code}'})"
        return parse_du(stdout)


def sweep_measurers(client, clock=time.time):
    """Remove the measuring containers a runner left behind (it stopped mid-measure): those created more
    than ``MEASURE_TIMEOUT`` ago, any runner's on this engine (a measure is over by then, removed by its
    runner; one younger may be a measure under way).  They would keep the volumes they mount from being
    removed with their execution.  Returns how many."""
    removed = 0
    try:
        found = client.api.containers(all=True, filters={"label": f"{MEASURE_LABEL}=true"})
    except ENGINE_ERRORS as exc:  # the engine away: the next reconcile sweeps
        log.warning("could not look for disk-measuring leftovers: %s", explain(exc))
        return 0
    for container in found:
        created = container.get("Created")
        if not isinstance(created, (int, float)) or clock() - created <= MEASURE_TIMEOUT + 5:
            continue
        try:
            client.api.remove_container(container["Id"], force=True)
            removed += 1
        except docker.errors.NotFound:
            pass
        except ENGINE_ERRORS as exc:
            log.info("disk-measuring leftover %s not removed yet: %s", container["Id"][:12], explain(exc))
    return removed
