"""A stand-in Docker engine for the control-plane leg: answers the engine API calls the registry and
the runner make, at once, and runs no container.

``python -m bench.standin_engine SOCKET [--seconds S]`` serves on the unix socket SOCKET until
SIGTERM.  A "container" is a record: created by ``POST /containers/create``, it "runs" for S
seconds from its start (``wait`` answers at its end, an attach made before the start gets one line
of output on stdout at once and is closed at its end, as the engine closes it), and is gone at
``DELETE``.  Pulls answer a progress line, every image exists (with a fixed digest), pings answer.
What it does not know it answers 404 with the engine's JSON shape, so a runner would say so.

It is a process of its own so that its CPU is its own line in the figures, apart from the
services', and so that nothing of the real engine (dockerd, containerd, runc) is measured:
the leg is about the control plane.
"""
import argparse
import json
import os
import re
import signal
import socketserver
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlsplit

API_VERSION = "1.41"
DIGEST = "sha256:" + "5" * 64
IMAGE_ID = "sha256:" + "6" * 64
OUTPUT = b"ok\n"
FRAME = b"\x01\x00\x00\x00" + len(OUTPUT).to_bytes(4, "big") + OUTPUT  # stdout, multiplexed
WAIT_MAX = 300.0  # seconds an answer is ever held


def docker_time(stamp):
    """Epoch seconds as the engine writes them (RFC 3339, nanoseconds)."""
    whole = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(stamp))
    return f"{whole}.{int((stamp % 1) * 1e9):09d}Z"


class Containers:
    """The stand-in's containers: id -> record; a condition tells waiters of starts and removals."""

    def __init__(self, seconds):
        self.seconds = seconds
        self.records = {}
        self.changed = threading.Condition()
        self.counts = {"created": 0, "started": 0, "removed": 0}

    def create(self, body, name):
        cid = uuid.uuid4().hex + uuid.uuid4().hex
        with self.changed:
            self.records[cid] = {"Id": cid, "Name": "/" + (name or cid[:12]), "created": time.time(),
                                 "started": None, "ends": None, "Labels": body.get("Labels") or {},
                                 "Image": body.get("Image")}
            self.counts["created"] += 1
        return cid

    def get(self, cid):
        return self.records.get(cid)

    def start(self, cid):
        with self.changed:
            record = self.records.get(cid)
            if record is None:
                return None
            if record["started"] is None:
                record["started"] = time.time()
                record["ends"] = record["started"] + self.seconds
                self.counts["started"] += 1
            self.changed.notify_all()
            return record

    def remove(self, cid):
        with self.changed:
            record = self.records.pop(cid, None)
            if record is not None:
                self.counts["removed"] += 1
            self.changed.notify_all()
            return record

    def until_started(self, cid, limit):
        """The record once it started (or was removed: None), waiting at most ``limit`` seconds."""
        deadline = time.monotonic() + limit
        with self.changed:
            while True:
                record = self.records.get(cid)
                if record is None or record["started"] is not None:
                    return record
                left = deadline - time.monotonic()
                if left <= 0:
                    return record
                self.changed.wait(left)

    @staticmethod
    def state(record):
        now = time.time()
        started, ends = record["started"], record["ends"]
        running = started is not None and now < ends
        exited = started is not None and not running
        return {"Status": "running" if running else ("exited" if exited else "created"),
                "Running": running, "Paused": False, "Restarting": False, "OOMKilled": False,
                "Dead": False, "Pid": 4242 if running else 0, "ExitCode": 0, "Error": "",
                "StartedAt": docker_time(started) if started else "0001-01-01T00:00:00Z",
                "FinishedAt": docker_time(ends) if exited else "0001-01-01T00:00:00Z"}


ROUTES = []


