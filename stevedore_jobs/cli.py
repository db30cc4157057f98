"""stevedore: register tasks, run them, and see what happened, from a shell.

Talks to the HTTP API at $STEVEDORE_URL (default http://127.0.0.1:8000) with
$STEVEDORE_TOKEN as a bearer token; --url and --token override them.  Tables
for people, --json for scripts.  Exit status: 0 on success, 1 when something
failed (an execution, an import, the server), 2 for a mistake in the request.
"""
import argparse
import json
import os
import sys
import time

from stevedore_jobs.client import (DEFAULT_URL, RUN_FIELDS, STREAMS, ApiError, CliError, Client,
                                   Unreachable, log_chunk, split_lines, sse_events)
from stevedore_jobs.contract.run import PRIORITY_DEFAULT, PRIORITY_MAX
from stevedore_jobs.contract import statuses as st
from stevedore_jobs.display import (Progress, UsageError, finished_count, format_counts,
                               format_duration, format_fields, format_table, format_time,
                               one_line, output_text, parse_env, shown_output)

POLL_INTERVAL = 0.5
# how long a wait rides out an API that cannot be reached (a gateway restarting)
OUTAGE_GRACE = 60.0
SHOW_LIMIT = 100
FAILURES_SHOWN = 20
CELL_WIDTH = 60
EXIT_INTERRUPTED = 130


def _version():
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("stevedore-jobs")
    except PackageNotFoundError:
        return "dev"


class Cli:
    """What every command needs: the API, how to print, and whether to print JSON."""

    def __init__(self, args):
        self.json = args.json
        self.out = sys.stdout
        self.err = sys.stderr
        url = args.url or os.environ.get("STEVEDORE_URL") or DEFAULT_URL
        token = args.token if args.token is not None else os.environ.get("STEVEDORE_TOKEN")
        self.api = Client(url, token or None, user_agent=f"stevedore-cli/{_version()}")

    def print(self, text=""):
        print(text, file=self.out)

    def note(self, text):
        print(one_line(text), file=self.err, flush=True)

    def print_json(self, value):
        print(json.dumps(value, indent=2, ensure_ascii=False), file=self.out)

    def write(self, stream, text):
        target = self.err if stream == "stderr" else self.out
        target.write(text)
        target.flush()

    def poll(self, path):
        """GET for wait loops: rides out an unreachable or unavailable API for OUTAGE_GRACE seconds."""
        lost_since = None
        while True:
            try:
                return self.api.get(path)
            except (Unreachable, ApiError) as exc:
                if isinstance(exc, ApiError) and exc.status not in (502, 503, 504):
                    raise
                now = time.monotonic()
                if lost_since is None:
                    lost_since = now
                    self.note(f"stevedore: {exc}; retrying for {OUTAGE_GRACE:g}s")
                elif now - lost_since > OUTAGE_GRACE:
                    raise
                time.sleep(1.0)


# ---------------------------------------------------------------- tasks

def task_fields(task):
    return [("id", task["task_id"]), ("name", task["name"]), ("repository", task["repository"]),
            ("status", task["status"]), ("error", task.get("error")), ("digest", task.get("digest")),
            ("created", format_time(task.get("created_at"))),
            ("imported", format_time(task["imported_at"]) if task.get("imported_at") else None)]


def task_add(cli, args):
    body = {"repository": args.repository}
    if args.name is not None:
        body["name"] = args.name
    task = cli.api.post("/task/", body)
    if args.wait:
        task = wait_task(cli, task)
    if cli.json:
        cli.print_json(task)
    else:
        cli.print(format_fields(task_fields(task)))
    if task["status"] == st.ERROR:
        raise CliError(f"task {task['name']} is ERROR: {task.get('error') or 'no reason given'}")


def wait_task(cli, task):
    shown = None
    while task["status"] not in (st.READY, st.ERROR):
        if task["status"] != shown:
            cli.note(f"task {task['name']}: {task['status']}")
            shown = task["status"]
        time.sleep(POLL_INTERVAL)
        task = cli.poll(f"/task/{task['task_id']}/")
    return task


def task_ls(cli, args):
    params = {"status": args.status.upper()} if args.status else {}
    tasks = list(cli.api.pages("/task/", "task_id", params))
    if cli.json:
        cli.print_json(tasks)
        return
    rows = [(t["task_id"], t["name"], t["status"], t["repository"], format_time(t.get("created_at")))
            for t in tasks]
    cli.print(format_table(("ID", "NAME", "STATUS", "REPOSITORY", "CREATED"), rows, CELL_WIDTH))


