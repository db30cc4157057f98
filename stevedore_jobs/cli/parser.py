"""stevedore: register tasks, run them, and see what happened, from a shell.

Talks to the HTTP API at $STEVEDORE_URL (default http://127.0.0.1:8000) with
$STEVEDORE_TOKEN as a bearer token; --url and --token override them.  Tables
for people, --json for scripts.  Exit status: 0 on success, 1 when something
failed (an execution, an import, the server), 2 for a mistake in the request.
"""
import argparse
import os
import sys

from stevedore_jobs.cli.logs import logs
from stevedore_jobs.cli.params import result_set
from stevedore_jobs.cli.results import SHOW_LIMIT, result_ls, result_rm, result_show
from stevedore_jobs.cli.runs import cancel, rerun, run
from stevedore_jobs.cli import audit, runners, schedules, secrets, teams, tokens
from stevedore_jobs.cli.labels import add_filter_option, add_label_option
from stevedore_jobs.cli.session import EXIT_INTERRUPTED, Cli, version
from stevedore_jobs.cli.tasks import task_add, task_import, task_ls, task_rm, task_show
from stevedore_jobs.client import DEFAULT_URL, STREAMS, CliError
from stevedore_jobs.contract import statuses as st
from stevedore_jobs.contract.run import PRIORITY_DEFAULT, PRIORITY_MAX
from stevedore_jobs.display import UsageError, one_line


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


def exit_codes(text):
    """An argument that is a comma-separated list of exit codes: ``1,2,137`` (the API checks their range)."""
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected exit codes separated by commas, e.g. 1,2,137, got {text!r}") \
            from None


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
    parser.add_argument("--version", action="version", version=f"stevedore {version()}")
    _global_options(parser, defaults=True)
    # before the command only: several commands have a --team of their own (a filter, a new token's team)
    parser.add_argument("--team", dest="acting_team", metavar="TEAM", default=None,
                        help="act for this team (an admin's or operator's pick: lists show only its things, what "
                             "you make is its): sent as X-Stevedore-Team (default: $STEVEDORE_TEAM)")
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
    add_label_option(sub)
    sub.add_argument("--wait", action="store_true",
                     help="wait until the task is READY or ERROR; exit 1 on ERROR")
    sub = command(task_commands, "ls", task_ls, "list tasks, newest first")
    sub.add_argument("--status", help=f"only tasks in this status ({', '.join(st.TASK_STATUSES)})")
    add_filter_option(sub)
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
    sub.add_argument("--times", type=int, metavar="N",
                     help="executions to run (default 1; with --items or --matrix, their count)")
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
    sub.add_argument("--disk", metavar="SIZE",
                     help='the most each execution may write to disk (writable layer, volumes), e.g. "10g"')
    sub.add_argument("--cpus", type=float, help="CPUs per container, e.g. 0.5")
    # the failure policy (docs/api.md#failure-policy)
    sub.add_argument("--max-failures", type=int, metavar="N",
                     help="stop the run once N executions failed (after their retries); it ends ERROR")
    sub.add_argument("--deadline", type=float, metavar="SECONDS",
                     help="stop the run this long after its submission; it ends KILLED")
    codes = sub.add_mutually_exclusive_group()
    codes.add_argument("--retry-on-exit-codes", type=exit_codes, metavar="CODES",
                       help="with --retries: retry only executions that exited with one of these codes (1,2,...)")
    codes.add_argument("--no-retry-on-exit-codes", type=exit_codes, metavar="CODES",
                       help="with --retries: never retry executions that exited with one of these codes")
    sub.add_argument("--matrix", action="append", metavar="KEY=V1,V2",
                     help="one execution per combination of the values (repeatable, one KEY each; keys in "
                          "the order given, the last varying fastest), each combination added to the env")
    sub.add_argument("--items", metavar="FILE",
                     help='a JSON list, one {"env": {...}, "command": [...]} per execution, merged over the '
                          "run's (- reads stdin)")
    sub.add_argument("--after", action="append", metavar="RESULT[:WHEN]",
                     help="start only once that run ended COMPLETE (repeatable; :ENDED, or --when ENDED: "
                          "once it ended, however); the run waits QUEUED until then")
    sub.add_argument("--when", type=str.upper, choices=("COMPLETE", "ENDED"),
                     help="what --after waits for (default COMPLETE)")
    sub.add_argument("--per-index", action="store_true",
                     help="with --after: execution i waits only for execution i of each (equal --times)")
    add_label_option(sub)
    runners.add_run_options(sub)
    secrets.add_run_option(sub)
    sub.add_argument("--wait", action="store_true",
                     help="show progress until the run ends; exit 1 unless every execution completed")

    result = commands.add_parser("result", help="list, show and delete results of runs")
    result_commands = result.add_subparsers(dest="result_command", metavar="COMMAND", required=True)
    sub = command(result_commands, "ls", result_ls, "list results, newest first")
    sub.add_argument("--status", help=f"only results in this status ({', '.join(st.EXECUTION_STATUSES)})")
    sub.add_argument("--task", metavar="NAME_OR_ID", help="only results of this task")
    add_filter_option(sub)
    sub.add_argument("--limit", type=count, default=20, metavar="N", help="show N at most (default 20; 0: all)")
    sub = command(result_commands, "show", result_show, "show a result and a table of its executions")
    sub.add_argument("result", metavar="ID")
    sub.add_argument("--status", help=f"only executions in this status ({', '.join(st.EXECUTION_STATUSES)})")
    sub.add_argument("--limit", type=count, default=SHOW_LIMIT, metavar="N",
                     help=f"executions to list at most (default {SHOW_LIMIT}; 0: all)")

    sub = command(result_commands, "set", result_set,
                  "change a running result's parallelism and/or priority (for executions not yet started)")
    sub.add_argument("result", metavar="ID")
    sub.add_argument("--parallelism", metavar="N", help="at most N executions at once from now on (none: no limit)")
    sub.add_argument("--priority", type=int, metavar="P", help=f"0 (lowest) to {PRIORITY_MAX} (highest)")

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

    schedules.add_commands(commands, command)
    runners.add_commands(commands, command)
    secrets.add_commands(commands, command)
    audit.add_commands(commands, command)
    teams.add_commands(commands, command)
    tokens.add_commands(commands, command)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        code = args.handler(Cli(args), args) or 0
        sys.stdout.flush()  # here, so a closed pipe is caught below
        return code
    except UsageError as exc:
        print(f"stevedore: {one_line(exc)}", file=sys.stderr)
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
    except (KeyError, IndexError, TypeError, AttributeError, ValueError) as exc:
        # an answer of another shape than the API's (another server, a proxy's page, a version skew):
        # one line, as every error, not a traceback
        print(f"stevedore: the server's answer is not what the Stevedore API answers "
              f"({one_line(f'{exc.__class__.__name__}: {exc}')[:200]}); is STEVEDORE_URL the Stevedore API, "
              "of a version this command knows?", file=sys.stderr)
        return 1
