"""stevedore schedule add / ls / show / suspend / resume / run / rm: a task RUN on a cron schedule."""
from stevedore_jobs.cli import runners
from stevedore_jobs.cli.params import per_execution
from stevedore_jobs.cli.labels import add_label_option, parse_labels
from stevedore_jobs.cli.runs import RUN_OPTIONS, finish_run
from stevedore_jobs.cli.secrets import add_run_option, parse_secret_env
from stevedore_jobs.cli.session import CELL_WIDTH
from stevedore_jobs.contract.run import PRIORITY_DEFAULT, PRIORITY_MAX
from stevedore_jobs.contract.schedule import POLICIES
from stevedore_jobs.display import format_fields, format_table, format_time, parse_env

FIRES_SHOWN = 10


def add_commands(commands, command):
    """The ``schedule`` command and its subcommands (``command(group, name, handler, help)`` adds one)."""
    schedule = commands.add_parser("schedule", help="run a task on a cron schedule")
    group = schedule.add_subparsers(dest="schedule_command", metavar="COMMAND", required=True)
    sub = command(group, "add", schedule_add, "add a schedule: the task is RUN at each tick of a cron expression")
    sub.add_argument("task", metavar="NAME_OR_ID")
    sub.add_argument("cron", metavar="CRON", help='five fields, e.g. "*/15 * * * *", or a macro such as @hourly')
    sub.add_argument("--timezone", "--tz", help="IANA timezone the cron is read in (default UTC)")
    sub.add_argument("--policy", choices=POLICIES, dest="concurrency_policy",
                     help="while the previous run goes on: Allow (default), Forbid (skip the tick), Replace "
                          "(cancel it)")
    sub.add_argument("--deadline", type=int, metavar="SECONDS", dest="starting_deadline_seconds",
                     help="a tick found later than this (schedulers down) is missed, not run")
    sub.add_argument("--name", help="a label for the schedule")
    sub.add_argument("--suspend", action="store_true", help="add it suspended")
    sub.add_argument("--times", type=int, metavar="N",
                     help="executions per run (default 1; with --items or --matrix, their count)")
    sub.add_argument("--matrix", action="append", metavar="KEY=V1,V2",
                     help="each run: one execution per combination of the values (repeatable), as stevedore run's")
    sub.add_argument("--items", metavar="FILE",
                     help='each run: a JSON list, one {"env": {...}, "command": [...]} per execution (- reads stdin)')
    sub.add_argument("--env", action="append", metavar="KEY=VALUE",
                     help="environment variable for the containers (repeatable)")
    sub.add_argument("--command", help="command instead of the image's default")
    sub.add_argument("--timeout", type=float, metavar="SECONDS", help="stop an execution running longer")
    sub.add_argument("--parallelism", type=int, metavar="N", help="run at most N executions at once")
    sub.add_argument("--retries", type=int, metavar="N", help="retry a failed execution up to N times")
    sub.add_argument("--priority", type=int, metavar="P",
                     help=f"0 (lowest) to {PRIORITY_MAX} (highest); default {PRIORITY_DEFAULT}")
    sub.add_argument("--memory", metavar="SIZE", help='memory limit per container, e.g. "256m"')
    sub.add_argument("--disk", metavar="SIZE",
                     help='the most each execution may write to disk (writable layer, volumes), e.g. "10g"')
    sub.add_argument("--cpus", type=float, help="CPUs per container, e.g. 0.5")
    sub.add_argument("--callback-url", dest="callback_url", help="URL each run's result is POSTed to when it ends")
    add_label_option(sub)
    runners.add_run_options(sub)
    add_run_option(sub)
    sub = command(group, "ls", schedule_ls, "list schedules, newest first, with their next run")
    sub.add_argument("--task", metavar="NAME_OR_ID", help="only schedules of this task")
    sub = command(group, "show", schedule_show, "show a schedule, its last fires and its failed fires")
    sub.add_argument("schedule", metavar="ID")
    for name, handler, text in (("suspend", schedule_suspend, "suspend a schedule: no tick fires"),
                                ("resume", schedule_resume, "resume a schedule from its next tick"),
                                ("rm", schedule_rm, "delete a schedule (the runs it started stay)")):
        command(group, name, handler, text).add_argument("schedule", metavar="ID")
    sub = command(group, "run", schedule_run, "run a schedule now (its concurrency policy applies)")
    sub.add_argument("schedule", metavar="ID")
    sub.add_argument("--wait", action="store_true",
                     help="show progress until the run ends; exit 1 unless every execution completed")


