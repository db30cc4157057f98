"""stevedore result ls / show / rm, and the fields and tables a result is shown with."""
import json

from stevedore_jobs.cli.labels import filter_params, labels_text
from stevedore_jobs.cli.session import CELL_WIDTH
from stevedore_jobs.contract import statuses as st
from stevedore_jobs.display import (
    finished_count,
    format_counts,
    format_duration,
    format_fields,
    format_table,
    format_time,
)

SHOW_LIMIT = 100
TES_LABEL = "ga4gh.org/tes"  # the mark of a GA4GH TES task's run (docs/tes.md)


def from_tes(result):
    """Whether the result is a GA4GH TES task's run."""
    return (result.get("labels") or {}).get(TES_LABEL) == "task"
POLICY_STOPS = ("max_failures", "deadline")  # a result's reason when its failure policy stopped it


def result_fields(result):
    params = {key: value for key, value in (result.get("params") or {}).items()
              if value not in (None, {}) and key not in ("times", "labels")}
    reason = result.get("reason")
    stopped = reason in POLICY_STOPS  # the failure policy's code, shown with the status; else a sentence
    return [
        ("result", result["result_id"]),
        ("task", f"{result.get('task_name') or '?'} ({result['task_id']})"),
        ("from", "GA4GH TES: the TES task of the same id (GET /ga4gh/tes/v1/tasks/{id})" if from_tes(result)
         else None),
        ("status", result["status"] + (f" (stopped: {reason})" if stopped else
                                       " (cancel requested)" if result.get("cancel_requested")
                                       and result["status"] not in st.TERMINAL else "")),
        ("executions", f"{finished_count(result['counts'])}/{result['times']} finished: "
                       f"{format_counts(result['counts'])}"),
        ("submitted", format_time(result.get("submitted_at"))),
        ("started", format_time(result.get("start"))),
        ("ended", format_time(result.get("end"))),
        ("duration", format_duration(result.get("duration"))),
        ("deadline", format_time(result.get("deadline_at")) if result.get("deadline_at") else None),
        ("waits for", ", ".join(f"{c['result_id']} ({c['when']})" for c in result.get("waiting_for") or ())
         or None),
        ("reason", None if stopped else reason),
        ("labels", labels_text(result.get("labels"))),
        ("unschedulable", result.get("unschedulable")),
        ("image", result.get("image")),
        ("params", " ".join(f"{key}={json.dumps(value)}" for key, value in sorted(params.items()))
         or None),
    ] + [(name, "none" if result.get(name) is None else result[name])  # as changed by result set
         for name in ("parallelism", "priority") if name in result]


def own_params(params):
    """An execution's own parameters in a cell: ``LR=0.1 SEED=1 command=["sh", "-c", "..."]``."""
    if not params:
        return None
    words = [f"{key}={value}" for key, value in (params.get("env") or {}).items()]
    if params.get("command") is not None:
        words.append(f"command={json.dumps(params['command'])}")
    return " ".join(words) or None


def details_table(details):
    rows = [(d["index"], d["detail_id"], d["status"], d.get("exit_code"), d.get("attempt"),
             d.get("runner"), format_time(d.get("start")), format_duration(d.get("duration")),
             d.get("reason"))
            for d in details]
    headers = ("INDEX", "DETAIL_ID", "STATUS", "EXIT", "ATTEMPT", "RUNNER", "STARTED", "DURATION", "REASON")
    if any(d.get("params") for d in details):  # items or a matrix: each execution's own, last
        rows = [row + (own_params(d.get("params")),) for row, d in zip(rows, details)]
        headers += ("PARAMS",)
    return format_table(headers, rows, CELL_WIDTH)


def result_ls(cli, args):
    params = {}
    if args.status:
        params["status"] = args.status.upper()
    if args.task:
        params["task_id"] = cli.api.find_task(args.task)["task_id"]
    params.update(filter_params(args))
    results = list(cli.api.pages("/result/", "result_id", params, limit=args.limit or None))
    if cli.json:
        cli.print_json(results)
        return
    rows = [(r["result_id"], r.get("task_name"), r["status"],
             f"{finished_count(r['counts'])}/{r['times']}", format_time(r.get("submitted_at")),
             format_duration(r.get("duration")))
            for r in results]
    headers = ("ID", "TASK", "STATUS", "DONE", "SUBMITTED", "DURATION")
    if any(from_tes(r) for r in results):  # a column only when some result came from TES
        rows = [row + ("TES" if from_tes(r) else None,) for row, r in zip(rows, results)]
        headers += ("FROM",)
    if any(r.get("labels") for r in results):  # a column only when some result has labels
        rows = [row + (labels_text(r.get("labels")),) for row, r in zip(rows, results)]
        headers += ("LABELS",)
    cli.print(format_table(headers, rows, CELL_WIDTH))


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


def result_rm(cli, args):
    cli.api.request("DELETE", f"/result/{args.result}/").close()
    if cli.json:
        cli.print_json({"result_id": args.result, "deleted": True})
    else:
        cli.print(f"deleted result {args.result} with its executions and their output")
