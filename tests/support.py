"""Helpers for tests that drive the real system: the backbone, the processes, the API."""
import contextlib
import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import docker
import requests

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ARTIFACTS = os.path.join(ROOT, "artifacts")


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def containers_of(docker_client, result_id):
    """The containers runners made for a result's executions (running or not), by their labels."""
    # sparse: no inspect of each listed container, which fails if a runner removes it meanwhile
    return docker_client.containers.list(
        all=True, sparse=True,
        filters={"label": ["stevedore.managed=true", f"stevedore.result_id={result_id}"]})


def wait_until(predicate, timeout=30.0, interval=0.2, what="condition"):
    """Poll ``predicate`` until it returns something truthy; return that."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last value: {last!r}")


class ImageRegistry:
    """A real Docker registry (Debian's docker-registry) on loopback, optionally with htpasswd auth."""

    def __init__(self, users=None, prefix=()):
        self.users = users or {}
        self.prefix = prefix  # e.g. nsenter --net=...: serve inside a network namespace
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.dir = tempfile.mkdtemp(prefix="stevedore-registry-")
        self.proc = None

    def start(self):
        binary = shutil.which("docker-registry") or "/usr/bin/docker-registry"
        auth = ""
        if self.users:
            htpasswd = os.path.join(self.dir, "htpasswd")
            with open(htpasswd, "w") as fh:
                for user, password in self.users.items():
                    line = subprocess.run(["htpasswd", "-nbB", user, password], check=True,
                                          capture_output=True, text=True).stdout.strip()
                    fh.write(line + "\n")
            auth = f"auth:\n  htpasswd:\n    realm: stevedore-test\n    path: {htpasswd}\n"
        config = os.path.join(self.dir, "config.yml")
        with open(config, "w") as fh:
            fh.write(f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {self.dir}/data\n"
                     f"  delete:\n    enabled: true\nhttp:\n  addr: {self.address}\n{auth}")
        self.log = open(os.path.join(self.dir, "registry.log"), "wb")  # noqa: SIM115 (the registry's, closed by stop)
        self.proc = subprocess.Popen([*self.prefix, binary, "serve", config], stdout=self.log, stderr=subprocess.STDOUT)
        wait_until(self._up, timeout=20, what=f"registry on {self.address}")
        return self

    def _up(self):
        try:
            return requests.get(f"http://{self.address}/v2/", timeout=1).status_code in (200, 401)
        except requests.RequestException:
            return False

    def stop(self):
        if self.proc:
            self.proc.terminate()
            self.proc.wait(10)
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def build_test_images(client, registry, behaviours=("ok", "fail", "sleep", "env", "flaky"),
                      repository="stevedore-test/busybox", auth=None, network_mode=None):
    """Build the test image for each behaviour, push it, drop the local tag.

    Returns {behaviour: "registry/repository:behaviour"}.  The local tags are
    removed so that registering a task really pulls from the registry.
    """
    return build_images(client, registry, {behaviour: f"{repository}:{behaviour}" for behaviour in behaviours},
                        auth=auth, network_mode=network_mode)


def build_standins(client, registry, names=("library/alpine:latest", "library/ubuntu:20.04")):
    """Small busybox stand-ins of public images (``alpine``, ``ubuntu:20.04`` as Docker Hub names them),
    pushed to the loopback ``registry``, for a system whose ``IMAGE_MAP`` is ``docker.io=<registry>``."""
    return build_images(client, registry, {name: name for name in names})


MEASURE_IMAGE = "stevedore-test/du:local"  # the test systems' DISK_MEASURE_IMAGE: busybox, built here, never pushed


def measure_image(client=None):
    """``MEASURE_IMAGE`` on the engine (built from busybox if absent, as the test image is)."""
    client = client or docker.from_env(version="auto", timeout=120)
    try:
        client.images.get(MEASURE_IMAGE)
        return MEASURE_IMAGE
    except docker.errors.ImageNotFound:
        pass
    context = tempfile.mkdtemp(prefix="stevedore-image-")
    try:
        shutil.copy(shutil.which("busybox") or "/bin/busybox", os.path.join(context, "busybox"))
        for name in ("Dockerfile", "behaviours.sh"):
            shutil.copy(os.path.join(ROOT, "tests", "images", name), os.path.join(context, name))
        client.images.build(path=context, tag=MEASURE_IMAGE, rm=True)
        return MEASURE_IMAGE
    finally:
        shutil.rmtree(context, ignore_errors=True)


def build_images(client, registry, wanted, auth=None, network_mode=None, labels=None):
    """Build the busybox test image once per entry of ``wanted`` ({behaviour: "repository:tag"}), push
    it to ``registry``, drop the local tag; returns {behaviour: "registry/repository:tag"}.  ``labels``: the
    images' labels (each entry its own image id: with its key as ``stevedore-test.key``)."""
    context = tempfile.mkdtemp(prefix="stevedore-image-")
    try:
        busybox = shutil.which("busybox") or "/bin/busybox"
        shutil.copy(busybox, os.path.join(context, "busybox"))
        for name in ("Dockerfile", "behaviours.sh"):
            shutil.copy(os.path.join(ROOT, "tests", "images", name), os.path.join(context, name))
        refs = {}
        for key, name in wanted.items():
            behaviour = key if key in ("ok", "fail", "sleep", "env", "flaky") else "ok"
            ref = f"{registry.address}/{name}"
            for attempt in range(3):
                # other test sessions on the same engine may prune the cached layers
                # a build reuses; build again without the cache if that happened
                try:
                    client.images.build(path=context, tag=ref, buildargs={"BEHAVIOUR": behaviour},
                                        rm=True, nocache=attempt > 0, network_mode=network_mode,
                                        labels={**labels, "stevedore-test.key": key} if labels else None)
                    break
                except docker.errors.BuildError:
                    if attempt == 2:
                        raise
            for line in client.images.push(ref, stream=True, decode=True, auth_config=auth):
                if "error" in line:
                    raise RuntimeError(f"push of {ref} failed: {line['error']}")
            # untag only: layers shared with other sessions' builds stay
            client.images.remove(ref, noprune=True)
            refs[key] = ref
        return refs
    finally:
        shutil.rmtree(context, ignore_errors=True)


POSTGRES = "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"  # the server the tests' databases are made on


def create_database(admin_url=POSTGRES):
    from stevedore_jobs.migrate import upgrade

    name = f"stevedore_test_{uuid.uuid4().hex[:10]}"
    url = admin_url.rsplit("/", 1)[0] + f"/{name}"
    upgrade(url)
    return url


def drop_database(url):
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    target = make_url(url)
    engine = create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{target.database}" WITH (FORCE)'))
    engine.dispose()


class Api:
    """The HTTP API as a client sees it."""

    def __init__(self, base_url, token=None):
        self.base_url = base_url.rstrip("/")
        self.http = requests.Session()
        if token:
            self.http.headers["Authorization"] = f"Bearer {token}"

    def get(self, path, **kwargs):
        return self.http.get(self.base_url + path, timeout=30, **kwargs)

    def post(self, path, body=None, raw=None, headers=None, **kwargs):
        if raw is not None:
            return self.http.post(self.base_url + path, data=raw, timeout=30, headers=headers, **kwargs)
        return self.http.post(self.base_url + path, data=json.dumps(body), timeout=30,
                              headers={"Content-Type": "application/json", **(headers or {})}, **kwargs)

    def delete(self, path, **kwargs):
        return self.http.delete(self.base_url + path, timeout=30, **kwargs)

    # ------------------------------------------------------------ verbs

    def register(self, repository, name=None, wait=True, timeout=60, team=None):
        """A task registered (and READY or ERROR, with ``wait``); ``team``: the team an admin or operator
        makes it for (X-Stevedore-Team)."""
        name = name or f"task-{uuid.uuid4().hex[:8]}"
        response = self.post("/task/", {"repository": repository, "name": name},
                             headers={"X-Stevedore-Team": team} if team else None)
        assert response.status_code == 201, response.text
        task_id = response.json()["task_id"]
        if wait:
            return self.wait_task(task_id, timeout=timeout)
        return response.json()

    def wait_task(self, task_id, timeout=60):
        def settled():
            task = self.get(f"/task/{task_id}/").json()
            return task if task["status"] in ("READY", "ERROR") else None

        return wait_until(settled, timeout=timeout, what=f"task {task_id} to be READY or ERROR")

    def run(self, task_id, times=1, **params):
        response = self.post(f"/task/{task_id}/", {"operation": "RUN", "times": times, **params})
        assert response.status_code == 202, response.text
        return response.json()["result_id"]

    def wait_result(self, result_id, timeout=120):
        def finished():
            result = self.get(f"/result/{result_id}/").json()
            return result if result["status"] in ("COMPLETE", "ERROR", "CANCELLED", "KILLED") else None

        return wait_until(finished, timeout=timeout, interval=0.3, what=f"result {result_id} to finish")

    def run_tes(self, image, command, wait=True):
        """A GA4GH TES task of one executor (POST /ga4gh/tes/v1/tasks); its id, once it ended with ``wait``."""
        response = self.post("/ga4gh/tes/v1/tasks", {"executors": [{"image": image, "command": command}]})
        assert response.status_code == 200, response.text
        task_id = response.json()["id"]
        if wait:
            self.wait_result(task_id)
        return task_id

    def details(self, result_id, **query):
        response = self.get(f"/result/{result_id}/detail/", params={"limit": 1000, **query})
        assert response.status_code == 200, response.text
        return response.json()


def remove_system_data(engine, database, docker_client):
    """After a system of its own: the containers of its results (any left; a TES executor's too, which is not
    labelled ``stevedore.managed``), their volumes (TES tasks') and its database."""
    from sqlalchemy import text

    try:
        # a fresh connection: a pooled one may be dead (a fault test restarted PostgreSQL while the system lived)
        engine.dispose()
        with engine.connect() as conn:
            ids = [row[0] for row in conn.execute(text("SELECT id FROM results"))]
        engine.dispose()
        for result_id in ids:
            mine = {"label": [f"stevedore.result_id={result_id}"]}
            for container in docker_client.containers.list(all=True, sparse=True, filters=mine):
                container.remove(force=True, v=True)
            for volume in docker_client.volumes.list(filters=mine):
                try:
                    volume.remove(force=True)
                except docker.errors.NotFound:  # its runner's clean-up removed it meanwhile
                    pass
    finally:
        drop_database(database)


@contextlib.contextmanager
def started_system(request, vhost_pipeline, name, env=None, per_runner=None, runners=1, *, more=None, start=None,
                   docker_client=None, grace=20):
    """A system of its own (vhost, database), started and healthy; stopped and dropped after.

    ``per_runner``: {label: env} added to a planned process's; ``more``: {label: (service, env)} processes
    added to the plan; ``start``: the labels started (all by default; none with ``()``: the caller starts
    them); ``docker_client``: its results' containers and volumes are removed too.  The system knows its
    ``vhost`` and an ``engine`` on its database."""
    from urllib.parse import urlparse

    from sqlalchemy import create_engine

    uri = urlparse(request.config.getoption("RABBIT_AMQP_URI"))
    database = create_database()
    engine = create_engine(database)
    try:
        with vhost_pipeline.get() as vhost:
            system = System(f"{uri.scheme}://{uri.netloc}/{vhost}", database, runners=runners, name=name,
                            env=env)
            for label, extra in (per_runner or {}).items():
                system.plan[label][1].update(extra)
            system.plan.update(more or {})
            system.vhost, system.engine = vhost, engine
            try:  # stopped even when it never became healthy
                if start is None or start:
                    system.start(*(start or ())).wait_healthy()
                yield system
            finally:
                system.stop(grace)
    finally:
        if docker_client is None:
            engine.dispose()
            drop_database(database)
        else:
            remove_system_data(engine, database, docker_client)


def own_system(request, vhost_pipeline, name, env=None, per_runner=None, runners=1, **options):
    """``started_system`` for a fixture that only yields it: ``yield from own_system(...)``."""
    with started_system(request, vhost_pipeline, name, env, per_runner, runners, **options) as system:
        yield system


def sign_in(system, token, next_path="/ui/tasks"):
    """Sign in as the web UI does (the form's POST); answer the session cookie's value."""
    response = requests.post(system.url + "/ui/signin", data={"token": token, "next": next_path},
                             allow_redirects=False, timeout=10)
    assert response.status_code == 303, response.text
    return response.cookies["stevedore_session"]


class System:
    """The four services as real processes (``stevedore-host`` layout) on one vhost and database."""

    def __init__(self, amqp_uri, database_url, runners=2, env=None, name="system"):
        from stevedore_jobs.host import plan

        self.amqp_uri = amqp_uri
        self.database_url = database_url
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.token = f"test-token-{uuid.uuid4().hex}"
        self.env = {
            "STEVEDORE_TOKENS": f"{self.token},second-token-{uuid.uuid4().hex[:6]}",
            "AMQP_URI": amqp_uri,
            "DATABASE_URL": database_url,
            "LOG_LEVEL": "INFO",
            "RUNNER_POLL_INTERVAL": "1",
            "HEARTBEAT_INTERVAL": "1",
            "LEASE_SECONDS": "8",
            "RETRY_BACKOFF": "0.5",
            "STOP_GRACE_PERIOD": "2",
            "DISK_MEASURE_IMAGE": MEASURE_IMAGE,  # built by start()
            # off: the test sessions share one engine and its images (tests/e2e/test_image_gc.py turns it on,
            # for its own images alone)
            "IMAGE_GC": "off",
            **(env or {}),
        }
        self.plan = {label: (service, extra) for label, service, extra in plan(runners, self.port)}
        for service, extra in self.plan.values():
            if service == "gateway":
                extra["GATEWAY_ADDRESS"] = f"127.0.0.1:{self.port}"
            else:  # each process serves its own metrics, on a free port (see metrics_url)
                extra["METRICS_PORT"] = str(free_port())
        self.prefix = {}  # label -> command prefix, e.g. nsenter --net=... (see spawn)
        self.procs = {}
        self.log_dir = os.path.join(ARTIFACTS, "logs", f"{name}-{uuid.uuid4().hex[:6]}")
        os.makedirs(self.log_dir, exist_ok=True)
        self.api = Api(self.url, token=self.token)

    def start(self, *labels):
        from stevedore_jobs.host import spawn

        if self.env.get("DISK_MEASURE_IMAGE") == MEASURE_IMAGE:
            measure_image()
        for label in labels or self.plan:
            service, extra = self.plan[label]
            self.procs[label] = spawn(service, {**self.env, **extra}, prefix=self.prefix.get(label, ()),
                                      log_file=os.path.join(self.log_dir, f"{label}.log"))
        return self

    def wait_healthy(self, timeout=60):
        def healthy():
            try:
                return self.api.get("/health/").status_code == 200
            except requests.RequestException:
                return False

        wait_until(healthy, timeout=timeout, interval=0.3, what="the system to be healthy")
        return self

    def kill(self, label, sig=9):
        proc = self.procs[label]
        proc.send_signal(sig)
        proc.wait(60)

    def stop(self, grace=20):
        from stevedore_jobs.host import stop_all

        stop_all(self.procs, grace)

    def metrics_url(self, label):
        """Where process ``label`` (registry, scheduler, runner-N) serves its Prometheus metrics."""
        return f"http://127.0.0.1:{self.plan[label][1]['METRICS_PORT']}/metrics"

    def log(self, label):
        with open(os.path.join(self.log_dir, f"{label}.log"), errors="replace") as fh:
            return fh.read()

    def troubles(self, last=15):
        """The last warnings and errors of each process's log, for a failing test's message."""
        found = {}
        for label in self.plan:
            try:
                lines = self.log(label).splitlines()
            except OSError:
                continue
            found[label] = [line[:300] for line in lines if " WARNING " in line or " ERROR " in line][-last:]
        return found


class WebhookReceiver:
    """A real HTTP endpoint on loopback that answers the given status codes in turn (then 200)."""

    def __init__(self, answers=()):
        self.answers = list(answers)
        self.received = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.received.append({"path": self.path, "headers": dict(self.headers),
                                          "body": body, "at": time.time()})
                status = receiver.answers.pop(0) if receiver.answers else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/stevedore"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def _admin():
    from shared.principals import CONFIGURED
    return CONFIGURED.as_dict()


ADMIN = _admin()
"""The configured admin (a STEVEDORE_TOKENS token's), as the gateway hands a caller on (shared/principals.py)."""


def call(container, method, *args, **kwargs):
    """``method`` of a started service ``container``, as its RPC would run it (nameko's entrypoint_hook).

    An RPC that a role or a team limits (its method takes a ``caller``) is called by the configured admin
    (``ADMIN``) unless the test names another caller: a service refuses a call that names none."""
    import inspect

    from nameko.testing.services import entrypoint_hook

    signature = inspect.signature(getattr(container.service_cls, method))
    if "caller" in signature.parameters and "caller" not in signature.bind_partial(None, *args, **kwargs).arguments:
        kwargs["caller"] = ADMIN
    with entrypoint_hook(container, method) as hook:
        return hook(*args, **kwargs)
