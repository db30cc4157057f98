"""stevedore run / rerun / cancel: start executions, follow them to their end, stop them."""
from stevedore_jobs.cli.labels import parse_labels
from stevedore_jobs.cli.params import per_execution
from stevedore_jobs.cli.results import details_table, result_fields
from stevedore_jobs.cli.runners import parse_constraints
from stevedore_jobs.cli.secrets import parse_secret_env
from stevedore_jobs.cli.session import EXIT_INTERRUPTED
from stevedore_jobs.client import RUN_FIELDS, CliError
from stevedore_jobs.contract import statuses as st
from stevedore_jobs.display import Progress, UsageError, parse_env

FAILURES_SHOWN = 20

# the RUN's fields given as options of their own (env is --env KEY=VALUE; items and matrix are --items FILE
# and --matrix KEY=v1,v2; after and per_index are --after ID[:WHEN] --when --per-index; labels is --label
# KEY=VALUE; secret_env is --secret-env VAR=SECRET; callback_url is left to the API)
RUN_OPTIONS = tuple(name for name in RUN_FIELDS
                    if name not in ("env", "callback_url", "items", "matrix", "after", "per_index", "labels",
                                    "constraints", "secret_env"))
WHEN = ("COMPLETE", "ENDED")


def parse_after(items, when=None, per_index=False):
    """``--after`` values to a RUN's ``after`` (None without): ``ID`` waits as ``--when`` says
    (default COMPLETE), ``ID:WHEN`` as it says."""
    if not items:
        if when or per_index:
            raise UsageError(f"{'--when' if when else '--per-index'} needs --after RESULT")
        return None
    conditions = []
    for item in items:
        result_id, _, own = item.partition(":")
        chosen = (own or when or "COMPLETE").upper()
        if not result_id or chosen not in WHEN:
            raise UsageError(f"--after: expected RESULT or RESULT:COMPLETE|ENDED, got {item!r}")
        conditions.append({"result_id": result_id, "when": chosen})
    return conditions


def run(cli, args):
    env = parse_env(args.env)
    spread = per_execution(args)
    task = cli.api.find_task(args.task)
    body = {"operation": "RUN", **spread}
    if env:
        body["env"] = env
    body.update({name: getattr(args, name) for name in RUN_OPTIONS if getattr(args, name) is not None})
    labels = parse_labels(args.label)
    if labels:
        body["labels"] = labels
    constraints = parse_constraints(args.constraint)
    if constraints:
        body["constraints"] = constraints
    secret_env = parse_secret_env(args.secret_env)
    if secret_env:
        body["secret_env"] = secret_env
    after = parse_after(args.after, args.when, args.per_index)
    if after:
        body["after"] = after
        if args.per_index:
            body["per_index"] = True
    result = cli.api.post(f"/task/{task['task_id']}/", body)
    return finish_run(cli, args, result)


def rerun(cli, args):
    result = cli.api.post(f"/result/{args.result}/", {"operation": "RERUN_FAILED"})
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
    cli.show(result, result_fields)
    if not cli.json:
        failed = failures(cli, result)
        if failed:
            cli.print()
            cli.print(details_table(failed))
    if result["status"] != st.COMPLETE:
        missing = result["times"] - result["counts"].get(st.COMPLETE, 0)
        raise CliError(f"result {result['result_id']} is {result['status']}: "
                       f"{missing} of {result['times']} executions did not complete")
    return 0


def wait_result(cli, result):
    """Poll the result until it ends, showing its progress on stderr."""
    result_id = result["result_id"]
    progress = Progress(cli.err)
    try:
        while result["status"] not in st.TERMINAL:
            progress.update(result["counts"], result["times"])
            cli.pause()
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
