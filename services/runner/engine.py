"""The runner's Docker engine: its images, network, size, containers, and whether it answers.

``Executor`` (services/runner/dependencies.py) runs executions on it.
"""
import http.client
import logging
import time
from contextlib import nullcontext

import docker
import requests

from services.runner import confinement
from shared.docker_engine import explain, explain_pull_error
from shared.timeutil import now, parse_docker_time
from shared.validation import parse_reference

log = logging.getLogger(__name__)

LABEL = "stevedore"  # the prefix of the labels of the containers Stevedore starts
ENGINE_FRESH = 1.0  # seconds an engine that answered is taken to be there without a ping
ENGINE_PAUSE = 3.0  # seconds a runner takes no work after its engine failed to start an execution

ENGINE_ERRORS = (docker.errors.DockerException, requests.exceptions.RequestException, OSError,
                 http.client.HTTPException, ValueError)


def measure_image_present(client, image):
    """Whether ``image`` (``DISK_MEASURE_IMAGE``: services/runner/disk.py) is on the engine (None: it cannot
    say); a warning in the log when it is not."""
    try:
        client.images.get(image)
        return True
    except docker.errors.ImageNotFound:
        log.warning("DISK_MEASURE_IMAGE %r is not on the Docker engine: the volumes of executions are measured "
                    "with du inside their own containers, which a hostile job can remove or fake "
                    "(docs/deployment.md)", image)
        return False
    except ENGINE_ERRORS as exc:
        log.info("could not look for DISK_MEASURE_IMAGE %r: %s", image, explain(exc))
        return None


class EngineUnavailable(Exception):
    """The Docker engine could not be reached, and no container was started."""


class PullFailed(Exception):
    """The engine answered but could not pull the image; the message says why."""


class EngineState:
    """What a runner process knows of its engine, shared by all its workers (its ``DockerExecutor`` keeps it).

    Whether the engine answers: ``answered_at``, when it last did what it was
    asked (an engine that just removed a container needs no ping before the
    next claim); ``away``, known not to answer (no work is claimed until it
    does); ``paused_until``, no work before then (an engine that is stopping
    still answers pings).  And what was learnt from it, asked once: the images
    found on it (not asked about again before each start; a create that finds
    one gone pulls it then), the network mode executions use, this runner's
    ceilings (None until the engine told its size).
    """

    def __init__(self, images=(), network=None, ceilings=None, clock=time.monotonic):
        self.images = set(images)
        self.network = network
        self.ceilings = ceilings
        self.engine = None  # "Docker 27.5.1, Debian GNU/Linux 12": what the runner list shows, once asked
        self.answered_at = None
        self.away = False
        self.paused_until = 0.0
        self.clock = clock

    def answered(self, ok=True):
        """The engine did (or, ``ok`` false, failed to do) what it was asked."""
        self.answered_at = self.clock() if ok else None

    def fresh(self):
        """Whether the engine answered within the last ``ENGINE_FRESH`` seconds."""
        return self.answered_at is not None and self.clock() - self.answered_at < ENGINE_FRESH

    def paused(self):
        return self.clock() < self.paused_until

    def failed_start(self):
        """It could not start an execution: no work for ``ENGINE_PAUSE`` seconds, then a ping first."""
        self.paused_until = self.clock() + ENGINE_PAUSE
        self.answered_at = None
        self.away = True