def task_show(cli, args):
    task = cli.api.find_task(args.task)
    if cli.json:
        cli.print_json(task)
    else:
        cli.print(format_fields(task_fields(task)))


def task_import(cli, args):
    task = cli.api.find_task(args.task)
    task = cli.api.post(f"/task/{task['task_id']}/", {"operation": "IMPORT"})
    if args.wait:
        task = wait_task(cli, task)
    if cli.json:
        cli.print_json(task)
    else:
        cli.print(format_fields(task_fields(task)))
    if task["status"] == st.ERROR:
        raise CliError(f"task {task['name']} is ERROR: {task.get('error') or 'no reason given'}")


def task_rm(cli, args):
    task = cli.api.find_task(args.task)
    cli.api.request("DELETE", f"/task/{task['task_id']}/").close()
    if cli.json:
        cli.print_json({"task_id": task["task_id"], "deleted": True})
    else:
        cli.print(f"deleted task {task['name']} ({task['task_id']})")


# ---------------------------------------------------------------- running

# the RUN's fields given as options of their own (env is --env KEY=VALUE; callback_url is left to the API)
RUN_OPTIONS = tuple(name for name in RUN_FIELDS if name not in ("env", "callback_url"))


def run(cli, args):
    env = parse_env(args.env)
    task = cli.api.find_task(args.task)
    body = {"operation": "RUN", "times": args.times}
    if env:
        body["env"] = env
    body.update({name: getattr(args, name) for name in RUN_OPTIONS if getattr(args, name) is not None})
    result = cli.api.post(f"/task/{task['task_id']}/", body)
    return finish_run(cli, args, result)


def finish_run(cli, args, result):
    """Print a started run's id, or with --wait follow it to its end (exit 1 unless all completed)."""
    if not args.wait:
        if cli.json:
            cli.print_json(result)
        else:
            cli.print(result["result_id"])
        return 0
    result = wait_result(cli, result)
    if cli.json:
        cli.print_json(result)
    else:
        cli.print(format_fields(result_fields(result)))
        failed = failures(cli, result)
        if failed:
            cli.print()
            cli.print(details_table(failed))
    if result["status"] != st.COMPLETE:
        missing = result["times"] - result["counts"].get(st.COMPLETE, 0)
        raise CliError(f"result {result['result_id']} is {result['status']}: "
                       f"{missing} of {result['times']} executions did not complete")
    return 0


def rerun(cli, args):
    result = cli.api.post(f"/result/{args.result}/", {"operation": "RERUN_FAILED"})
    return finish_run(cli, args, result)


def wait_result(cli, result):
    """Poll the result until it ends, showing its progress on stderr."""
    result_id = result["result_id"]
    progress = Progress(cli.err)
    try:
        while result["status"] not in st.TERMINAL:
            progress.update(result["counts"], result["times"])
            time.sleep(POLL_INTERVAL)
            result = cli.poll(f"/result/{result_id}/")
    except KeyboardInterrupt:
        progress.close()
        raise CliError(f"stopped waiting; result {result_id} goes on "
                       f"(stevedore cancel {result_id} stops it)", EXIT_INTERRUPTED) from None
    progress.close(result["counts"], result["times"])
    return result


def failures(cli, result):
    """Up to FAILURES_SHOWN executions of a finished result that did not complete."""
    found = []
    for status in (st.ERROR, st.KILLED, st.CANCELLED):
        if result["counts"].get(status) and len(found) < FAILURES_SHOWN:
            found += cli.api.pages(f"/result/{result['result_id']}/detail/", "detail_id",
                                   {"status": status}, limit=FAILURES_SHOWN - len(found))
    return sorted(found, key=lambda d: d["index"])


# ---------------------------------------------------------------- results

def result_fields(result):
    params = {key: value for key, value in (result.get("params") or {}).items()
              if value not in (None, {}) and key != "times"}
    return [
        ("result", result["result_id"]),
        ("task", f"{result.get('task_name') or '?'} ({result['task_id']})"),
        ("status", result["status"] + (" (cancel requested)" if result.get("cancel_requested")
                                       and result["status"] not in st.TERMINAL else "")),
        ("executions", f"{finished_count(result['counts'])}/{result['times']} finished: "
                       f"{format_counts(result['counts'])}"),
        ("submitted", format_time(result.get("submitted_at"))),
        ("started", format_time(result.get("start"))),
        ("ended", format_time(result.get("end"))),
        ("duration", format_duration(result.get("duration"))),
        ("image", result.get("image")),
        ("params", " ".join(f"{key}={json.dumps(value)}" for key, value in sorted(params.items()))
         or None),
    ]


