"""What every fault test checks once the system has recovered, and the tools to look.

The witness of what really ran is the Docker engine itself: every container
a runner starts carries the labels ``stevedore.result_id``,
``stevedore.detail_id``, ``stevedore.attempt`` and ``stevedore.runner``, and
the engine's event log lists each ``start``.
"""
import collections
import subprocess
import time

import requests

from tests.support import containers_of, wait_until

TERMINAL = {"COMPLETE", "ERROR", "CANCELLED", "KILLED"}
LABEL = "stevedore"


# ------------------------------------------------------------------ the database

def sql(database_url, query, **params):
    """Rows of ``query`` on a connection of its own (survives a PostgreSQL restart)."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import OperationalError
    from sqlalchemy.pool import NullPool

    deadline = time.monotonic() + 30
    while True:
        engine = create_engine(database_url, poolclass=NullPool)
        try:
            with engine.connect() as conn:
                return conn.execute(text(query), params).all()
        except OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
        finally:
            engine.dispose()


# ------------------------------------------------------------------ the API

def get_json(api, path, **params):
    """GET ``path`` as JSON, or None while the API cannot answer (a fault is on)."""
    try:
        response = api.get(path, params=params or None)
    except requests.RequestException:
        return None
    return response.json() if response.status_code == 200 else None


def wait_status(api, result_id, statuses, timeout=60):
    statuses = set(statuses)

    def reached():
        result = get_json(api, f"/result/{result_id}/")
        return result if result and result["status"] in statuses else None

    return wait_until(reached, timeout=timeout, interval=0.3,
                      what=f"result {result_id} to be {'/'.join(sorted(statuses))}")


def wait_finished(api, result_id, timeout=60):
    return wait_status(api, result_id, TERMINAL, timeout)


def why_not(api, result_id):
    """The details of a run that did not end as hoped, for an assertion's message: each one's status, exit
    code and error, so a failing fault test says what went wrong and not only that it did."""
    return [{key: detail.get(key) for key in ("index", "status", "attempt", "exit_code", "reason", "attempts")}
            for detail in all_details(api, result_id) if detail["status"] != "COMPLETE"]


def wait_running(api, result_id, count=1, timeout=30):
    """Wait until ``count`` executions of the result run; returns those details."""
    def running():
        details = get_json(api, f"/result/{result_id}/detail/", status="RUNNING", limit=1000)
        return details if details and len(details) >= count else None

    return wait_until(running, timeout=timeout, interval=0.2,
                      what=f"{count} execution(s) of {result_id} to be RUNNING")


def wait_started(api, result_id, count=1, timeout=30):
    """Wait until ``count`` executions of the result have started (running or already ended).

    For short jobs on a loaded machine, where waiting for ``count`` to be RUNNING at one instant could
    miss every such instant."""
    def started():
        details = get_json(api, f"/result/{result_id}/detail/", limit=1000)
        begun = [d for d in details or () if d["status"] != "QUEUED"]
        return begun if len(begun) >= count else None

    return wait_until(started, timeout=timeout, interval=0.2,
                      what=f"{count} execution(s) of {result_id} to have started")


def all_details(api, result_id):
    details, after = [], None
    while True:
        query = {"limit": 1000, **({"after": after} if after else {})}
        page = api.get(f"/result/{result_id}/detail/", params=query)
        assert page.status_code == 200, page.text
        details.extend(page.json())
        if "Link" not in page.headers:
            return details
        after = details[-1]["detail_id"]


# ------------------------------------------------------------------ the engine

def container_starts(docker_client, result_id, since, until=None):
    """[(detail_id, attempt, runner)] for each container of the result the engine started."""
    starts = []
    for event in docker_client.events(
            since=int(since) - 1, until=int(until or time.time()) + 1, decode=True,
            filters={"type": "container", "event": "start",
                     "label": [f"{LABEL}.result_id={result_id}"]}):
        attributes = event.get("Actor", {}).get("Attributes", {})
        starts.append((attributes[f"{LABEL}.detail_id"], int(attributes[f"{LABEL}.attempt"]),
                       attributes[f"{LABEL}.runner"]))
    return starts


def remove_containers_of(docker_client, result_ids):
    for result_id in result_ids:
        for container in containers_of(docker_client, result_id):
            container.remove(force=True)


def wait_no_containers(docker_client, result_id, timeout=30):
    """Every container of the result is removed (by its runner, or as an orphan)."""
    wait_until(lambda: not containers_of(docker_client, result_id), timeout=timeout, interval=0.5,
               what=f"the containers of result {result_id} to be removed")


# ------------------------------------------------------------------ the verdict

def assert_truthful(api, docker_client, result_id, times, retries=0, since=None, starts=None):
    """The checks every fault ends with; returns the details.

    * the result ended and its counts add up to ``times``, matching its details;
    * ``times`` details with the indices 0..times-1, each ended;
    * each detail's ``attempts`` history has one entry per attempt, numbered
      1..attempt, every one but the last an ERROR that was retried, and never
      more attempts than ``retries`` allows;
    * the engine started each (detail, attempt) at most once, and no attempt
      the history does not know (``since``: when the run was submitted; or
      ``starts`` already collected);
    * no container of the result is left behind.
    """
    result = wait_finished(api, result_id)
    counts = result["counts"]
    assert counts["QUEUED"] == 0 and counts["RUNNING"] == 0, result
    assert sum(counts.values()) == times, result

    details = all_details(api, result_id)
    assert sorted(d["index"] for d in details) == list(range(times))
    tally = collections.Counter(d["status"] for d in details)
    assert {k: v for k, v in counts.items() if v} == dict(tally), (counts, tally)

    for detail in details:
        assert detail["status"] in TERMINAL, detail
        history = detail["attempts"]
        assert [a["attempt"] for a in history] == list(range(1, detail["attempt"] + 1)), detail
        assert 1 <= detail["attempt"] <= 1 + retries, detail
        assert history[-1]["status"] == detail["status"], detail
        assert all(a["status"] == "ERROR" for a in history[:-1]), detail
        if detail["start"] is not None:
            assert detail["start"] <= detail["end"], detail

    if starts is None and since is not None:
        starts = container_starts(docker_client, result_id, since)
    if starts is not None:
        by_attempt = collections.Counter((detail_id, attempt) for detail_id, attempt, _ in starts)
        twice = {key: n for key, n in by_attempt.items() if n > 1}
        assert not twice, f"started more than once: {twice}"
        known = {d["detail_id"]: d for d in details}
        for detail_id, attempt, runner in starts:
            assert detail_id in known, (detail_id, attempt)
            detail = known[detail_id]
            assert attempt <= detail["attempt"], (detail, attempt)
            assert detail["attempts"][attempt - 1]["runner"] == runner, (detail, attempt, runner)

    wait_no_containers(docker_client, result_id)
    return details


# ------------------------------------------------------------------ shared services

def run(*command, check=True, timeout=120):
    return subprocess.run(command, check=check, capture_output=True, text=True, timeout=timeout)


def wait_docker(timeout=90):
    def up():
        return run("docker", "info", check=False, timeout=20).returncode == 0

    wait_until(up, timeout=timeout, interval=1, what="dockerd to answer")
