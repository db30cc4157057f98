"""Docker helpers for the registry and the runner only: a lazy client, pull errors explained.

A Docker client that connects on first use:

docker-py negotiates the API version when the client is made, so an engine
that is down (restarting, not yet up at boot) would otherwise crash the
service at start.  Here the service starts anyway; each use retries the
connection and fails with the engine's own error until it answers.
"""
import re
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


def explain(exc):
    """A Docker client error in words: the engine's explanation when it gave one."""
    if isinstance(exc, docker.errors.APIError):
        return str(exc.explanation or exc)
    return str(exc)


REASON_TEXT_MAX = 500  # characters of an engine's or a remote registry's words kept in a reason


def bounded(text, limit=REASON_TEXT_MAX):
    """``text`` cut to ``limit`` characters (a remote registry's answer may be of any size)."""
    text = str(text)
    return text if len(text) <= limit else text[:limit] + f"... [{len(text) - limit} more characters]"


# what a remote server answered, as the engine quotes it: never shown (registering an image at an
# internal address must not turn the task's error into a window on that server's pages)
_REMOTE_BODY = re.compile(r"(response body)\b.*", re.I | re.S)
_LONG_QUOTE = re.compile(r'"[^"]{100,}"')
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def without_remote_text(text):
    """The engine's error with any remote server's answer left out, control characters dropped."""
    text = _REMOTE_BODY.sub(r"\1 not shown", str(text))
    text = _LONG_QUOTE.sub('"[not shown]"', text)
    return _CONTROL.sub("", text)


def explain_pull_error(reference, text):
    """Turn the engine's words into a reason a person can act on (the words cut to a bound,
    without what a remote server answered)."""
    text = bounded(without_remote_text(text))
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


