"""The registry's view of the Docker engine: pull an image, tell what it is."""
import logging
import socket

import docker
import docker.auth
import eventlet
import requests
import urllib3
from nameko.extensions import DependencyProvider

from shared.docker_engine import LazyDockerClient, bounded, explain, explain_pull_error
from shared.egress import Refused
from shared.errors import ValidationError
from shared.image_sources import ImageSources
from shared.image_gc import ImageCache
from shared.images import map_reference
from shared.metrics import PullMetrics
from shared.settings import settings_of

from shared.validation import parse_reference

log = logging.getLogger(__name__)

# seconds the name of a registry host may take to resolve at the door; past them it is judged as a name
# that does not resolve (shared/image_sources.py)
RESOLVE_SECONDS = 5


class ImportFailed(Exception):
    """A pull failed; the message is for the task's ``error`` field."""


class Images:
    """What a worker gets: domain verbs over one Docker client."""

    def __init__(self, client, pull_timeout, image_map=(), sources=None, cache=None):
        self.client = client
        self.pull_timeout = pull_timeout
        self.image_map = image_map
        self.sources = sources or ImageSources(image_map=image_map)
        self.cache = cache  # the registry's ImageCache (shared/image_gc.py): its pulls marked, collected

    def check_source(self, reference, field):
        """Refuse (a ValidationError naming ``field``) an image of a registry it may not be pulled from
        (``IMAGE_REGISTRIES``, ``IMAGE_REGISTRY_PRIVATE``: shared/image_sources.py)."""
        try:
            self.sources.check(reference)
        except Refused as exc:
            raise ValidationError(str(exc), field) from None

    def pull(self, reference, auth=None):
        """Pull ``reference`` (as ``IMAGE_MAP`` maps it: shared/images.py); return (digest reference, image id).

        The digest reference (``name@sha256:...``) is what executions run, so a
        tag moved later does not change a registered task.

        The whole pull is bounded by ``PULL_TIMEOUT`` (a deadline over the
        engine's progress stream, which may stall without closing); past it the
        connection is closed, which cancels the engine's pull.  A stream that
        breaks (the engine restarting) or ends without the image fails too:
        every way out is an ``ImportFailed`` naming what happened.
        """
        try:
            self.sources.check(reference)  # again at each pull: IMPORT, a task of before, a setting changed
        except Refused as exc:
            raise ImportFailed(f"not pulled: {exc}") from None
        try:
            reference = map_reference(reference, self.image_map)
            name, tag, digest = parse_reference(reference)
        except (ValueError, ValidationError) as exc:  # mapped to a name too long to be one
            raise ImportFailed(f"IMAGE_MAP maps {reference} to no valid image name: {exc}") from exc
        # a tag this pull makes is Stevedore's to remove with the image; one the operator has is not
        ours = digest is None and self.cache is not None and self.cache.tag_is_ours(f"{name}:{tag}")
        try:
            self._stream_pull(reference, name, digest or tag, auth)
            image = self.client.images.get(f"{name}@{digest}" if digest else f"{name}:{tag}")
        except ImportFailed:
            raise
        except docker.errors.ImageNotFound as exc:
            raise ImportFailed(f"pull of {reference} ended without the image (was the Docker engine "
                               f"restarted during it?): {bounded(explain(exc))}") from exc
        except docker.errors.APIError as exc:
            raise ImportFailed(explain_pull_error(reference, explain(exc))) from exc
        except (docker.errors.DockerException, requests.exceptions.RequestException,
                urllib3.exceptions.HTTPError, OSError) as exc:
            raise ImportFailed(f"Docker engine unreachable, or its connection broken, while pulling "
                               f"{reference}: {bounded(exc)}") from exc
        if self.cache is not None:
            self.cache.pulled(image.id, tag=f"{name}:{tag}" if ours else None)
        return pinned_reference(name, image), image.id

    def collect(self):
        """One sweep of the image collection: [(image, bytes, why)] removed (none while the engine is away)."""
        try:
            return self.cache.sweep() if self.cache is not None else []
        except (docker.errors.DockerException, requests.exceptions.RequestException, OSError) as exc:
            log.info("image collection skipped: the Docker engine did not answer (%s)", explain(exc))
            return []

    def _stream_pull(self, reference, name, tag, auth):
        """POST /images/create and read its progress to the end, within the deadline.

        docker-py's ``pull`` neither bounds the time nor lets its response be
        closed; this is the same request, with its auth header made the same way.
        """
        api = self.client.api
        if auth is None:
            header = docker.auth.get_config_header(api, docker.auth.resolve_repository_name(name)[0])
        else:
            header = docker.auth.encode_header(auth)
        deadline = eventlet.Timeout(self.pull_timeout)
        response = None
        try:
            response = api._post(api._url("/images/create"), params={"fromImage": name, "tag": tag},
                                 headers={"X-Registry-Auth": header} if header else {},
                                 stream=True, timeout=None)
            api._raise_for_status(response)
            # the engine reports some failures (a layer that cannot be fetched) only inside
            # the progress stream, with a 200: read it to the end and look
            for chunk in api._stream_helper(response, decode=True):
                if isinstance(chunk, dict) and "error" in chunk:
                    raise ImportFailed(explain_pull_error(reference, chunk["error"]))
        except eventlet.Timeout as exc:
            if exc is not deadline:
                raise
            raise ImportFailed(f"pull of {reference} did not finish within PULL_TIMEOUT "
                               f"({self.pull_timeout:g}s); it was abandoned") from None
        finally:
            deadline.cancel()
            if response is not None:
                response.close()