def schedule_add(cli, args):
    task = cli.api.find_task(args.task)
    run = per_execution(args)  # times, or items / matrix
    env = parse_env(args.env)
    if env:
        run["env"] = env
    run.update({name: getattr(args, name) for name in RUN_OPTIONS if getattr(args, name, None) is not None})
    if args.callback_url:
        run["callback_url"] = args.callback_url
    if parse_labels(args.label):  # each run the schedule starts has them
        run["labels"] = parse_labels(args.label)
    constraints = runners.parse_constraints(args.constraint)
    if constraints:
        run["constraints"] = constraints
    if parse_secret_env(args.secret_env):  # each run the schedule starts gets them, by name
        run["secret_env"] = parse_secret_env(args.secret_env)
    body = {"task_id": task["task_id"], "cron": args.cron, "run": run}
    for field in ("timezone", "concurrency_policy", "starting_deadline_seconds", "name"):
        if getattr(args, field) is not None:
            body[field] = getattr(args, field)
    if args.suspend:
        body["suspend"] = True
    schedule = cli.api.post("/schedule/", body)
    if cli.json:
        cli.print_json(schedule)
    else:
        cli.print(schedule["schedule_id"])
        cli.note(f"next run: {format_time(schedule.get('next_run_at')) or 'none (suspended)'}")


def schedule_fields(schedule):
    counts = schedule.get("counts") or {}
    return [
        ("schedule", schedule["schedule_id"]),
        ("name", schedule.get("name")),
        ("task", schedule["task_id"]),
        ("cron", f"{schedule['cron']} ({schedule['timezone']})"),
        ("policy", schedule["concurrency_policy"]),
        ("suspended", "yes" if schedule["suspend"] else "no"),
        ("next run", format_time(schedule.get("next_run_at"))),
        ("last fire", format_time(schedule.get("last_fire_at"))),
        ("last result", schedule.get("last_result_id")),
        ("deadline", f"{schedule['starting_deadline_seconds']}s" if schedule.get("starting_deadline_seconds")
         else None),
        ("fires", ", ".join(f"{counts.get(key, 0)} {key}" for key in ("fired", "skipped", "missed", "failed"))),
        ("run", " ".join(f"{key}={value}" for key, value in sorted((schedule.get("run") or {}).items()))),
    ]


def fires_table(fires):
    rows = [(format_time(f["scheduled_for"]), "run now" if f.get("manual") else "tick", f["outcome"],
             f.get("result_id"), f.get("missed") or "", f.get("reason")) for f in fires]
    return format_table(("TICK", "KIND", "OUTCOME", "RESULT", "MISSED", "REASON"), rows, CELL_WIDTH)


def schedule_ls(cli, args):
    params = {"task_id": cli.api.find_task(args.task)["task_id"]} if args.task else {}
    schedules = list(cli.api.pages("/schedule/", "schedule_id", params))
    if cli.json:
        cli.print_json(schedules)
        return
    rows = [(s["schedule_id"], s.get("name"), s["cron"], s["timezone"], s["concurrency_policy"],
             "suspended" if s["suspend"] else format_time(s.get("next_run_at")),
             s["counts"]["fired"], s["counts"]["failed"]) for s in schedules]
    cli.print(format_table(("ID", "NAME", "CRON", "TIMEZONE", "POLICY", "NEXT RUN", "FIRED", "FAILED"), rows,
                           CELL_WIDTH))


def schedule_show(cli, args):
    schedule = cli.api.get(f"/schedule/{args.schedule}/")
    if cli.json:
        cli.print_json(schedule)
        return
    cli.print(format_fields(schedule_fields(schedule)))
    for title, key in (("last fires", "fires"), ("failed fires", "failed_fires")):
        if schedule.get(key):
            cli.print()
            cli.print(f"{title}:")
            cli.print(fires_table(schedule[key][:FIRES_SHOWN]))


def _patch(cli, args, body, said):
    schedule = cli.api.json(cli.api.request("PATCH", f"/schedule/{args.schedule}/", body=body))
    if cli.json:
        cli.print_json(schedule)
    else:
        cli.print(f"{said} schedule {schedule['schedule_id']}; next run: "
                  f"{format_time(schedule.get('next_run_at')) or 'none'}")


def schedule_suspend(cli, args):
    _patch(cli, args, {"suspend": True}, "suspended")


def schedule_resume(cli, args):
    _patch(cli, args, {"suspend": False}, "resumed")


def schedule_run(cli, args):
    result = cli.api.post(f"/schedule/{args.schedule}/", {"operation": "RUN"})
    return finish_run(cli, args, result)


def schedule_rm(cli, args):
    cli.api.request("DELETE", f"/schedule/{args.schedule}/").close()
    if cli.json:
        cli.print_json({"schedule_id": args.schedule, "deleted": True})
    else:
        cli.print(f"deleted schedule {args.schedule} (the runs it started stay)")
