"""Docker helpers for the registry and the runner only: a lazy client, pull errors explained.

A Docker client that connects on first use:

docker-py negotiates the API version when the client is made, so an engine
that is down (restarting, not yet up at boot) would otherwise crash the
service at start.  Here the service starts anyway; each use retries the
connection and fails with the engine's own error until it answers.
"""
import threading

import docker


class LazyDockerClient:
    def __init__(self, base_url, timeout):
        self.base_url, self.timeout = base_url, timeout
        self._client = None
        self._lock = threading.Lock()

    def get(self):
        with self._lock:
            if self._client is None:
                self._client = docker.DockerClient(base_url=self.base_url, version="auto",
                                                   timeout=self.timeout)
            return self._client

    def __getattr__(self, name):  # client.images, client.containers, client.api ...
        return getattr(self.get(), name)

    def close(self):
        if self._client is not None:
            self._client.close()


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
