"""stevedore secret set / ls / rm: a team's secrets, by name; and run's --secret-env.

A value is read from a file (``--from-file``) or standard input (a prompt without echo when it is a
terminal), sent once, and never printed: not by ``set``, not by ``ls``, not in an error.
"""
import getpass
import sys

from stevedore_jobs.cli.session import CELL_WIDTH
from stevedore_jobs.display import UsageError, format_table, format_time


def add_commands(commands, command):
    """The ``secret`` command and its subcommands (``command(group, name, handler, help)`` adds one)."""
    secret = commands.add_parser("secret", help="set, list and remove your team's secrets (values are never shown)")
    group = secret.add_subparsers(dest="secret_command", metavar="COMMAND", required=True)
    sub = command(group, "set", secret_set,
                  "create a secret, or rotate it (executions not started yet get the new value); the value is "
                  "read from --from-file, else from standard input, exactly as given (printf %%s, not echo, "
                  "to leave out a newline)")
    sub.add_argument("name", metavar="NAME", help="letters, digits, _ . - (e.g. API_KEY, db-password)")
    sub.add_argument("--from-file", metavar="FILE", help="read the value from FILE (UTF-8 text)")
    command(group, "ls", secret_ls, "list your team's secrets by name: when each was set and by whom")
    command(group, "rm", secret_rm,
            "remove a secret: executions naming it that have not started end ERROR").add_argument(
        "name", metavar="NAME")


def add_run_option(sub):
    """``--secret-env VAR=NAME`` of ``stevedore run`` and ``stevedore schedule add``."""
    sub.add_argument("--secret-env", action="append", metavar="VAR=SECRET", dest="secret_env",
                     help="give the containers variable VAR the value of your team's secret SECRET (repeatable); "
                          "the run stores only the name")


def parse_secret_env(items):
    """``--secret-env`` values to a RUN's ``secret_env`` (None without); the API checks the names."""
    if not items:
        return None
    refs = {}
    for item in items:
        variable, sep, name = item.partition("=")
        if not variable or not sep or not name:
            raise UsageError(f"--secret-env: expected VAR=SECRET, got {item!r}")
        refs[variable] = name
    return refs


def read_value(path, stdin=None):
    """The value to set: FILE's text, else standard input's (asked without echo on a terminal)."""
    stdin = stdin or sys.stdin
    if path is not None:
        try:
            with open(path, "rb") as fh:
                raw = fh.read()
        except OSError as exc:
            raise UsageError(f"--from-file: cannot read {path}: {exc.strerror}") from None
    elif stdin.isatty():
        return getpass.getpass("value (not shown): ")
    else:
        raw = stdin.buffer.read() if hasattr(stdin, "buffer") else stdin.read().encode("utf-8")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError(f"the value must be UTF-8 text (byte {exc.start} is not)") from None


def secret_set(cli, args):
    secret, created = cli.api.put_secret(args.name, read_value(args.from_file))
    if cli.json:
        cli.print_json(secret)
        return
    cli.print(f"secret {secret['name']} {'created' if created else 'rotated'} (team {secret['team']})")


def secret_ls(cli, args):
    secrets = cli.api.secrets()
    if cli.json:
        cli.print_json(secrets)
        return
    rows = [(s["name"], format_time(s["updated_at"]), s.get("updated_by"), format_time(s["created_at"]))
            for s in secrets]
    cli.print(format_table(("NAME", "SET", "SET BY", "CREATED"), rows, CELL_WIDTH))


def secret_rm(cli, args):
    cli.api.delete_secret(args.name)
    if not cli.json:
        cli.print(f"secret {args.name} removed")