def pinned_reference(name, image):
    """The ``name@sha256:...`` of ``image`` as pulled from ``name``'s registry."""
    digests = image.attrs.get("RepoDigests") or []
    for entry in digests:
        if entry.split("@", 1)[0] == name:
            return entry
    wanted = _hub_short(name)
    for entry in digests:
        if _hub_short(entry.split("@", 1)[0]) == wanted:
            return entry
    # an image with no registry digest (built locally): its id pins it just as well
    return image.id


def _hub_short(name):
    """Docker Hub names as Docker shows them: docker.io/library/busybox -> busybox."""
    for prefix in ("docker.io/", "index.docker.io/", "library/"):
        if name.startswith(prefix):
            name = name[len(prefix):]
    return name


class DockerImages(DependencyProvider):
    def setup(self):
        settings = settings_of(self.container)
        self.base_url = settings.docker_host
        self.timeout = settings.pull_timeout
        self.image_map = settings.image_map
        self.sources = ImageSources(settings.image_registries, settings.image_registry_private == "allow",
                                    settings.image_map, getaddrinfo=bounded_getaddrinfo)
        self.client = LazyDockerClient(self.base_url, timeout=self.timeout)
        self.cache = ImageCache(self.client, settings,
                                local_engine=str(self.base_url).startswith(("unix://", "http+unix://")))

    def stop(self):
        self.client.close()

    kill = stop

    def get_dependency(self, worker_ctx):
        return Images(self.client, self.timeout, self.image_map, self.sources, self.cache)


def bounded_getaddrinfo(*args, **kwargs):
    """``socket.getaddrinfo`` given up after RESOLVE_SECONDS, as a name that does not resolve (OSError)."""
    deadline = eventlet.Timeout(RESOLVE_SECONDS)
    try:
        return socket.getaddrinfo(*args, **kwargs)
    except eventlet.Timeout as exc:
        if exc is not deadline:
            raise
        raise OSError(f"no answer within {RESOLVE_SECONDS}s") from None
    finally:
        deadline.cancel()


class RegistryMetrics(PullMetrics):
    """The registry's metrics: its image pulls (served on its METRICS_PORT)."""

    where = "registry"
