"""stevedore token create / ls / revoke (an admin's) and stevedore whoami."""
import argparse
import re

from stevedore_jobs.cli.session import CELL_WIDTH
from stevedore_jobs.contract.principals import ROLES
from stevedore_jobs.display import format_fields, format_table, format_time

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def add_commands(commands, command):
    """The ``token`` and ``whoami`` commands (``command(group, name, handler, help)`` adds one)."""
    token = commands.add_parser("token", help="make, list and revoke API tokens (admin)")
    group = token.add_subparsers(dest="token_command", metavar="COMMAND", required=True)
    sub = command(group, "create", token_create,
                  "a new token for a principal (made with its team and role if new); printed once")
    sub.add_argument("--name", required=True, help="the principal's name, e.g. ci-bot or alice")
    sub.add_argument("--team", required=True, help="its team (a DNS label: lower-case letters, digits, '-')")
    sub.add_argument("--role", required=True, choices=ROLES, help="what it may do (docs/api.md)")
    sub.add_argument("--kind", choices=("person", "service"), default="service", help="default service")
    sub.add_argument("--expires", metavar="DURATION", type=duration,
                     help="it expires after this long: 90d, 12h, 30m, 2w or seconds (default: never)")
    sub = command(group, "ls", token_ls, "list the tokens, newest first (never the tokens themselves)")
    sub.add_argument("--team", help="only the tokens of this team's principals")
    sub = command(group, "revoke", token_revoke, "revoke a token: every gateway refuses it within a second")
    sub.add_argument("token_id", metavar="ID")
    command(commands, "whoami", whoami, "who the token is: principal, role, team, the teams it may pick")


def duration(text):
    """``90d``, ``12h``, ``30m``, ``2w``, ``45s`` or a number of seconds, as whole seconds."""
    match = re.fullmatch(r"\s*(\d{1,9})\s*([smhdw]?)\s*", text or "")
    if not match:
        raise argparse.ArgumentTypeError(f"expected a duration such as 90d, 12h, 30m or seconds, got {text!r}")
    return int(match.group(1)) * UNITS[match.group(2) or "s"]


def token_fields(token):
    return [("token id", token["token_id"]), ("principal", f"{token['principal']} ({token.get('kind')})"),
            ("team", token["team"]), ("role", token["role"]), ("status", token.get("status")),
            ("created", format_time(token.get("created_at"))), ("created by", token.get("created_by")),
            ("expires", format_time(token["expires_at"]) if token.get("expires_at") else "never")]


def token_create(cli, args):
    body = {"name": args.name, "team": args.team, "role": args.role, "kind": args.kind}
    if args.expires is not None:
        body["expires"] = args.expires
    made = cli.api.post("/token/", body)
    if cli.json:
        cli.print_json(made)
        return
    cli.print(format_fields(token_fields(made)))
    cli.print(f"token       {made['token']}")
    cli.note("stevedore: keep the token now: it is not shown again")


def token_ls(cli, args):
    tokens = list(cli.api.pages("/token/", "token_id", {"team": args.team} if args.team else {}))
    if cli.json:
        cli.print_json(tokens)
        return
    rows = [(t["token_id"], t["principal"], t["team"], t["role"], t["status"], format_time(t.get("created_at")),
             format_time(t["expires_at"]) if t.get("expires_at") else "never",
             format_time(t.get("last_used_at")) if t.get("last_used_at") else None)
            for t in tokens]
    cli.print(format_table(("ID", "PRINCIPAL", "TEAM", "ROLE", "STATUS", "CREATED", "EXPIRES", "LAST USED"), rows,
                           CELL_WIDTH))


def token_revoke(cli, args):
    cli.api.request("DELETE", f"/token/{args.token_id}/").close()
    if cli.json:
        cli.print_json({"token_id": args.token_id, "revoked": True})
    else:
        cli.print(f"token {args.token_id}: revoked")


def whoami(cli, args):
    me = cli.api.get("/whoami/")
    if cli.json:
        cli.print_json(me)
        return
    cli.print(format_fields([("principal", me["principal"]), ("role", me["role"]), ("team", me["team"]),
                             ("teams", "every team" if me.get("all_teams") else None),
                             ("may pick", ", ".join(me.get("teams") or []) or None)]))
