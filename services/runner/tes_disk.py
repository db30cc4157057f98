"""What a TES executor may write: its task's volumes and its container's writable layer, bounded (docs/tes.md).

Docker's ``local`` volumes have no size limit, and ``--storage-opt size`` (a
bounded writable layer) works only for overlay2 over xfs with ``pquota``; a tmpfs
volume would be bounded but held in RAM.  So the runner measures instead: every
``TES_DISK_CHECK_INTERVAL`` seconds while an executor runs, the engine's size of
its container's writable layer (``SizeRw``) plus ``du -sxk`` of the task's volumes
run inside the executor's container (as its own user), plus the writable layers of
the task's earlier executors (``before``: they stay on disk until the task's
clean-up, so a task's executors share one bound, not one each).  The volumes measured
include those the executor's image declares (``VOLUME``: anonymous volumes, in no
writable layer), found in the container's mounts.  Past the task's
``resources.disk_gb`` (at most ``TES_DISK_BYTES``; that cap when it asks none) the
executor is stopped and the task ends EXECUTOR_ERROR naming ``disk_gb``, as one past
``ram_gb`` does; it is killed at once (SIGKILL, no grace period: more time would be
more disk written).  A measure that fails (``du`` refused a directory, or took longer
than ``MEASURE_TIMEOUT``) ends it too: what cannot be measured is not let grow.  An
image without ``du`` has only its writable layer measured (said in the runner's log).

The cost is bounded by what the task itself wrote (``du`` walks its volumes, the
engine its layer), once per interval.
"""
import logging

import docker
import eventlet

from services.runner.engine import ENGINE_ERRORS
from shared import statuses as st
from shared.docker_engine import explain

log = logging.getLogger(__name__)

EARLIER = " (with the writable layers of the executors before it)"

GB = 1024 ** 3
MEASURE_TIMEOUT = 60  # seconds one measure may take
NO_DU = (126, 127)    # the engine's codes of an exec that could not start (du not found: "not found")


def limit_of(task, cap):
    """(bytes, how it is named in a reason) an executor of ``task`` may write, within the operator's ``cap``."""
    asked = (task.get("resources") or {}).get("disk_gb")
    if asked and asked * GB <= cap:
        return int(asked * GB), f"resources.disk_gb ({asked:g} GB)"
    if asked:
        return cap, f"resources.disk_gb ({asked:g} GB), cut to the operator's TES_DISK_BYTES ({cap} bytes)"
    return cap, f"the operator's TES_DISK_BYTES ({cap} bytes), as resources.disk_gb was not given"


class DiskWatch:
    """Watches one executor's container (``watch``) until ``stop``; ``over`` is then the verdict, if any."""

    def __init__(self, client, dirs, limit, named, interval, index, before=0):
        self.client, self.dirs, self.limit, self.named = client, list(dirs), limit, named
        self.interval, self.index = interval, index
        self.before = before  # bytes the writable layers of the task's earlier executors hold (still on disk)
        self.volumes_found = False  # ``dirs`` has the volumes the executor's image declares (found at its start)
        self.over = None  # (status, reason) once past the limit, or not measurable
        self.thread = None
        self.du = True

    def watch(self, container):
        self.thread = eventlet.spawn(self._loop, container)

    def stop(self):
        if self.thread is not None:
            self.thread.kill()
            self.thread = None

    def _loop(self, container):
        while self.over is None:
            eventlet.sleep(self.interval)
            try:
                with eventlet.Timeout(MEASURE_TIMEOUT):
                    used = self.measure(container)
            except eventlet.Timeout:
                self.over = (st.ERROR, (f"executors[{self.index}]: its disk use could not be measured within "
                                        f"{MEASURE_TIMEOUT}s (bounded by {self.named}); it was stopped"))
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
            if isinstance(used, str):
                self.over = (st.ERROR, f"executors[{self.index}]: {used} (bounded by {self.named}); it was stopped")
            elif used is not None and used > self.limit:
                self.over = (st.ERROR, (f"executors[{self.index}]: it wrote {used} bytes to its volumes and "
                                        f"writable layer{EARLIER if self.before else ''}, past {self.named}; "
                                        "it was stopped"))
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
        """Bytes the executor wrote (its writable layer, the task's volumes); a str saying why it cannot tell;
        None when it ended meanwhile."""
        listed = self.client.api.containers(all=True, size=True, filters={"id": container.id})
        if not listed:
            return None
        used = self.before + (listed[0].get("SizeRw") or 0)
        if not self.volumes_found:  # its image's own VOLUMEs too: anonymous volumes, in no writable layer
            mounts = self.client.api.inspect_container(container.id).get("Mounts") or []
            self.dirs = sorted({*self.dirs, *(m["Destination"] for m in mounts
                                              if m.get("Type") == "volume" and m.get("Destination"))})
            self.volumes_found = True
        if not self.dirs or not self.du:
            return used
        run = self.client.api.exec_create(container.id, ["du", "-sxk", *self.dirs])
        output = self.client.api.exec_start(run["Id"], demux=True)
        code = self.client.api.exec_inspect(run["Id"]).get("ExitCode")
        stdout, stderr = output if isinstance(output, tuple) else (output, b"")
        said = b"".join(part or b"" for part in (stdout, stderr))
        if code in NO_DU and b"not found" not in said:  # the engine's own failure (the container just started?)
            log.info("could not run du in %s: %s", container.id[:12], said[:200].decode("utf-8", "replace"))
            return None
        if code in NO_DU:
            log.warning("executor image of container %s has no du: only its writable layer is measured",
                        container.id[:12])
            self.du = False
            return used
        if code is None:  # still running as the container ended
            return None
        if code != 0:
            said = (stderr or b"").decode("utf-8", "replace").strip().splitlines()
            return f"the disk use of its volumes could not be measured ({said[0][:200] if said else f'du: {code}'})"
        for line in (stdout or b"").decode("utf-8", "replace").splitlines():
            size = line.split("\t", 1)[0].strip()
            if size.isdigit():
                used += int(size) * 1024
        return used
