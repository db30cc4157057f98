"""stevedore run --matrix / --items (each execution's own parameters) and stevedore result set (a running
run's parallelism and priority)."""
import json
import sys

from stevedore_jobs.cli.results import result_fields
from stevedore_jobs.display import UsageError


def parse_matrix(values):
    """``--matrix KEY=v1,v2`` (repeatable) to the RUN's ``matrix``: keys in the order given, values split at
    commas (a value holding a comma needs --items)."""
    matrix = {}
    for value in values or ():
        key, sep, listed = value.partition("=")
        if not key or not sep or not listed:
            raise UsageError(f"--matrix: expected KEY=VALUE1,VALUE2,..., got {value!r}")
        if key in matrix:
            raise UsageError(f"--matrix: {key} is given twice; list all its values once: {key}=v1,v2")
        matrix[key] = listed.split(",")
    return matrix


def read_items(path, stdin=None):
    """``--items FILE`` (``-``: stdin): a JSON list, one ``{"env"?, "command"?}`` per execution."""
    try:
        if path == "-":
            text = (stdin or sys.stdin).read()
        else:
            with open(path, encoding="utf-8") as fh:
                text = fh.read()
    except OSError as exc:
        raise UsageError(f"--items: cannot read {path}: {exc.strerror or exc}") from None
    try:
        items = json.loads(text)
    except ValueError as exc:
        raise UsageError(f"--items: {path} is not JSON ({exc})") from None
    if not isinstance(items, list):
        raise UsageError(f"--items: {path} must hold a JSON list of objects with env and/or command")
    return items


def per_execution(args):
    """The RUN body's ``items`` / ``matrix`` from the options, and its ``times`` (left out with either
    unless --times was given; 1 without them)."""
    body = {}
    if args.items is not None and args.matrix:
        raise UsageError("--items and --matrix: give one of them")
    if args.items is not None:
        body["items"] = read_items(args.items)
    elif args.matrix:
        body["matrix"] = parse_matrix(args.matrix)
    if args.times is not None:
        body["times"] = args.times
    elif not body:
        body["times"] = 1
    return body


def parallelism(text):
    """--parallelism of result set: a whole number, or ``none`` (no limit)."""
    if text.lower() in ("none", "unlimited"):
        return None
    try:
        return int(text)
    except ValueError:
        raise UsageError(f"--parallelism: expected a whole number or none, got {text!r}") from None


def result_set(cli, args):
    body = {}
    if args.parallelism is not None:
        body["parallelism"] = parallelism(args.parallelism)
    if args.priority is not None:
        body["priority"] = args.priority
    if not body:
        raise UsageError("result set: give --parallelism and/or --priority")
    result = cli.api.json(cli.api.request("PATCH", f"/result/{args.result}/", body=body))
    if cli.json:
        cli.print_json(result)
        return
    cli.show(result, result_fields)