class HeadTail:
    """One output stream, kept within ``limit`` bytes: its first ``limit // 2`` bytes, its last
    ``limit - limit // 2``, and a count of every byte fed.

    Memory stays under about twice ``limit`` whatever the volume (the tail is
    trimmed once it holds twice its share, so that a trim is rare).
    """

    def __init__(self, limit):
        self.limit = max(0, int(limit))
        self.head_cap = self.limit // 2
        self.tail_cap = self.limit - self.head_cap
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0
        self.gap = False  # bytes are known missing between head and tail, even if total <= limit

    def feed(self, data):
        size = len(data)
        if not size:
            return
        self.total += size
        view = memoryview(data)
        room = self.head_cap - len(self.head)
        if room > 0:
            self.head += view[:room]
            view = view[room:]
        if not len(view) or not self.tail_cap:
            return
        if len(view) >= self.tail_cap:
            self.tail[:] = view[len(view) - self.tail_cap:]
        else:
            self.tail += view
            if len(self.tail) > 2 * self.tail_cap:
                del self.tail[:len(self.tail) - self.tail_cap]

    def kept(self, limit=None):
        """(head, kept bytes) within ``limit`` (at most this keeper's own limit).

        When the stream fits in ``limit`` it is kept whole and head is its length;
        otherwise kept is the first ``limit // 2`` bytes (head) then the last
        ``limit - limit // 2``, and ``total - len(kept)`` bytes were left out between.
        """
        limit = self.limit if limit is None else min(self.limit, max(0, int(limit)))
        if self.total <= limit and not self.gap:  # nothing trimmed: head and tail are the whole stream
            data = bytes(self.head + self.tail)
            return len(data), data
        head_size = min(limit // 2, len(self.head))  # short only in a merge (runner: merge_kept)
        need = limit - limit // 2
        if len(self.tail) >= need:
            end = self.tail[len(self.tail) - need:] if need else b""
        else:  # nothing left out yet (a smaller live limit): the end reaches into the head
            end = (self.head[head_size:] + self.tail)[-need:] if need else b""
        return head_size, bytes(self.head[:head_size]) + bytes(end)


class Dechunker:
    """Undoes HTTP/1.1 chunked transfer encoding, fed the body in pieces of any size.

    ``feed`` returns the body's bytes as a list of memoryviews of the data fed;
    ``done`` tells that the last (empty) chunk arrived: the sender ended the body.
    """

    MAX_LINE = 1024

    def __init__(self):
        self.line = bytearray()  # a chunk-size line cut by the end of what was fed
        self.left = 0            # bytes of the current chunk still to come
        self.skip = 0            # bytes of the CRLF after a chunk still to skip
        self.done = False

    def feed(self, data):
        out = []
        view = memoryview(data)
        at, size = 0, len(data)
        while at < size and not self.done:
            if self.left:
                take = min(self.left, size - at)
                out.append(view[at:at + take])
                at += take
                self.left -= take
                if not self.left:
                    self.skip = 2
            elif self.skip:
                step = min(self.skip, size - at)
                at += step
                self.skip -= step
            else:
                end = data.find(b"\n", at)
                if end < 0:
                    self.line += view[at:]
                    if len(self.line) > self.MAX_LINE:
                        raise ValueError("chunked body: chunk-size line too long")
                    break
                line = bytes(self.line) + bytes(view[at:end])
                self.line.clear()
                at = end + 1
                length = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if length:
                    self.left = length
                else:
                    self.done = True  # trailers, if any, are not read
        return out


class Demuxer:
    """Splits the engine's multiplexed log body (a container without a TTY) into its streams.

    Each frame is an 8-byte header (stream: 1 stdout, 2 stderr; 3 bytes of 0;
    big-endian length) and the bytes.  Fed in pieces of any size: frames and
    headers cut between two pieces are joined.  Each feed hands every stream's
    bytes to its sink at once (``sinks``: {1: callable, 2: callable}).
    """

    def __init__(self, sinks):
        self.sinks = sinks
        self.header = bytearray()  # a frame header cut by the end of a piece
        self.kind = 0              # stream of the frame being read
        self.left = 0              # bytes of that frame still to come
        self.frames = 0

    def feed(self, data):
        pieces = {kind: [] for kind in self.sinks}
        view = memoryview(data)
        at, size = 0, len(data)
        while at < size:
            if self.left:
                take = min(self.left, size - at)
                if self.kind in pieces:
                    pieces[self.kind].append(view[at:at + take])
                at += take
                self.left -= take
                continue
            if self.header or size - at < 8:
                take = min(8 - len(self.header), size - at)
                self.header += view[at:at + take]
                at += take
                if len(self.header) < 8:
                    break
                self.kind, self.left = struct.unpack(">BxxxL", self.header)
                self.header.clear()
                self.frames += 1
                continue
            # the common case, a whole header in hand: no copy of it
            self.kind, self.left = struct.unpack_from(">BxxxL", data, at)
            at += 8
            self.frames += 1
        for kind, parts in pieces.items():
            if parts:
                self.sinks[kind](b"".join(parts))


READ_SIZE = 1 << 20  # bytes asked of the engine's socket per read


def stream_logs(client, container_id, sinks, pause=lambda: None, read_size=READ_SIZE):
    """Read all a container's log holds, both streams in one engine call, into ``sinks`` as it comes.

    ``sinks``: {1: callable for stdout bytes, 2: callable for stderr bytes}.
    The body is read in big pieces straight from the connection (no per-frame
    calls, never all of it at once) and ``pause()`` is called after each piece:
    under eventlet a socket that always has data never yields by itself, so
    the runner passes ``eventlet.sleep`` (its heartbeats must keep running).

    Returns True when the engine ended the body itself (all of the log was
    read), False when the connection was cut before that.
    """
    api = client.api
    response = api._get(api._url("/containers/{0}/logs", container_id),
                        params={"stdout": 1, "stderr": 1, "timestamps": 0, "follow": 0, "tail": "all"},
                        stream=True)
    try:
        api._raise_for_status(response)
        raw = response.raw._fp  # http.client's response: headers read, the body not touched
        body = raw.fp           # the buffered connection the body comes on
        dechunk = Dechunker() if raw.chunked else None
        left = raw.length       # None: until the engine closes, or by chunks
        demux = Demuxer(sinks)
        while left is None or left > 0:
            data = body.read1(read_size if left is None else min(read_size, left))
            if not data:
                return dechunk is None and not left
            if left is not None:
                left -= len(data)
            if dechunk is None:
                demux.feed(data)
            else:
                parts = dechunk.feed(data)
                if parts:
                    demux.feed(parts[0] if len(parts) == 1 else b"".join(parts))
                if dechunk.done:
                    return True
            pause()
        return True
    finally:
        response.close()


def read_logs(client, container_id, limit, pause=lambda: None):
    """A stopped container's log as {"stdout": HeadTail, "stderr": HeadTail}, streamed.

    Memory stays within the keepers' bound whatever the log's size.  Raises the
    client's errors; a log cut off part way is kept as far as it arrived.
    """
    kept = {"stdout": HeadTail(limit), "stderr": HeadTail(limit)}
    stream_logs(client, container_id, {1: kept["stdout"].feed, 2: kept["stderr"].feed}, pause=pause)
    return kept


def attach_output(client, container_id, replay=False):
    """Attach to a container's stdout and stderr; the open response, to read with ``read_attached``.

    Made before the container starts, it carries every byte the container writes,
    raw (whatever the log driver keeps) and in order: the engine copies output to
    attached clients as it is written, and waits for them (a reader must keep
    reading until the container ends).  ``replay``: what the engine's log holds
    first, then what comes next (a container that already runs; bytes written
    between the two are not seen).  Raises the client's errors.
    """
    api = client.api
    response = api._post(api._url("/containers/{0}/attach", container_id),
                         params={"stdout": 1, "stderr": 1, "stream": 1, "logs": int(bool(replay))},
                         headers={"Connection": "Upgrade", "Upgrade": "tcp"}, stream=True)
    try:
        api._raise_for_status(response)
        api._disable_socket_timeout(api._get_raw_response_socket(response))  # a quiet container is not a dead engine
    except BaseException:
        response.close()
        raise
    return response


def read_attached(response, demux, pause=lambda: None, read_size=READ_SIZE):
    """Read an attach (``attach_output``) into ``demux`` until the engine closes it.

    The stream after the engine's 101 answer is the bare multiplexed frames (no
    HTTP chunks), read in big pieces straight from the connection, with
    ``pause()`` after each (see ``stream_logs``).  The engine closes it when the
    container's output ends, or when the engine goes away: the caller tells which.
    """
    body = response.raw._fp.fp  # the buffered connection: holds what came with the answer's headers
    try:
        while True:
            data = body.read1(read_size)
            if not data:
                return
            demux.feed(data)
            pause()
    finally:
        response.close()
