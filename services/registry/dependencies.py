"""The registry's view of the Docker engine: pull an image, tell what it is."""
import logging

import docker
import requests
from nameko.extensions import DependencyProvider

from shared.docker_engine import LazyDockerClient
from shared.metrics import PullMetrics

from shared.validation import parse_reference

log = logging.getLogger(__name__)


class ImportFailed(Exception):
    """A pull failed; the message is for the task's ``error`` field."""


def explain_pull_error(reference, text):
    """Turn the engine's words into a reason a person can act on."""
    lowered = text.lower()
    if any(s in lowered for s in ("unauthorized", "authentication required", "denied", "no basic auth")):
        return f"authentication refused by the registry for {reference}: {text}"
    if any(s in lowered for s in ("manifest unknown", "not found", "does not exist", "name unknown")):
        return f"image not found: {reference} ({text})"
    if any(s in lowered for s in ("connection refused", "no such host", "dial tcp", "i/o timeout",
                                  "timeout", "network is unreachable", "http response to https",
                                  "tls", "eof")):
        return f"registry unreachable for {reference}: {text}"
    return f"pull of {reference} failed: {text}"


class Images:
    """What a worker gets: domain verbs over one Docker client."""

    def __init__(self, client):
        self.client = client

    def pull(self, reference, auth=None):
        """Pull ``reference``; return (digest reference, image id).

        The digest reference (``name@sha256:...``) is what executions run, so a
        tag moved later does not change a registered task.
        """
        name, tag, digest = parse_reference(reference)
        try:
            stream = self.client.api.pull(name, tag=digest or tag, auth_config=auth,
                                          stream=True, decode=True)
            for chunk in stream:
                if "error" in chunk:
                    raise ImportFailed(explain_pull_error(reference, chunk["error"]))
            image = self.client.images.get(f"{name}@{digest}" if digest else f"{name}:{tag}")
        except docker.errors.APIError as exc:
            raise ImportFailed(explain_pull_error(reference, str(exc.explanation or exc))) from exc
        except (docker.errors.DockerException, requests.exceptions.ConnectionError,
                requests.exceptions.Timeout) as exc:
            raise ImportFailed(f"Docker engine unreachable or too slow while pulling {reference}: {exc}") from exc
        return pinned_reference(name, image), image.id


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
        config = self.container.config
        self.base_url = config.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
        self.timeout = int(config.get("PULL_TIMEOUT") or 600)
        self.client = LazyDockerClient(self.base_url, timeout=self.timeout)

    def stop(self):
        self.client.close()

    kill = stop

    def get_dependency(self, worker_ctx):
        return Images(self.client)


class RegistryMetrics(PullMetrics):
    """The registry's metrics: its image pulls (served on its METRICS_PORT)."""

    where = "registry"
