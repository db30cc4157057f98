"""A GA4GH TES task on the runner: its executors one after another in one execution (docs/tes.md).

The task's shared directories (inputs, outputs, ``volumes``, redirected streams:
``tes_files.mount_dirs``) are Docker volumes of the execution's own, labelled with
it and mounted into every executor's container; the inputs are staged into them
through the first executor's container before it starts, the outputs copied out
of the last one after it ended.  Each executor runs as any execution's container
does (``Executor._run_created``: the same confinement, memory and CPU limits,
network, cancel, output and engine-outage handling), with its own image (pinned
to the digest the registry imported), command, workdir and env; stdin, stdout and
stderr paths are redirected by ``/bin/sh`` in the executor's image.  A non-zero
exit stops the task (EXECUTOR_ERROR) unless the executor has ``ignore_error``.

Its containers and volumes are removed when it ends, however it ends; the ones a
runner stopped mid-task leaves behind (killed, its host restarted) are removed by
a reconcile (``sweep``): that runner's own when it comes back (which first reports
the attempt lost, with what the engine still holds of its executors: ``recovered``),
or any runner's on the same engine once the scheduler no longer has that attempt
running (its runner declared lost).  They carry ``stevedore.tes`` labels, not
``stevedore.managed``, so no runner ever adopts one as a plain execution: a TES
task is not resumed after its runner's restart.
"""
import base64
import logging
import shlex
import uuid

import docker
import requests
from docker.models.volumes import Volume
from docker.types import Mount

from services.runner.engine import ENGINE_ERRORS, LABEL
from services.runner.disk import tes_limit
from services.runner.tes_files import StagingFailed, Stager, mount_dirs
from shared import statuses as st
from shared.docker_engine import create_container, explain
from shared.timeutil import now, parse_docker_time

log = logging.getLogger(__name__)

TES_LABEL = f"{LABEL}.tes"
EXECUTOR_ERROR, SYSTEM_ERROR = "EXECUTOR_ERROR", "SYSTEM_ERROR"
NOT_FOUND_WORDS = ("executable file not found", "no such file or directory")


def command_of(executor):
    """The executor's command, wrapped in ``/bin/sh`` when it redirects stdin, stdout or stderr."""
    redirects = "".join(f" {sign}{shlex.quote(executor[stream])}" for stream, sign in
                        (("stdin", "<"), ("stdout", ">"), ("stderr", "2>")) if executor.get(stream))
    if not redirects:
        return list(executor["command"])
    return ["/bin/sh", "-c", 'exec "$@"' + redirects, "sh", *executor["command"]]


def _text(logs, stream, limit):
    """The last ``limit`` bytes of one stream of a report's ``logs``, as text."""
    if not logs or not logs.get(stream):
        return ""
    data = base64.b64decode(logs[stream])
    return data[-limit:].decode("utf-8", "replace") if limit else ""