def route(method, pattern):
    def register(handler):
        ROUTES.append((method, re.compile(pattern + r"$"), handler))
        return handler
    return register


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "stevedore-standin-engine"
    containers = None  # set by serve()

    def log_message(self, *args):  # quiet: the leg reads counts, not logs
        pass

    def address_string(self):
        return "unix"

    def _dispatch(self, method):
        parts = urlsplit(self.path)
        path = re.sub(r"^/v\d+\.\d+", "", parts.path)
        self.query = parse_qs(parts.query)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            self.body = json.loads(raw) if raw else {}
        except ValueError:
            self.body = {}
        for verb, pattern, handler in ROUTES:
            if verb == method:
                found = pattern.match(path)
                if found:
                    return handler(self, *found.groups())
        return self.answer(404, {"message": f"page not found: {method} {path}"})

    def do_GET(self):
        self._dispatch("GET")

    def do_HEAD(self):
        self._dispatch("HEAD")

    def do_POST(self):
        self._dispatch("POST")

    def do_DELETE(self):
        self._dispatch("DELETE")

    def answer(self, status, body=None, content_type="application/json"):
        data = b"" if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Api-Version", API_VERSION)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if data and self.command != "HEAD":
            self.wfile.write(data)

    def record(self, cid):
        found = self.containers.get(cid)
        if found is None:
            self.answer(404, {"message": f"No such container: {cid}"})
        return found

    # ------------------------------------------------------------ system

    @route("GET", r"/_ping")
    def ping(self):
        self.answer(200, b"OK", "text/plain")

    @route("HEAD", r"/_ping")
    def ping_head(self):
        self.answer(200, b"OK", "text/plain")

    @route("GET", r"/version")
    def version(self):
        self.answer(200, {"Version": "stand-in", "ApiVersion": API_VERSION, "MinAPIVersion": "1.12",
                          "Os": "linux", "Arch": "amd64"})

    @route("GET", r"/info")
    def info(self):
        self.answer(200, {"ServerVersion": "stand-in", "OperatingSystem": "bench stand-in engine",
                          "MemTotal": 64 * 1024 ** 3, "NCPU": 64, "BridgeNfIptables": True,
                          "Containers": len(self.containers.records), "SecurityOptions": []})

    # ------------------------------------------------------------ images

    @route("POST", r"/images/create")
    def pull(self):
        # one progress object (the SDK reads an unchunked body as one JSON document)
        self.answer(200, {"status": f"Digest: {DIGEST}"})

    @route("GET", r"/images/(.+)/json")
    def image(self, reference):
        name = reference.split("@", 1)[0]
        if ":" in name.rsplit("/", 1)[-1]:
            name = name.rsplit(":", 1)[0]
        self.answer(200, {"Id": IMAGE_ID, "RepoTags": [], "RepoDigests": [f"{name}@{DIGEST}"],
                          "Config": {}, "Size": 1})

    # ------------------------------------------------------------ networks (CONTAINER_NETWORK=none: unused)

    @route("GET", r"/networks")
    def networks(self):
        self.answer(200, [])

    # ------------------------------------------------------------ containers

    @route("POST", r"/containers/create")
    def create(self):
        cid = self.containers.create(self.body, (self.query.get("name") or [None])[0])
        self.answer(201, {"Id": cid, "Warnings": []})

    @route("GET", r"/containers/json")
    def list_containers(self):
        out = []
        for record in list(self.containers.records.values()):
            out.append({"Id": record["Id"], "Names": [record["Name"]], "Labels": record["Labels"],
                        "State": self.containers.state(record)["Status"], "Image": record["Image"]})
        self.answer(200, out)

    @route("GET", r"/containers/([0-9a-f]+)/json")
    def inspect(self, cid):
        record = self.record(cid)
        if record is not None:
            self.answer(200, {"Id": cid, "Name": record["Name"], "State": self.containers.state(record),
                              "Config": {"Labels": record["Labels"], "Image": record["Image"]},
                              "HostConfig": {}, "LogPath": ""})

    @route("POST", r"/containers/([0-9a-f]+)/start")
    def start(self, cid):
        if self.containers.start(cid) is None:
            return self.answer(404, {"message": f"No such container: {cid}"})
        self.answer(204)

    @route("POST", r"/containers/([0-9a-f]+)/wait")
    def wait(self, cid):
        record = self.containers.until_started(cid, WAIT_MAX)
        if record is None:
            return self.answer(404, {"message": f"No such container: {cid}"})
        if record["ends"] is not None:  # a client that gave up meanwhile closed its end: the write fails
            time.sleep(max(0.0, min(WAIT_MAX, record["ends"] - time.time())))
        self.answer(200, {"StatusCode": 0, "Error": None})

    @route("POST", r"/containers/([0-9a-f]+)/stop")
    def stop(self, cid):
        record = self.record(cid)
        if record is not None:
            record["ends"] = min(record["ends"] or time.time(), time.time())
            self.answer(204)

    @route("POST", r"/containers/([0-9a-f]+)/attach")
    def attach(self, cid):
        """101, one line of output at once, and the stream closed once the container ended."""
        if self.record(cid) is None:
            return
        self.send_response(101, "UPGRADED")
        self.send_header("Content-Type", "application/vnd.docker.raw-stream")
        self.send_header("Connection", "Upgrade")
        self.send_header("Upgrade", "tcp")
        self.end_headers()
        self.close_connection = True
        record = self.containers.until_started(cid, WAIT_MAX)
        if record is not None and record["ends"] is not None:
            self.wfile.write(FRAME)
            self.wfile.flush()
            time.sleep(max(0.0, min(WAIT_MAX, record["ends"] - time.time())))

    @route("GET", r"/containers/([0-9a-f]+)/logs")
    def logs(self, cid):
        if self.record(cid) is not None:
            self.answer(200, FRAME, "application/vnd.docker.raw-stream")

    @route("DELETE", r"/containers/([0-9a-f]+)")
    def remove(self, cid):
        if self.containers.remove(cid) is None:
            return self.answer(404, {"message": f"No such container: {cid}"})
        self.answer(204)


class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    request_queue_size = 1024

    def handle_error(self, request, client_address):
        # a wait the client gave up on (its slice ran out) finds the connection closed: expected
        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)


def serve(path, seconds):
    Handler.containers = Containers(seconds)
    if os.path.exists(path):
        os.unlink(path)
    server = Server(path, Handler)
    os.chmod(path, 0o600)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    try:
        server.serve_forever(poll_interval=0.5)
    finally:
        server.server_close()
        if os.path.exists(path):
            os.unlink(path)
        print(json.dumps(Handler.containers.counts), flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("socket", help="the unix socket to serve on (DOCKER_HOST=unix://SOCKET)")
    parser.add_argument("--seconds", type=float, default=1.5, help="how long each container 'runs'")
    args = parser.parse_args(argv)
    serve(args.socket, args.seconds)


if __name__ == "__main__":
    main()
