"""A stock schemathesis run over the served /openapi.json finds nothing: no server error, no answer off the spec.

``st run`` with every phase (examples, coverage, fuzzing, stateful), both
generation modes (positive and negative) and every check, authenticated with
a token, against the isolated system of conftest.py: a READY task whose RUNs
make executions that really run (at most RUN_MAX_TIMES each), callback URLs
that are taken and attempted, image references that are pulled, all inside a
network namespace with no route out.  The report (JUnit and schemathesis'
ndjson events) and the console output go to artifacts/schemathesis/.

It takes FUZZ_SECONDS (180 by default) plus about 20 s to build the system.
Re-run alone: ``scripts/test tests/fuzz``; FUZZ_SEED=<n> repeats a run's
generation (each run prints its seed); FUZZ_EXAMPLES=<n> sets the examples per
operation and phase; FUZZ_ARGS adds ``st run`` options (e.g.
``--continue-on-failure`` to see every failure of an operation, not its first).
"""
import errno
import os
import re
import shlex
import subprocess
import sys
import time

import pytest

from tests.support import ARTIFACTS

pytestmark = pytest.mark.e2e

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES") or 100)  # per operation, phase and cycle
# the run's budget: schemathesis repeats its fuzzing and stateful phases until it is spent
SECONDS = int(os.environ.get("FUZZ_SECONDS") or 180)
REPORTS = os.path.join(ARTIFACTS, "schemathesis")
FAILURE_LINE = re.compile(r"\d{4}-\d\d-\d\d \S+ (ERROR|CRITICAL) |Traceback ")  # config.yml's log format