def details_table(details):
    rows = [(d["index"], d["detail_id"], d["status"], d.get("exit_code"), d.get("attempt"),
             d.get("runner"), format_time(d.get("start")), format_duration(d.get("duration")),
             d.get("reason"))
            for d in details]
    return format_table(("INDEX", "DETAIL_ID", "STATUS", "EXIT", "ATTEMPT", "RUNNER", "STARTED",
                         "DURATION", "REASON"), rows, CELL_WIDTH)


def result_ls(cli, args):
    params = {}
    if args.status:
        params["status"] = args.status.upper()
    if args.task:
        params["task_id"] = cli.api.find_task(args.task)["task_id"]
    results = list(cli.api.pages("/result/", "result_id", params, limit=args.limit or None))
    if cli.json:
        cli.print_json(results)
        return
    rows = [(r["result_id"], r.get("task_name"), r["status"],
             f"{finished_count(r['counts'])}/{r['times']}", format_time(r.get("submitted_at")),
             format_duration(r.get("duration")))
            for r in results]
    cli.print(format_table(("ID", "TASK", "STATUS", "DONE", "SUBMITTED", "DURATION"), rows, CELL_WIDTH))


def result_show(cli, args):
    result = cli.api.get(f"/result/{args.result}/")
    params = {"status": args.status.upper()} if args.status else {}
    details = list(cli.api.pages(f"/result/{args.result}/detail/", "detail_id", params,
                                 limit=args.limit or None))
    if cli.json:
        cli.print_json({**result, "executions": details})
        return
    cli.print(format_fields(result_fields(result)))
    cli.print()
    cli.print(details_table(details))
    total = result["counts"].get(params["status"], 0) if params else result["times"]
    if len(details) < total:
        cli.note(f"({total - len(details)} more executions; --limit 0 shows them all)")


# ---------------------------------------------------------------- logs

def logs(cli, args):
    if args.raw and args.follow:
        raise UsageError("--raw prints the output kept so far; it cannot --follow")
    if args.stream and not args.raw:
        raise UsageError("--stream chooses what --raw prints; without --raw both streams are printed")
    detail_id = cli.api.find_detail_id(args.result, args.detail)
    path = f"/result/{args.result}/detail/{detail_id}/logs/"
    if args.raw:
        return raw_logs(cli, path, args.stream or "stdout")
    if args.follow:
        return follow_logs(cli, path)
    output = cli.api.get(path)
    if cli.json:
        cli.print_json(output)
        return
    for stream in STREAMS:
        cli.write(stream, output_text(output, stream))
        if output.get(f"{stream}_truncated") and f"{stream}_omitted" not in output:  # an older server
            cli.note(f"stevedore: the {stream} shown is its end only; the start was not kept")
    if output.get("status") not in st.TERMINAL:
        cli.note(f"stevedore: execution is {output.get('status')}; its output is kept when it ends "
                 "(--follow waits for it)")


def raw_logs(cli, path, stream):
    """Write one stream's kept bytes, exactly, to stdout (GET .../logs/stdout/)."""
    response = cli.api.request("GET", f"{path}{stream}/", headers={"Accept": "application/octet-stream"},
                               stream=True)
    with response:
        out = cli.out.buffer
        for chunk in response.iter_content(chunk_size=64 * 1024):
            out.write(chunk)
        out.flush()
    omitted = int(response.headers.get("Stevedore-Omitted-Bytes") or 0)
    if omitted:
        cli.note(f"stevedore: {omitted} bytes of {stream} were not kept: they came after its first "
                 f"{response.headers.get('Stevedore-Head-Bytes')} bytes")
    status = response.headers.get("Stevedore-Status")
    if status and status not in st.TERMINAL:
        cli.note(f"stevedore: execution is {status}; this is its output so far")


