"""stevedore runner ls: the runners the scheduler heard from; and run's --constraint / --gpus."""
from stevedore_jobs.cli.session import CELL_WIDTH
from stevedore_jobs.display import UsageError, format_table, format_time


def add_commands(commands, command):
    """The ``runner`` command and its subcommands (``command(group, name, handler, help)`` adds one)."""
    runner = commands.add_parser("runner", help="list the runners: labels, slots, GPUs, last heartbeat")
    group = runner.add_subparsers(dest="runner_command", metavar="COMMAND", required=True)
    sub = command(group, "ls", runner_ls, "list the runners the scheduler heard from, by id (LIVE or LOST)")
    sub.add_argument("--status", type=str.upper, choices=("LIVE", "LOST"), help="only runners in this status")


def add_run_options(sub):
    """``stevedore run``'s options for where its executions may run."""
    sub.add_argument("--constraint", action="append", metavar="KEY=VALUE", dest="constraint",
                     help="a runner label its executions need (repeatable: all of them); only runners whose "
                          "RUNNER_LABELS have it claim them")
    sub.add_argument("--gpus", type=int, metavar="N", help="GPUs each execution gets, its own")


def parse_constraints(items):
    """``--constraint`` values to a RUN's ``constraints`` (None without); the API checks the words."""
    if not items:
        return None
    constraints = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not key or not sep:
            raise UsageError(f"--constraint: expected KEY=VALUE, got {item!r}")
        constraints[key] = value
    return constraints


def labels_text(labels):
    return ",".join(f"{key}={value}" for key, value in (labels or {}).items()) or None


def runner_ls(cli, args):
    params = {"status": args.status} if args.status else {}
    runners = list(cli.api.pages("/runner/", "runner_id", params))
    if cli.json:
        cli.print_json(runners)
        return
    rows = [(r["runner_id"], r["status"], labels_text(r.get("labels")),
             f"{r.get('busy') if r.get('busy') is not None else '?'}/{r.get('slots') or '?'}",
             f"{r.get('gpus_free')}/{len(r['gpus'])} ({','.join(r['gpus'])})" if r.get("gpus") else None,
             format_time(r.get("last_heartbeat")), r.get("engine"))
            for r in runners]
    cli.print(format_table(("ID", "STATUS", "LABELS", "BUSY", "GPUS FREE", "LAST HEARTBEAT", "ENGINE"), rows,
                           CELL_WIDTH))