class Engine:
    """This runner's Docker engine: one client, the operator's container policy, and what the engine
    was found to be (``EngineState``)."""

    def __init__(self, client, policy, state=None, remover=None, cache=None):
        self.client = client
        self.policy = policy
        self.state = state if state is not None else EngineState()
        # the runner's background remover (services/runner/remover.py); None: removed at once, in line
        self.remover = remover
        self.cache = cache  # the runner's ImageCache (shared/image_gc.py): marks its pulls, notes uses
        self.finished = []  # containers of ended executions, removed once their end is reported (dispose)

    def ensure_image(self, image, credentials=None, pull_timer=nullcontext):
        """Make sure ``image`` (name@sha256:... or an image id) is on this engine.

        ``credentials()`` is asked only when a pull is needed; it answers the
        private registry's ``{"username", "password"}`` or None.  A pull is
        made inside ``pull_timer()`` (a context manager: the runner's metrics).
        """
        try:
            self.client.images.get(image)
            return
        except docker.errors.ImageNotFound:
            pass
        name, tag, digest = parse_reference(image)
        auth = credentials() if credentials else None
        with pull_timer():
            # the engine reports some failures (a layer that cannot be fetched) only
            # inside the progress stream, with a 200: read it to the end and look
            try:
                for chunk in self.client.api.pull(name, tag=digest or tag, auth_config=auth,
                                                  stream=True, decode=True):
                    if "error" in chunk:
                        raise PullFailed(explain_pull_error(image, chunk["error"]))
            except docker.errors.APIError as exc:
                raise PullFailed(explain_pull_error(image, explain(exc))) from exc
            try:
                self.client.images.get(image)
            except docker.errors.ImageNotFound as exc:
                raise PullFailed(f"pull of {image} ended without the image: {explain(exc)}") from exc
        if self.cache is not None:  # pulled by Stevedore: the image collection's to remove once unused
            self.cache.pulled(image)

    def collect_images(self):
        """One sweep of the image collection (shared/image_gc.py); the references removed are no longer taken
        to be here.  Returns [(image, bytes, why)]."""
        removed = self.cache.sweep() if self.cache is not None else []
        for image, _, _ in removed:
            self.state.images.difference_update([*image.names, image.id])
        return removed

    def note_use(self, image):
        """An execution starts from ``image``: it is the most recently used (shared/image_gc.py)."""
        if self.cache is not None:
            self.cache.used(image)

    @staticmethod
    def _started_at(container):
        """The engine's StartedAt of a running container (now, if the engine cannot say)."""
        try:
            container.reload()
            return parse_docker_time(container.attrs["State"].get("StartedAt")) or now()
        except ENGINE_ERRORS as exc:
            log.warning("could not read the start of container %s: %s", container.id, explain(exc))
            return now()

    @staticmethod
    def _running(container):
        """Whether the engine says the container runs (False if it cannot say)."""
        try:
            container.reload()
            return bool(container.attrs["State"].get("Running"))
        except (docker.errors.DockerException, requests.exceptions.RequestException):
            return False

    def _stop(self, container):
        try:
            container.stop(timeout=self.policy["grace"])
        except ENGINE_ERRORS as exc:
            log.warning("could not stop container %s: %s", container.id, explain(exc))

    def _remove(self, container):
        self.remove_quietly(container.id)

    def remove_quietly(self, container_id):
        """Remove a container with its anonymous volumes; a failure is logged (reconcile removes it later)."""
        try:
            self.client.api.remove_container(container_id, force=True, v=True)
            self.state.answered()
        except docker.errors.NotFound:
            pass
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            log.warning("could not remove container %s: %s", container_id, explain(exc))

    def _set_aside(self, container):
        """An ended execution's container: removed after its end is reported (``dispose``), or now
        without a remover."""
        if self.remover is None:
            self._remove(container)
        else:
            self.finished.append(container)

    def dispose(self):
        """Its end reported: the containers set aside go to the background remover, or, its backlog full,
        are removed here.  Returns the seconds spent here (the slot's share of the removal)."""
        started = time.monotonic()
        finished, self.finished = self.finished, []
        for container in finished:
            if self.remover is None or not self.remover.offer(container.id):
                self._remove(container)
        return time.monotonic() - started

    def removal_pending(self, container_id):
        """Whether the container is set aside or waits for the background remover (not an orphan)."""
        return (any(container.id == container_id for container in self.finished)
                or (self.remover is not None and self.remover.has(container_id)))

    def ensure_network(self):
        """The network mode of new containers: the dedicated bridge, made if absent (once per process)."""
        if self.state.network is None:
            self.state.network = confinement.ensure_network(self.client, self.policy["network"])
        return self.state.network

    def ceilings(self):
        """(max memory bytes, max cpus) of the executions this runner claims; None: no limit.

        Its ``RUNNER_MAX_*`` settings, else its engine's memory and CPUs, asked once
        (until the engine answers, only the settings: a claim then is refused at
        create if it cannot fit, and ends ERROR saying why).
        """
        if self.state.ceilings is None:
            try:
                info = self.client.info()
            except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
                log.debug("could not ask the engine its size: %s", explain(exc))
                return self.policy.get("max_memory"), self.policy.get("max_cpus")
            confinement.warn_if_unenforced(info, self.policy["network"])
            self.state.engine = f"Docker {info.get('ServerVersion', '?')}, {info.get('OperatingSystem', '?')}"[:200]
            self.state.ceilings = confinement.engine_ceilings(info, self.policy)
            if self.policy.get("disk_measure_image"):  # said once, at the runner's first claim
                measure_image_present(self.client, self.policy["disk_measure_image"])
            log.info("this runner claims executions of at most %s bytes of memory and %s CPUs",
                     *self.state.ceilings)
        return self.state.ceilings

    def engine_ok(self):
        """Whether the engine answers now (a runner takes no work while it does not).

        An engine that answered within the last ``ENGINE_FRESH`` seconds is not
        pinged again: a slot going from one execution to the next skips a call.
        If it went away meanwhile, the create fails and the claim is handed back
        (services.runner.service), as for an engine that fails between ping and create.
        """
        if self.state.fresh():
            return True
        try:
            ok = bool(self.client.ping())
        except (docker.errors.DockerException, requests.exceptions.RequestException):
            ok = False
        self.state.answered(ok)
        return ok

    def managed_containers(self):
        """Every container Stevedore started on this engine (any runner's), as label dicts."""
        found = []
        for container in self.client.containers.list(
                all=True, sparse=True, filters={"label": f"{LABEL}.managed=true"}):
            labels = container.attrs.get("Labels") or {}
            try:
                attempt = int(labels.get(f"{LABEL}.attempt", ""))
            except ValueError:
                continue
            found.append({"id": container.id, "detail_id": labels.get(f"{LABEL}.detail_id"),
                          "result_id": labels.get(f"{LABEL}.result_id"), "attempt": attempt,
                          "runner": labels.get(f"{LABEL}.runner"),
                          "installation": labels.get(f"{LABEL}.installation"),
                          "state": container.attrs.get("State")})
        return found

    def remove(self, container_id):
        try:
            self.client.api.remove_container(container_id, force=True, v=True)
        except docker.errors.NotFound:
            pass