def follow_logs(cli, path):
    """Stream the output as it comes (server-sent events), or poll until the execution ends."""
    response = cli.api.request("GET", path, params={"follow": "true"},
                               headers={"Accept": "text/event-stream"}, stream=True,
                               timeout=(10, None))
    if cli.json:
        def emit(stream, text):
            print(json.dumps({"stream": stream, "text": text}, ensure_ascii=False),
                  file=cli.out, flush=True)
    else:
        def emit(stream, text):
            cli.write(stream, shown_output(text))

    if response.headers.get("Content-Type", "").startswith("text/event-stream"):
        with response:
            for event, data in sse_events(split_lines(response.iter_content(chunk_size=None))):
                chunk = log_chunk(event, data)
                if chunk is None:
                    continue
                if chunk[0] == "end":
                    return
                emit(*chunk)
        status = cli.api.get(path).get("status")
        if status not in st.TERMINAL:
            raise CliError(f"the log stream closed before the execution ended (it is {status})")
        return

    # no live logs on this server: the plain endpoint, until the execution ends
    output = cli.api.json(response)
    if output.get("status") not in st.TERMINAL and cli.err.isatty():
        cli.note("stevedore: this server keeps an execution's output when it ends; waiting for that")
    printed = {stream: "" for stream in STREAMS}
    while True:
        for stream in STREAMS:
            text = output.get(stream) or ""
            # a retry starts its output anew
            new = text[len(printed[stream]):] if text.startswith(printed[stream]) else text
            if new:
                emit(stream, new)
            printed[stream] = text
        if output.get("status") in st.TERMINAL:
            return
        time.sleep(POLL_INTERVAL)
        output = cli.poll(path)


def result_rm(cli, args):
    cli.api.request("DELETE", f"/result/{args.result}/").close()
    if cli.json:
        cli.print_json({"result_id": args.result, "deleted": True})
    else:
        cli.print(f"deleted result {args.result} with its executions and their output")


def cancel(cli, args):
    if args.detail is not None:
        detail_id = cli.api.find_detail_id(args.result, args.detail)
        path, what = f"/result/{args.result}/detail/{detail_id}/", f"execution {detail_id}"
    else:
        path, what = f"/result/{args.result}/", f"result {args.result}"
    answer = cli.api.post(path, {"operation": "CANCEL"})
    if cli.json:
        cli.print_json(answer)
        return
    status = answer.get("status") if isinstance(answer, dict) else None
    cli.print(f"cancel requested for {what}" + (f" (now {status})" if status else ""))


# ---------------------------------------------------------------- parsing

class Parser(argparse.ArgumentParser):
    """Usage mistakes in one line on stderr, exit status 2."""

    def error(self, message):
        self.exit(2, f"stevedore: {message} (see {self.prog} --help)\n")