CONFIG = """\
# Written by tests/fuzz/test_schemathesis.py for one run.
# the team an admin acts for or filters by must exist (a 400 naming X-Stevedore-Team or team otherwise), which JSON Schema cannot
# state, as for ids: the header names the system's team (every operation; those with parameters of their own
# name it again below)
parameters = {{ "header.X-Stevedore-Team" = "default", "query.team" = "default" }}

[dictionaries]
ready-task = {{ values = ["{task_id}"] }}
ready-image = {{ values = ["{reference}"] }}
ended-result = {{ values = ["{result_id}"] }}
its-executions = {{ values = [{detail_ids}] }}
# a name the namespace cannot resolve, a name /etc/hosts makes loopback (refused at delivery), a literal
# loopback address (refused at the RUN): none of them leads anywhere
callback-urls = {{ values = ["http://hooks.example.com/stevedore", "https://localhost/hook", "http://127.0.0.1:5672/"] }}

# half of the generated RUNs name the READY task, so executions are made and run.  A RUN has rules across
# its fields and other resources that JSON Schema cannot state (after[i].result_id names a result that
# exists; per_index pairs runs of equal times; times equals the items' count; a matrix's product is at
# most RUN_MAX_TIMES): a schema-valid RUN may be a 400 naming the field; every other check stays
[[operations]]
include-path = "/task/{{task_id}}/"
include-method = "POST"
parameters = {{ "path.task_id" = {{ dictionary = "ready-task", probability = 0.5 }}, "body.callback_url" = {{ dictionary = "callback-urls", probability = 0.3 }}, "header.X-Stevedore-Team" = "default", "query.team" = "default" }}
checks = {{ positive_data_acceptance = {{ expected-statuses = ["2xx", "3xx", "400", "401", "403", "404", "409", "429"] }} }}

# some registrations name the image that is there, so tasks generated in the stateful phase become READY
[[operations]]
include-path = "/task/"
include-method = "POST"
parameters = {{ "body.repository" = {{ dictionary = "ready-image", probability = 0.3 }}, "header.X-Stevedore-Team" = "default", "query.team" = "default" }}

# a cron expression has rules JSON Schema cannot state (each field's bounds, ranges in order, a date that
# exists: "0 0 30 2 *" never fires): a schema-valid schedule may be a 400 naming `cron`; as for a RUN, its
# `run` has rules across fields.  Every other check stays
[[operations]]
include-path-regex = "^/schedule/"
include-method = ["POST", "PATCH"]
checks = {{ positive_data_acceptance = {{ expected-statuses = ["2xx", "3xx", "400", "401", "403", "404", "409", "429"] }} }}

# reads, reruns and cancels of a result that exists, and of its executions (not its DELETE: others use it)
[[operations]]
include-path-regex = "^/result/[{{]result_id[}}]/."
parameters = {{ "path.result_id" = {{ dictionary = "ended-result", probability = 0.5 }}, "path.detail_id" = {{ dictionary = "its-executions", probability = 0.5 }}, "header.X-Stevedore-Team" = "default", "query.team" = "default" }}

[[operations]]
include-path = "/result/{{result_id}}/"
include-method = ["GET", "POST"]
parameters = {{ "path.result_id" = {{ dictionary = "ended-result", probability = 0.5 }}, "header.X-Stevedore-Team" = "default", "query.team" = "default" }}
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
    assert isolated.result["status"] == "COMPLETE", isolated.result
    assert [e["status"] for e in isolated.details] == ["COMPLETE", "COMPLETE"], isolated.details
    assert len(isolated.starts) == 2, isolated.starts
    refused = api.post(f"/task/{isolated.task['task_id']}/", {"operation": "RUN", "times": 4})
    assert refused.status_code == 400 and "times" in refused.json()["message"], refused.text


def test_a_callback_url_the_fuzz_names_is_attempted_from_inside_and_goes_nowhere(isolated):
    from tests.support import wait_until

    api = isolated.api
    result_id = api.run(isolated.task["task_id"], callback_url="http://hooks.example.com/stevedore")

    def attempted():
        webhook = api.get(f"/result/{result_id}/").json()["webhook"]
        return webhook if webhook["deliveries"] else None

    # the name cannot even be resolved (no resolver can be reached from inside): unreachable
    webhook = wait_until(attempted, timeout=60, what="a delivery attempt")
    assert webhook["deliveries"][0]["outcome"] == "unreachable", webhook


def test_stock_schemathesis_run_finds_no_failure(isolated):
    system, task = isolated.system, isolated.task
    os.makedirs(REPORTS, exist_ok=True)
    config = os.path.join(REPORTS, "schemathesis.toml")
    with open(config, "w") as fh:
        fh.write(CONFIG.format(task_id=task["task_id"], reference=isolated.reference,
                               result_id=isolated.result["result_id"],
                               detail_ids=", ".join(f'"{d["detail_id"]}"' for d in isolated.details)))
    command = [os.path.join(os.path.dirname(sys.executable), "st"), "--config-file", config,
               "run", f"{system.url}/openapi.json",
               "--phases", "examples,coverage,fuzzing,stateful", "--mode", "all", "--checks", "all",
               "--header", f"Authorization: Bearer {system.token}",
               "--max-examples", str(EXAMPLES), "--max-time", str(SECONDS), "--request-timeout", "30",
               "--generation-database", "none", "--no-color",
               "--report", "junit,ndjson", "--report-junit-path", os.path.join(REPORTS, "junit.xml"),
               "--report-ndjson-path", os.path.join(REPORTS, "events.ndjson")]
    if os.environ.get("FUZZ_SEED"):
        command += ["--seed", os.environ["FUZZ_SEED"]]
    command += shlex.split(os.environ.get("FUZZ_ARGS", ""))  # e.g. --continue-on-failure
    since = int(time.time())
    logs_at = {label: os.path.getsize(log_path(system, label)) for label in system.procs}
    run = subprocess.run(command, capture_output=True, text=True, timeout=SECONDS + 300, cwd=REPORTS,
                         env={**os.environ, "NO_COLOR": "1"})
    with open(os.path.join(REPORTS, "output.txt"), "w") as fh:
        fh.write(run.stdout + run.stderr)
    assert run.returncode == 0, (f"schemathesis found failures (exit {run.returncode}); all of it in "
                                 f"{REPORTS}/output.txt:\n{run.stdout[-6000:]}{run.stderr[-2000:]}")
    # nor did any service fail behind the answers (a worker's error, an unanswered event)
    failed = [f"{label}: {line}" for label, at in logs_at.items() for line in log_since(system, label, at)
              if FAILURE_LINE.match(line)]
    assert not failed, f"{len(failed)} error lines in the services' logs during the run:\n" + "\n".join(failed[:20])
    # the system is still whole: it answers and lists; and the generated RUNs of the READY task ran
    # executions: containers started on the namespace's engine during the run (what is listed after it
    # tells nothing: the stateful phase deletes the results it made, and may delete the task)
    assert isolated.api.get("/health/").status_code == 200
    assert isolated.api.get("/task/", params={"limit": 1000}).status_code == 200
    assert isolated.api.get("/result/", params={"limit": 1000}).status_code == 200
    starts = isolated.engine.client.events(since=since, until=int(time.time()) + 1, decode=True,
                                           filters={"type": "container", "event": "start",
                                                    "label": "stevedore.managed=true"})
    assert len(list(starts)) > 0


def log_path(system, label):
    return os.path.join(system.log_dir, f"{label}.log")


def log_since(system, label, offset):
    with open(log_path(system, label), errors="replace") as fh:
        fh.seek(offset)
        return fh.read().splitlines()