class TesRun:
    """One attempt of a TES task on this runner's engine (``executor``: the runner's ``Executor``)."""

    def __init__(self, executor, settings, work, runner, pull_timer):
        self.engine, self.settings, self.work, self.runner = executor, settings, work, runner
        self.pull_timer = pull_timer
        self.task = work["tes"]["task"]
        self.images = work["tes"]["images"]
        self.containers, self.volumes = [], []
        self.executor_logs, self.outputs, self.system_logs = [], [], []
        self.start = None

    def labels(self):
        installation = {f"{LABEL}.installation": self.work["installation"]} if self.work.get("installation") else {}
        return {TES_LABEL: "true", f"{LABEL}.result_id": self.work["result_id"],
                f"{LABEL}.detail_id": self.work["detail_id"], f"{LABEL}.attempt": str(self.work["attempt"]),
                f"{LABEL}.runner": self.runner, **installation}

    def run(self, on_started, should_stop, on_output):
        """The report of how the attempt ended (with ``tes_log``: executor logs, outputs, the failure kind)."""
        stager = Stager(self.settings, lambda: should_stop())
        try:
            return self._run(stager, on_started, should_stop, on_output)
        except StagingFailed as exc:
            return self._end(st.ERROR, str(exc), SYSTEM_ERROR)
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            return self._end(st.ERROR, f"the Docker engine failed: {explain(exc)}", SYSTEM_ERROR)
        finally:
            stager.close()
            self.clean_up()

    def _run(self, stager, on_started, should_stop, on_output):
        dirs = mount_dirs(self.task)
        suffix = uuid.uuid4().hex[:6]
        for i, directory in enumerate(dirs):
            name = f"stevedore-tes-{self.work['detail_id'][:12]}-{self.work['attempt']}-{i}-{suffix}"
            self.volumes.append(self.engine.client.volumes.create(name, labels=self.labels()))
        mounts = [Mount(target=d, source=v.name, type="volume") for d, v in zip(dirs, self.volumes)]
        archives = stager.archives(self.task, dirs)
        reported = []

        def started(start, container_id, logs=None):
            if not reported:
                reported.append(start)
                on_started(start, container_id, logs)
            elif logs:  # a later executor's first output: a live output report, as the rest of it
                on_output(logs)

        last = None
        limit, named = tes_limit(self.task, self.settings.tes_disk_bytes)
        layers = 0  # what the writable layers of the executors that ended hold: on disk until the clean-up
        for i, executor in enumerate(self.task["executors"]):
            verdict = should_stop()
            if verdict:
                status, reason = verdict if isinstance(verdict, tuple) else (st.KILLED, "cancelled")
                return self._end(status, reason, None, last)
            image = self.images[i]
            self.engine.note_use(image)
            container = None
            for _ in range(2):  # an image removed meanwhile (the image collection) is pulled again, once
                if image not in self.engine.state.images:
                    failed = self.engine._ensure_image(image, None, self.pull_timer, self.runner)
                    if failed:
                        return self._end(st.ERROR, f"executors[{i}]: {failed['reason']}", SYSTEM_ERROR, last)
                try:
                    container = create_container(self.engine.client, image, self.options(i, executor, mounts))
                    break
                except docker.errors.ImageNotFound:
                    self.engine.state.images.discard(image)
            if container is None:
                return self._end(st.ERROR, f"executors[{i}]: image {image} vanished from the engine", SYSTEM_ERROR,
                                 last)
            self.containers.append(container)
            if i == 0:
                for directory, archive in archives.items():
                    container.put_archive(directory, archive)
            # the task's volumes and those its image declares, measured as any execution's (services/runner/disk.py)
            watch = self.engine.disk_watch(self.work, container, (limit, named), f"executors[{i}]", layers)
            try:
                report = self.engine._run_created(container, self.work, started, watch.stop_if_over(should_stop),
                                                  on_output)
            finally:
                watch.stop()
            last = report
            self.start = self.start or report.get("start")
            exit_code = report.get("exit_code")
            reason = report.get("reason") or ""
            if exit_code is None and report["status"] == st.ERROR and any(w in reason for w in NOT_FOUND_WORDS):
                exit_code = 127  # the command could not be started: as a shell says it
            self.executor_logs.append({
                "start_time": report.get("start"), "end_time": report.get("end"),
                "exit_code": exit_code if exit_code is not None else -1,
                "stdout": _text(report.get("logs"), "stdout", self.settings.tes_log_bytes),
                "stderr": _text(report.get("logs"), "stderr", self.settings.tes_log_bytes)})
            if report["status"] in (st.KILLED, st.CANCELLED):
                return self._end(report["status"], report.get("reason"), None, report)
            if watch.over and report["status"] == st.ERROR:  # past its disk_gb (killed): its doing, as past ram_gb
                return self._end(st.ERROR, watch.over[1], EXECUTOR_ERROR, report, exit_code)
            try:  # its layer stays on disk: the next executors' bound counts it; so does this one's end
                layers += watch.layer(container)
            except ENGINE_ERRORS as exc:
                log.warning("could not measure the writable layer of %s: %s", container.id[:12], explain(exc))
            if layers > limit:  # written past the bound between two measures, then ended
                return self._end(st.ERROR, (f"executors[{i}]: the writable layers of the executors hold {layers} "
                                            f"bytes, past {named}"), EXECUTOR_ERROR, report, exit_code)
            if exit_code is None:
                return self._end(st.ERROR, f"executors[{i}]: {reason}", SYSTEM_ERROR, report)
            if exit_code != 0 and not executor.get("ignore_error"):
                return self._end(st.ERROR, f"executors[{i}] exited with code {exit_code}", EXECUTOR_ERROR,
                                 report, exit_code)

        def fetch(path):
            try:
                stream, _ = self.containers[-1].get_archive(path)
            except docker.errors.NotFound:
                raise FileNotFoundError(path) from None
            return stream

        self.outputs = stager.collect(self.task, fetch)
        return self._end(st.COMPLETE, None, None, last, 0)

    def options(self, i, executor, mounts):
        """The executor's container: the runner's options for this execution, its own command and mounts."""
        options = self.engine.container_options(self.work, self.runner)
        labels = {key: value for key, value in options["labels"].items() if key != f"{LABEL}.managed"}
        options["labels"] = {**labels, **self.labels(), f"{TES_LABEL}.executor": str(i)}
        options["name"] += f"-x{i}"
        options["command"] = command_of(executor)
        options["environment"] = {**(executor.get("env") or {}), **options["environment"]}
        if executor.get("workdir"):
            options["working_dir"] = executor["workdir"]
        options["mounts"] = mounts
        return options

    def _end(self, status, reason, failure, report=None, exit_code=None):
        report = report or {}
        stamp = now()
        return {"status": status, "reason": reason, "exit_code": exit_code,
                "start": self.start, "end": max(report.get("end") or stamp, self.start or 0),
                "logs": report.get("logs"), "container_id": report.get("container_id"),
                "tes_log": {"failure": failure, "executors": self.executor_logs, "outputs": self.outputs,
                            "system_logs": [reason] if failure == SYSTEM_ERROR and reason else []}}

    def clean_up(self):
        for container in self.containers:
            self.engine._remove(container)
        for volume in self.volumes:
            try:
                volume.remove(force=True)
            except ENGINE_ERRORS as exc:  # the reconcile's sweep removes it later
                log.warning("could not remove volume %s: %s", volume.name, explain(exc))