def count(text):
    """An argument that is a whole number, 0 or more."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number, 0 or more, got {text!r}")
    return value


def _global_options(parser, defaults):
    """--url, --token, --json: accepted before and after the command."""
    default = (lambda value: value) if defaults else (lambda value: argparse.SUPPRESS)
    parser.add_argument("--url", default=default(None),
                        help=f"API base URL (default: $STEVEDORE_URL or {DEFAULT_URL})")
    parser.add_argument("--token", default=default(None),
                        help="bearer token (default: $STEVEDORE_TOKEN)")
    parser.add_argument("--json", action="store_true", default=default(False),
                        help="print JSON for scripts instead of tables")


def build_parser():
    parser = Parser(prog="stevedore", description=__doc__,
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"stevedore {_version()}")
    _global_options(parser, defaults=True)
    common = argparse.ArgumentParser(add_help=False)
    _global_options(common, defaults=False)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(group, name, handler, help_text):
        sub = group.add_parser(name, parents=[common], help=help_text, description=help_text)
        sub.set_defaults(handler=handler)
        return sub

    task = commands.add_parser("task", help="register, list and show tasks")
    task_commands = task.add_subparsers(dest="task_command", metavar="COMMAND", required=True)
    sub = command(task_commands, "add", task_add, "register a task: its image is pulled and pinned")
    sub.add_argument("repository", metavar="REPOSITORY", help="image reference, e.g. registry:5000/team/app:1.0")
    sub.add_argument("--name", help="unique name for the task (default: the repository)")
    sub.add_argument("--wait", action="store_true",
                     help="wait until the task is READY or ERROR; exit 1 on ERROR")
    sub = command(task_commands, "ls", task_ls, "list tasks, newest first")
    sub.add_argument("--status", help=f"only tasks in this status ({', '.join(st.TASK_STATUSES)})")
    sub = command(task_commands, "show", task_show, "show one task")
    sub.add_argument("task", metavar="ID_OR_NAME")
    sub = command(task_commands, "import", task_import,
                  "pull the task's image again and pin its new digest (running executions keep theirs)")
    sub.add_argument("task", metavar="ID_OR_NAME")
    sub.add_argument("--wait", action="store_true",
                     help="wait until the task is READY or ERROR; exit 1 on ERROR")
    sub = command(task_commands, "rm", task_rm, "delete a task that has no active runs (its results stay)")
    sub.add_argument("task", metavar="ID_OR_NAME")

    sub = command(commands, "run", run, "run a task's image a number of times")
    sub.add_argument("task", metavar="NAME_OR_ID")
    sub.add_argument("--times", type=int, default=1, metavar="N", help="executions to run (default 1)")
    sub.add_argument("--env", action="append", metavar="KEY=VALUE",
                     help="environment variable for the containers (repeatable); KEY alone passes "
                          "this shell's value")
    sub.add_argument("--command", help="command instead of the image's default")
    sub.add_argument("--timeout", type=float, metavar="SECONDS",
                     help="stop an execution running longer than this")
    sub.add_argument("--parallelism", type=int, metavar="N", help="run at most N executions at once")
    sub.add_argument("--retries", type=int, metavar="N", help="retry a failed execution up to N times")
    sub.add_argument("--priority", type=int, metavar="P",
                     help=f"0 (lowest) to {PRIORITY_MAX} (highest); default {PRIORITY_DEFAULT}")
    sub.add_argument("--memory", metavar="SIZE", help='memory limit per container, e.g. "256m"')
    sub.add_argument("--cpus", type=float, help="CPUs per container, e.g. 0.5")
    sub.add_argument("--wait", action="store_true",
                     help="show progress until the run ends; exit 1 unless every execution completed")

    result = commands.add_parser("result", help="list, show and delete results of runs")
    result_commands = result.add_subparsers(dest="result_command", metavar="COMMAND", required=True)
    sub = command(result_commands, "ls", result_ls, "list results, newest first")
    sub.add_argument("--status", help=f"only results in this status ({', '.join(st.EXECUTION_STATUSES)})")
    sub.add_argument("--task", metavar="NAME_OR_ID", help="only results of this task")
    sub.add_argument("--limit", type=count, default=20, metavar="N", help="show N at most (default 20; 0: all)")
    sub = command(result_commands, "show", result_show, "show a result and a table of its executions")
    sub.add_argument("result", metavar="ID")
    sub.add_argument("--status", help=f"only executions in this status ({', '.join(st.EXECUTION_STATUSES)})")
    sub.add_argument("--limit", type=count, default=SHOW_LIMIT, metavar="N",
                     help=f"executions to list at most (default {SHOW_LIMIT}; 0: all)")

    sub = command(result_commands, "rm", result_rm,
                  "delete a result that ended, with its executions and their output")
    sub.add_argument("result", metavar="ID")

    sub = command(commands, "logs", logs, "print an execution's output (stdout, then stderr)")
    sub.add_argument("result", metavar="RESULT")
    sub.add_argument("detail", metavar="DETAIL", help="a detail id, or the execution's index (0, 1, ...)")
    sub.add_argument("--follow", "-f", action="store_true", help="print the output as it comes until the end")
    sub.add_argument("--raw", action="store_true",
                     help="write one stream's kept bytes exactly as the job wrote them (stdout by default)")
    sub.add_argument("--stream", choices=STREAMS, help="with --raw: the stream to write (default stdout)")

    sub = command(commands, "rerun", rerun,
                  "run again, as a new result, the executions of a result that ended ERROR or KILLED")
    sub.add_argument("result", metavar="RESULT")
    sub.add_argument("--wait", action="store_true",
                     help="show progress until the rerun ends; exit 1 unless every execution completed")

    sub = command(commands, "cancel", cancel, "cancel a result's executions (or one of them)")
    sub.add_argument("result", metavar="RESULT")
    sub.add_argument("--detail", metavar="DETAIL", help="cancel this execution only (detail id or index)")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        code = args.handler(Cli(args), args) or 0
        sys.stdout.flush()  # here, so a closed pipe is caught below
        return code
    except UsageError as exc:
        print(f"stevedore: {exc}", file=sys.stderr)
        return 2
    except CliError as exc:
        print(f"stevedore: {one_line(exc)}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # the reader went away (stevedore result ls | head): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
