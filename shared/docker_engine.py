"""Docker helpers for the registry and the runner only: a lazy client, pull errors explained.

A Docker client that connects on first use:

docker-py negotiates the API version when the client is made, so an engine
that is down (restarting, not yet up at boot) would otherwise crash the
service at start.  Here the service starts anyway; each use retries the
connection and fails with the engine's own error until it answers.
"""
import struct
import threading

import docker
from docker.models.containers import _create_container_args


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
                if str(self.base_url).startswith(("unix://", "http+unix://")):
                    # requests looks up proxy settings in the environment on every call
                    # (a tenth of a runner's time per container); a socket has no proxy
                    self._client.api.trust_env = False
            return self._client

    def __getattr__(self, name):  # client.images, client.containers, client.api ...
        return getattr(self.get(), name)

    def close(self):
        if self._client is not None:
            self._client.close()


REASON_TEXT_MAX = 500  # characters of an engine's or a remote registry's words kept in a reason


def bounded(text, limit=REASON_TEXT_MAX):
    """``text`` cut to ``limit`` characters (a remote registry's answer may be of any size)."""
    text = str(text)
    return text if len(text) <= limit else text[:limit] + f"... [{len(text) - limit} more characters]"


def explain_pull_error(reference, text):
    """Turn the engine's words into a reason a person can act on (the words cut to a bound)."""
    text = bounded(text)
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


def create_container(client, image, options):
    """Create a container from ``containers.create``-style options; the model of its id.

    ``client.containers.create`` inspects the new container before it returns
    (docker-py's ``get``); nothing here needs its attributes yet, so that is an
    engine call per container saved.  The options go through docker-py's own
    conversion (host config, ports, ...), as ``containers.create`` does.
    """
    kwargs = dict(options, image=image, command=options.get("command"),
                  version=client.api._version)
    created = client.api.create_container(**_create_container_args(kwargs))
    return client.containers.prepare_model({"Id": created["Id"]})


def demux_logs(body):
    """Split the engine's multiplexed log body (a container without a TTY) into (stdout, stderr).

    Each frame is an 8-byte header (stream: 1 stdout, 2 stderr; 3 bytes of 0;
    big-endian length) and the bytes.  A frame cut short keeps what arrived.
    """
    streams = {1: bytearray(), 2: bytearray()}
    at, size = 0, len(body)
    while size - at >= 8:
        kind, length = struct.unpack_from(">BxxxL", body, at)
        at += 8
        if kind in streams:
            streams[kind] += body[at:at + length]
        at += length
    return bytes(streams[1]), bytes(streams[2])


def read_logs(client, container_id):
    """All of a stopped container's output as (stdout, stderr), in one engine call.

    docker-py's ``logs`` asks for one stream at a time and inspects the
    container before each (to learn whether it has a TTY; ours never do):
    four engine calls instead of one.
    """
    api = client.api
    response = api._get(api._url("/containers/{0}/logs", container_id),
                        params={"stdout": 1, "stderr": 1, "timestamps": 0, "follow": 0, "tail": "all"})
    api._raise_for_status(response)
    return demux_logs(response.content)
