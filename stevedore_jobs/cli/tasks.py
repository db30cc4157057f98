"""stevedore task add / ls / show / import / rm."""
from stevedore_jobs.cli.labels import filter_params, labels_text, parse_labels
from stevedore_jobs.cli.session import CELL_WIDTH
from stevedore_jobs.client import CliError
from stevedore_jobs.contract import statuses as st
from stevedore_jobs.display import format_table, format_time


def task_fields(task):
    return [("id", task["task_id"]), ("name", task["name"]), ("repository", task["repository"]),
            ("status", task["status"]), ("error", task.get("error")), ("digest", task.get("digest")),
            ("created", format_time(task.get("created_at"))),
            ("imported", format_time(task["imported_at"]) if task.get("imported_at") else None),
            ("labels", labels_text(task.get("labels")))]


def task_add(cli, args):
    body = {"repository": args.repository}
    if args.name is not None:
        body["name"] = args.name
    labels = parse_labels(args.label)
    if labels:
        body["labels"] = labels
    finish_task(cli, args, cli.api.post("/task/", body))


def task_import(cli, args):
    task = cli.api.find_task(args.task)
    finish_task(cli, args, cli.api.post(f"/task/{task['task_id']}/", {"operation": "IMPORT"}))


def finish_task(cli, args, task):
    """Show a task just added or imported, with --wait once it is READY or ERROR (exit 1 on ERROR)."""
    if args.wait:
        task = wait_task(cli, task)
    cli.show(task, task_fields)
    if task["status"] == st.ERROR:
        raise CliError(f"task {task['name']} is ERROR: {task.get('error') or 'no reason given'}")


def wait_task(cli, task):
    shown = None
    while task["status"] not in (st.READY, st.ERROR):
        if task["status"] != shown:
            cli.note(f"task {task['name']}: {task['status']}")
            shown = task["status"]
        cli.pause()
        task = cli.poll(f"/task/{task['task_id']}/")
    return task


def task_ls(cli, args):
    params = {"status": args.status.upper()} if args.status else {}
    tasks = list(cli.api.pages("/task/", "task_id", {**params, **filter_params(args)}))
    if cli.json:
        cli.print_json(tasks)
        return
    rows = [(t["task_id"], t["name"], t["status"], t["repository"], format_time(t.get("created_at")))
            for t in tasks]
    headers = ("ID", "NAME", "STATUS", "REPOSITORY", "CREATED")
    if any(t.get("labels") for t in tasks):  # a column only when some task has labels
        rows = [row + (labels_text(t.get("labels")),) for row, t in zip(rows, tasks)]
        headers += ("LABELS",)
    cli.print(format_table(headers, rows, CELL_WIDTH))


def task_show(cli, args):
    cli.show(cli.api.find_task(args.task), task_fields)


def task_rm(cli, args):
    task = cli.api.find_task(args.task)
    cli.api.request("DELETE", f"/task/{task['task_id']}/").close()
    if cli.json:
        cli.print_json({"task_id": task["task_id"], "deleted": True})
    else:
        cli.print(f"deleted task {task['name']} ({task['task_id']})")