def recovered(engine, detail_id, attempt, limit):
    """What the engine still holds of an attempt's executors (its runner restarted mid-task), as a
    ``tes_log``'s ``executors``, or None if it holds no container of it.  An executor that had not
    ended has no exit of its own (-1) and no end time; one never started is left out."""
    filters = {"label": [f"{TES_LABEL}=true", f"{LABEL}.detail_id={detail_id}", f"{LABEL}.attempt={attempt}"]}
    containers = engine.client.containers.list(all=True, filters=filters)
    if not containers:
        return None
    entries = []
    for container in sorted(containers, key=lambda c: int(c.labels.get(f"{TES_LABEL}.executor", "0"))):
        state = container.attrs.get("State") or {}
        start = parse_docker_time(state.get("StartedAt"))
        if start is None:
            continue
        ended = not state.get("Running") and state.get("Status") in ("exited", "dead")
        logs = {stream: container.logs(stdout=stream == "stdout", stderr=stream == "stderr")[-limit:]
                if limit else b"" for stream in ("stdout", "stderr")}
        entries.append({"start_time": start, "end_time": parse_docker_time(state.get("FinishedAt")) if ended else None,
                        "exit_code": state.get("ExitCode", -1) if ended else -1,
                        **{stream: data.decode("utf-8", "replace") for stream, data in logs.items()}})
    return entries


def sweep(engine, runner, held, states, our_installation):
    """Remove the TES containers and volumes on this engine whose attempt no runner runs any more.

    Only this installation's (or unlabelled ones, made before the label, of this runner).  This
    runner's own that it no longer holds (``held``: the detail ids it runs): what it left when
    killed, or its host restarted; another runner's once the scheduler says that attempt is not
    running under it (``states``: ``execution_states``), or, for an execution it does not know, when
    labelled with this installation (``our_installation()``: its id, or None while the scheduler cannot
    say; asked only when there is something to judge).  Returns how many it removed.
    """
    try:
        return _sweep(engine, runner, held, states, our_installation)
    except ENGINE_ERRORS as exc:  # the engine away: the next reconcile sweeps
        log.warning("could not look for TES leftovers: %s", explain(exc))
        return 0


def _sweep(engine, runner, held, states, our_installation):
    tes = {"label": [f"{TES_LABEL}=true"]}
    found = [(container, container.attrs.get("Labels") or {})
             for container in engine.client.containers.list(all=True, sparse=True, filters=tes)]
    found += [(volume, volume.attrs.get("Labels") or {}) for volume in engine.client.volumes.list(filters=tes)]
    if not found:
        return 0
    installation = our_installation()
    others = sorted({labels.get(f"{LABEL}.detail_id") for _, labels in found
                     if labels.get(f"{LABEL}.runner") != runner and labels.get(f"{LABEL}.detail_id")})
    try:
        known = states(others) if others else {}
    except Exception as exc:  # noqa: BLE001 -- the scheduler away: only this runner's own are judged now
        log.warning("cannot ask the scheduler about other runners' TES leftovers: %s", exc)
        known = {}
    removed = 0
    for thing, labels in found:  # the containers first: a volume in use cannot be removed
        why = _left_over(labels, runner, held, known, installation)
        if why is None:
            continue
        shown = thing.name if isinstance(thing, Volume) else thing.id[:12]
        log.warning("removing TES leftovers %s of execution %s (attempt %s, runner %s): %s",
                    shown, labels.get(f"{LABEL}.detail_id"),
                    labels.get(f"{LABEL}.attempt"), labels.get(f"{LABEL}.runner"), why)
        try:
            if isinstance(thing, Volume):
                thing.remove(force=True)
            else:
                engine.remove(thing.id)
            removed += 1
        except docker.errors.APIError as exc:  # a volume still in use by a container being removed
            log.info("TES leftover %s not removed yet: %s", shown, explain(exc))
    return removed


def _left_over(labels, runner, held, known, installation):
    """Why a TES container or volume with these labels is left over, or None while it is not."""
    detail_id, owner = labels.get(f"{LABEL}.detail_id"), labels.get(f"{LABEL}.runner")
    labelled = labels.get(f"{LABEL}.installation")
    if labelled and labelled != installation:
        return None  # another installation's (runner ids may repeat across installations), or ours not known yet
    if owner == runner:
        return None if detail_id in held else "this runner no longer runs it"
    state = known.get(detail_id)
    if state is None:
        if installation and labelled == installation:
            return "its execution is no longer known (its result was deleted)"
        return None  # perhaps another installation's
    if state["status"] in st.ACTIVE and str(state["attempt"]) == labels.get(f"{LABEL}.attempt") \
            and state["runner"] == owner:
        return None
    return f"it is now {state['status']}, attempt {state['attempt']}, held by {state['runner']}"
