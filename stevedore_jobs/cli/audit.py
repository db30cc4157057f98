"""stevedore audit ls: the audit log, newest first (admins and operators; GET /audit/)."""
import argparse
import json
import re
import time
from datetime import datetime

from stevedore_jobs.cli.session import CELL_WIDTH
from stevedore_jobs.display import UsageError, format_table, format_time

AGO = re.compile(r"([0-9]+(?:\.[0-9]+)?)([smhdw])")
UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def add_commands(commands, command):
    """The ``audit`` command and its subcommands (``command(group, name, handler, help)`` adds one)."""
    audit = commands.add_parser("audit", help="read the audit log: who changed what, when, from where")
    group = audit.add_subparsers(dest="audit_command", metavar="COMMAND", required=True)
    sub = command(group, "ls", audit_ls, "list the audit log, newest first (admins and operators)")
    sub.add_argument("--principal", help="only what this principal did (system: the system itself)")
    sub.add_argument("--team", help="only changes of this team's objects")
    sub.add_argument("--action", help="only this action, e.g. result.cancel")
    sub.add_argument("--target-type", dest="target_type", help="only this kind of object, e.g. result")
    sub.add_argument("--target", dest="target_id", metavar="ID", help="only changes of this object (id or name)")
    sub.add_argument("--since", type=when, metavar="WHEN",
                     help="only changes at or after WHEN: 90m, 24h, 7d (ago), 2026-01-31[T12:00] (local time) "
                          "or epoch seconds")
    sub.add_argument("--until", type=when, metavar="WHEN", help="only changes before WHEN (as --since)")
    sub.add_argument("--limit", type=int, default=100, metavar="N", help="at most N entries (default 100; 0: all)")


def when(text, clock=time.time):
    """``--since``/``--until``: a time ago (``7d``), a local date or date-time, or epoch seconds."""
    text = text.strip()
    ago = AGO.fullmatch(text)
    if ago:
        return clock() - float(ago.group(1)) * UNIT_SECONDS[ago.group(2)]
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a time: 90m, 24h, 7d, 2026-01-31, "
                                         "2026-01-31T12:00 or epoch seconds") from None


def summary_text(summary):
    return ", ".join(f"{key}={json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else value}"
                     for key, value in (summary or {}).items()) or None


def audit_ls(cli, args):
    if args.limit < 0:
        raise UsageError("--limit: must be 0 (all) or more")
    params = {name: getattr(args, name) for name in
              ("principal", "team", "action", "target_type", "target_id", "since", "until")
              if getattr(args, name) is not None}
    entries = list(cli.api.pages("/audit/", "audit_id", params, limit=args.limit or None))
    if cli.json:
        cli.print_json(entries)
        return
    rows = [(format_time(e["at"]), e["principal"], e["role"], e.get("address"), e["action"],
             e.get("target_id"), e.get("team"), e.get("outcome"), summary_text(e.get("summary")))
            for e in entries]
    cli.print(format_table(("TIME", "PRINCIPAL", "ROLE", "ADDRESS", "ACTION", "TARGET", "TEAM", "OUTCOME",
                            "SUMMARY"), rows, CELL_WIDTH))
