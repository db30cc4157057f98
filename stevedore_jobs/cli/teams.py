"""stevedore team add / ls / show / set / rm: teams, their fair-share weight and quotas (admin)."""
from stevedore_jobs.cli.session import CELL_WIDTH
from stevedore_jobs.display import UsageError, format_fields, format_table, format_time

NONE = "none"  # a quota given as "none" is lifted


def quota(text):
    """A quota as given: an integer, or ``none`` (no quota); the API checks the bounds."""
    if text.strip().lower() == NONE:
        return None
    try:
        return int(text)
    except ValueError:
        raise UsageError(f"a quota is an integer or {NONE!r}, not {text!r}") from None


def add_commands(commands, command):
    """The ``team`` command and its subcommands (``command(group, name, handler, help)`` adds one)."""
    team = commands.add_parser("team", help="teams: their fair-share weight and quotas")
    group = team.add_subparsers(dest="team_command", metavar="COMMAND", required=True)
    sub = command(group, "add", team_add, "add a team (admin)")
    sub.add_argument("name", metavar="NAME", help="lowercase letters, digits and '-' (a DNS label)")
    add_settings(sub)
    command(group, "ls", team_ls, "list the teams, with their running and queued executions")
    command(group, "show", team_show, "show a team").add_argument("name", metavar="NAME")
    sub = command(group, "set", team_set, "change a team's weight or quotas (admin; 'none' lifts a quota)")
    sub.add_argument("name", metavar="NAME")
    add_settings(sub)
    command(group, "rm", team_rm, "delete a team that has no tasks, runs or schedules (admin)").add_argument(
        "name", metavar="NAME")


def add_settings(sub):
    sub.add_argument("--weight", type=float, help="its fair share of the runners (default 1)")
    # not given: False (None is "none", a quota lifted)
    sub.add_argument("--max-running", type=quota, dest="max_running", metavar="N", default=False,
                     help="at most N of its executions running at once ('none': no quota)")
    sub.add_argument("--max-queued", type=quota, dest="max_queued", metavar="N", default=False,
                     help="at most N of its executions queued: a RUN over it is refused ('none': no quota)")


def settings(args):
    """The fields given on the command line (a quota given as none: None)."""
    given = {"weight": args.weight} if args.weight is not None else {}
    for name in ("max_running", "max_queued"):
        if getattr(args, name) is not False:
            given[name] = getattr(args, name)
    return given


def limit(value):
    return "none" if value is None else str(value)


def team_fields(team):
    return [("team", team["name"]), ("weight", f"{team['weight']:g}"),
            ("running", f"{team['running']} (max {limit(team.get('max_running'))})"),
            ("queued", f"{team['queued']} (max {limit(team.get('max_queued'))})"),
            ("created", format_time(team.get("created_at")))]


def show(cli, team):
    if cli.json:
        cli.print_json(team)
    else:
        cli.print(format_fields(team_fields(team)))


def team_add(cli, args):
    show(cli, cli.api.post("/team/", {"name": args.name, **settings(args)}))


def team_ls(cli, args):
    teams = list(cli.api.pages("/team/", "name"))
    if cli.json:
        cli.print_json(teams)
        return
    rows = [(t["name"], f"{t['weight']:g}", t["running"], limit(t.get("max_running")), t["queued"],
             limit(t.get("max_queued"))) for t in teams]
    cli.print(format_table(("TEAM", "WEIGHT", "RUNNING", "MAX RUNNING", "QUEUED", "MAX QUEUED"), rows, CELL_WIDTH))


def team_show(cli, args):
    show(cli, cli.api.get(f"/team/{args.name}/"))


def team_set(cli, args):
    changes = settings(args)
    if not changes:
        raise UsageError("give --weight, --max-running or --max-queued")
    show(cli, cli.api.json(cli.api.request("PATCH", f"/team/{args.name}/", body=changes)))


def team_rm(cli, args):
    cli.api.request("DELETE", f"/team/{args.name}/").close()
    if cli.json:
        cli.print_json({"name": args.name, "deleted": True})
    else:
        cli.print(f"deleted team {args.name}")
