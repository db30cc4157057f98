"""Prometheus metrics: each process serves its own on ``METRICS_PORT`` (0 = off).

Prometheus' convention is that every process exposes what it measured itself
and Prometheus adds them up: counters and histograms live in the memory of the
process that observed them (a scheduler folds executions, a runner runs and
pulls, the registry pulls), so each registry, scheduler and runner process
serves its own ``/metrics`` on a port of its own.  Figures of the whole
cluster read from the datastore (executions by status, queue depth) are served
once, by the gateway's ``GET /metrics`` (services/gateway), so no sum over
replicas counts them twice.  See docs/metrics.md.

The server is an eventlet WSGI server run in a thread of the service's
container (like nameko's own web server), not prometheus_client's
``start_http_server`` and its OS thread: it starts and stops with the service.
Each container has a registry of its own, so several containers in one
process (the tests) never collide.
"""
import logging
import time
from contextlib import contextmanager
from functools import partial

import eventlet
from eventlet import wsgi
from nameko.extensions import DependencyProvider, SharedExtension
from nameko.web.server import HttpOnlyProtocol
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

from shared import statuses
from shared.settings import settings_of

log = logging.getLogger(__name__)

PREFIX = "stevedore"
# the classic text format every Prometheus reads (our names need none of 1.0.0's UTF-8)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# seconds: image pulls take from a second (cached layers) to many minutes
PULL_BUCKETS = (0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, float("inf"))


def render(registry):
    """(body, content type) of ``registry`` in the Prometheus text format."""
    return generate_latest(registry), CONTENT_TYPE


class MetricsServer(SharedExtension):
    """Serves the container's metrics registry at ``/metrics`` on ``METRICS_HOST:METRICS_PORT``.

    A port that cannot be bound is logged as an error and the service runs on
    without serving metrics: a runner keeps running jobs.
    """

    def __init__(self):
        super().__init__()
        self.registry = CollectorRegistry(auto_describe=True)
        self.port = 0
        self.address = None
        self._sock = self._serv = self._gt = None
        self._accepting = False

    def setup(self):
        settings = settings_of(self.container)
        self.port = settings.metrics_port
        self.host = settings.metrics_host

    def start(self):
        if not self.port or self._sock is not None:
            return
        try:
            self._sock = eventlet.listen((self.host, self.port))
        except OSError as exc:
            log.error("cannot serve metrics on %s:%s (%s); metrics are not served", self.host, self.port, exc)
            return
        self._sock.settimeout(None)
        self.address = self._sock.getsockname()
        self._serv = wsgi.Server(self._sock, self.address, self.wsgi_app, protocol=HttpOnlyProtocol,
                                 log=log, log_output=False, debug=False)
        self._accepting = True
        self._gt = self.container.spawn_managed_thread(self._run, identifier="metrics-server")
        log.info("serving metrics on http://%s:%s/metrics", *self.address[:2])

    def _run(self):
        while self._accepting:
            sock, address = self._sock.accept()
            sock.settimeout(self._serv.socket_timeout)
            self.container.spawn_managed_thread(partial(self._serve_one, sock, address),
                                                identifier="metrics-request")

    def _serve_one(self, sock, address):
        try:
            self._serv.process_request([address, sock, wsgi.STATE_IDLE])
        except OSError:  # the scraper went away
            pass

    def wsgi_app(self, environ, start_response):
        if environ.get("PATH_INFO", "/") not in ("/metrics", "/metrics/", "/"):
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"metrics are at /metrics\n"]
        body, content_type = render(self.registry)
        start_response("200 OK", [("Content-Type", content_type), ("Content-Length", str(len(body)))])
        return [body]

    def stop(self):
        self._accepting = False
        if self._gt is not None:
            self._gt.kill()
        if self._sock is not None:
            self._sock.close()
        super().stop()

    kill = stop


class ServiceMetrics(DependencyProvider):
    """Base of a service's metrics: ``declare`` makes them on the container's registry.

    Workers get the provider itself; subclasses add verbs (``execution_started`` ...).
    """

    server = MetricsServer()

    def setup(self):
        self.declare(self.server.registry)

    def declare(self, registry):
        raise NotImplementedError

    def get_dependency(self, worker_ctx):
        return self


class PullMetrics(ServiceMetrics):
    """Image pulls, by where they happened (``registry`` or ``runner``) and their outcome.

    Both services that talk to Docker pull; each serves the pulls it made.
    """

    where = None  # set by the subclass: "registry" or "runner"

    def declare(self, registry):
        self.pulls = Histogram(f"{PREFIX}_image_pull_seconds", "Seconds an image pull took",
                               ["where", "outcome"], buckets=PULL_BUCKETS, registry=registry)
        self.gc_images = Counter(f"{PREFIX}_image_gc_removed", "Images the image collection removed "
                                 "(shared/image_gc.py)", ["where"], registry=registry)
        self.gc_bytes = Counter(f"{PREFIX}_image_gc_removed_bytes", "Bytes of the images the image collection "
                                "removed (their sizes; layers shared with others stay)", ["where"], registry=registry)

    def images_removed(self, removed):
        """Count the images one sweep removed: [(image, bytes, why)]."""
        for _, size, _ in removed:
            self.gc_images.labels(self.where).inc()
            self.gc_bytes.labels(self.where).inc(size)

    @contextmanager
    def timed_pull(self):
        """Observe the pull in the block: outcome ``ok``, or ``error`` when it raises."""
        started = time.monotonic()
        outcome = "error"
        try:
            yield
            outcome = "ok"
        finally:
            self.pulls.labels(self.where, outcome).observe(time.monotonic() - started)


# ---------------------------------------------------------------- cluster figures

def cluster_exposition(figures):
    """The gateway's ``/metrics`` body: the scheduler's figures in the Prometheus text format.

    ``figures`` is what the scheduler's ``execution_figures`` RPC answers:
    ``{"executions": {status: count}, "queue_depth": n}``.
    """
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Figures(figures))
    return render(registry)


class _Figures:
    def __init__(self, figures):
        self.figures = figures

    def collect(self):
        by_status = GaugeMetricFamily(f"{PREFIX}_executions",
                                      "Executions in the datastore now, by status", labels=["status"])
        counts = self.figures.get("executions") or {}
        for status in statuses.EXECUTION_STATUSES:
            by_status.add_metric([status], counts.get(status, 0))
        yield by_status
        yield GaugeMetricFamily(f"{PREFIX}_queue_depth",
                                "Executions a runner could claim now (queued, due, within parallelism)",
                                value=self.figures.get("queue_depth", 0))
