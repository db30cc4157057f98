"""A stock schemathesis run over the served /openapi.json finds nothing: no server error, no answer off the spec.

``st run`` with every phase (examples, coverage, fuzzing, stateful), both
generation modes (positive and negative) and every check, authenticated with
a token, against the isolated system of conftest.py: a READY task whose RUNs
make executions that really run (at most RUN_MAX_TIMES each), callback URLs
that are taken and attempted, image references that are pulled, all inside a
network namespace with no route out.  The report (JUnit and schemathesis'
ndjson events) and the console output go to artifacts/schemathesis/.

Re-run alone: ``scripts/test tests/fuzz``; FUZZ_SEED=<n> repeats a run's
generation (each run prints its seed), FUZZ_EXAMPLES=<n> sets the examples per
operation and phase.
"""
import errno
import os
import subprocess
import sys

import pytest

from tests.support import ARTIFACTS

pytestmark = pytest.mark.e2e

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES") or 25)
TIME_LIMIT = 900  # seconds; the run takes about ... (see docs/testing.md)
REPORTS = os.path.join(ARTIFACTS, "schemathesis")

CONFIG = """\
# Written by tests/fuzz/test_schemathesis.py for one run.
[dictionaries]
ready-task = {{ values = ["{task_id}"] }}
ready-image = {{ values = ["{reference}"] }}

# half of the generated RUNs name the READY task, so executions are made and run
[[operations]]
include-path = "/task/{{task_id}}/"
include-method = "POST"
parameters = {{ "path.task_id" = {{ dictionary = "ready-task", probability = 0.5 }} }}

# some registrations name the image that is there, so tasks generated in the stateful phase become READY
[[operations]]
include-path = "/task/"
include-method = "POST"
parameters = {{ "body.repository" = {{ dictionary = "ready-image", probability = 0.3 }} }}
"""

CONNECT = """\
import errno, socket, sys
family = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
with socket.socket(family, socket.SOCK_STREAM) as sock:
    sock.settimeout(2)
    try:
        sock.connect((sys.argv[1], 80))
    except OSError as exc:
        print(errno.errorcode.get(exc.errno, exc.errno))
    else:
        print("CONNECTED")
"""


def test_the_isolated_services_and_their_engine_have_no_route_off_this_machine(isolated):
    namespace = isolated.namespace
    inside = set(namespace.pids())
    for label in ("registry", "scheduler", "runner-1"):
        assert isolated.system.procs[label].pid in inside, f"{label} runs outside {namespace.name}"
    assert isolated.engine.proc.pid in inside
    assert isolated.system.procs["gateway"].pid not in inside
    # the namespace's routes: its loopback's own, no default, nothing to any other address
    for family in ("-4", "-6"):
        routes = namespace.run("ip", family, "route", "show", "table", "all").stdout
        assert "default" not in routes, routes
        assert all(" dev lo " in f" {line} " for line in routes.splitlines()), routes
    # a connect to a documentation address (TEST-NET-1, 2001:db8::/32) fails in the kernel
    # at once, for want of a route: nothing is sent anywhere
    for address in ("192.0.2.1", "2001:db8::1"):
        outcome = namespace.run(sys.executable, "-c", CONNECT, address).stdout.strip()
        assert outcome == errno.errorcode[errno.ENETUNREACH], f"connect to {address} from inside: {outcome}"


def test_a_run_of_the_ready_task_really_runs_in_the_isolated_engine(isolated):
    api = isolated.api
    result = api.wait_result(api.run(isolated.task["task_id"], times=2))
    assert result["status"] == "COMPLETE", result
    executions = api.details(result["result_id"])
    assert [e["status"] for e in executions] == ["COMPLETE", "COMPLETE"], executions
    refused = api.post(f"/task/{isolated.task['task_id']}/", {"operation": "RUN", "times": 4})
    assert refused.status_code == 400 and "times" in refused.json()["message"], refused.text


def test_stock_schemathesis_run_finds_no_failure(isolated):
    system, task = isolated.system, isolated.task
    os.makedirs(REPORTS, exist_ok=True)
    config = os.path.join(REPORTS, "schemathesis.toml")
    with open(config, "w") as fh:
        fh.write(CONFIG.format(task_id=task["task_id"], reference=isolated.reference))
    command = [os.path.join(os.path.dirname(sys.executable), "st"), "--config-file", config,
               "run", f"{system.url}/openapi.json",
               "--phases", "examples,coverage,fuzzing,stateful", "--mode", "all", "--checks", "all",
               "--header", f"Authorization: Bearer {system.token}",
               "--max-examples", str(EXAMPLES), "--request-timeout", "30",
               "--generation-database", "none", "--no-color",
               "--report", "junit,ndjson", "--report-dir", REPORTS]
    if os.environ.get("FUZZ_SEED"):
        command += ["--seed", os.environ["FUZZ_SEED"]]
    run = subprocess.run(command, capture_output=True, text=True, timeout=TIME_LIMIT, cwd=REPORTS,
                         env={**os.environ, "NO_COLOR": "1"})
    with open(os.path.join(REPORTS, "output.txt"), "w") as fh:
        fh.write(run.stdout + run.stderr)
    assert run.returncode == 0, (f"schemathesis found failures (exit {run.returncode}); all of it in "
                                 f"{REPORTS}/output.txt:\n{run.stdout[-6000:]}{run.stderr[-2000:]}")
    # the system is still whole: it answers, and the READY task's generated RUNs made executions that ran
    assert isolated.api.get("/health/").status_code == 200
    listed = isolated.api.get("/result/", params={"task_id": task["task_id"], "limit": 100})
    assert listed.status_code == 200, listed.text
    assert any(result["status"] == "COMPLETE" for result in listed.json()), listed.json()
