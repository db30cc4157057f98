"""A TES task as GA4GH TES shows it, read from its result and its one execution (docs/tes.md).

The state map (``state_of``):

| Stevedore | TES |
|---|---|
| result QUEUED, an executor's image still importing | INITIALIZING |
| result QUEUED, its execution not yet claimed | QUEUED |
| its execution claimed, inputs being staged (no executor started) | INITIALIZING |
| its execution RUNNING | RUNNING |
| cancel requested, not yet ended | CANCELING |
| COMPLETE | COMPLETE |
| ERROR after an executor's non-zero exit (without ``ignore_error``) | EXECUTOR_ERROR |
| ERROR otherwise (import, staging, outputs, engine, runner lost) | SYSTEM_ERROR |
| CANCELLED or KILLED | CANCELED |
"""
from datetime import datetime, timezone

from services.scheduler.executions.reports import clean_text
from shared import statuses as st
from stevedore_jobs.contract.tes import TES_LABEL

LOG_CHARS = 256 * 1024     # of an executor's stdout or stderr, stored
EXECUTOR_LOGS_MAX = 64
OUTPUTS_MAX = 10000
FAILURES = ("EXECUTOR_ERROR", "SYSTEM_ERROR")


def state_of(result, detail):
    """The TES state of a TES task's result and its execution (``detail``: None before it exists)."""
    if result.status in (st.CANCELLED, st.KILLED):
        return "CANCELED"
    if result.status == st.COMPLETE:
        return "COMPLETE"
    if result.status == st.ERROR:
        failure = ((detail.tes_log if detail is not None else None) or {}).get("failure")
        return "EXECUTOR_ERROR" if failure == "EXECUTOR_ERROR" else "SYSTEM_ERROR"
    if result.cancel_requested:
        return "CANCELING"
    if (result.tes or {}).get("waiting"):
        return "INITIALIZING"
    if detail is None or detail.status == st.QUEUED:
        return "INITIALIZING" if detail is not None and detail.runner else "QUEUED"
    return "RUNNING"


def rfc3339(stamp):
    if not isinstance(stamp, (int, float)):
        return None
    return datetime.fromtimestamp(stamp, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _number(value):
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def storable_log(tes_log):
    """A runner's ``tes_log`` as it may be stored (JSONB: no NUL; bounded); None if it is not one."""
    if not isinstance(tes_log, dict):
        return None
    executors = []
    for entry in (tes_log.get("executors") or [])[:EXECUTOR_LOGS_MAX]:
        if not isinstance(entry, dict):
            continue
        code = entry.get("exit_code")
        executors.append({
            "start_time": _number(entry.get("start_time")), "end_time": _number(entry.get("end_time")),
            "exit_code": code if isinstance(code, int) and not isinstance(code, bool) and abs(code) < 2 ** 31 else -1,
            "stdout": clean_text(str(entry.get("stdout") or ""), LOG_CHARS),
            "stderr": clean_text(str(entry.get("stderr") or ""), LOG_CHARS)})
    outputs = [{"url": clean_text(str(o.get("url", "")), 4096), "path": clean_text(str(o.get("path", "")), 4096),
                "size_bytes": clean_text(str(o.get("size_bytes", "0")), 30)}
               for o in (tes_log.get("outputs") or [])[:OUTPUTS_MAX] if isinstance(o, dict)]
    failure = tes_log.get("failure") if tes_log.get("failure") in FAILURES else None
    system_logs = [clean_text(str(line), 2000) for line in (tes_log.get("system_logs") or [])[:20]]
    return {"failure": failure, "executors": executors, "outputs": outputs, "system_logs": system_logs}


def task_view(result, detail, view):
    """The TES ``Task`` of a result in ``view`` (MINIMAL, BASIC or FULL)."""
    tes = result.tes or {}
    task = {"id": result.id, "state": state_of(result, detail)}
    if view == "MINIMAL":
        return task
    document = dict(tes.get("task") or {})
    if view == "BASIC":  # without the inputs' content (TES 1.1)
        document["inputs"] = [{k: v for k, v in item.items() if k != "content"}
                              for item in document.get("inputs") or []]
    task.update({key: value for key, value in document.items() if value is not None})
    task["tags"] = {k: v for k, v in (result.labels or {}).items() if k != TES_LABEL}
    task["creation_time"] = rfc3339(result.submitted_at)
    task["logs"] = [task_log(result, detail, view)] if detail is not None and (
        detail.start is not None or detail.tes_log is not None or detail.status in st.TERMINAL) else []
    return task


def task_log(result, detail, view):
    """The ``TaskLog`` of the task's one execution (its current attempt)."""
    log = detail.tes_log or {}
    executors = []
    for entry in log.get("executors") or []:
        shown = {"start_time": rfc3339(entry.get("start_time")), "end_time": rfc3339(entry.get("end_time")),
                 "exit_code": entry.get("exit_code", -1)}
        if view == "FULL":
            shown.update(stdout=entry.get("stdout") or "", stderr=entry.get("stderr") or "")
        executors.append(shown)
    shown = {"logs": executors, "outputs": log.get("outputs") or [],
             "start_time": rfc3339(detail.start), "end_time": rfc3339(detail.end),
             "metadata": {"stevedore_result_id": result.id, "stevedore_detail_id": detail.id,
                          # the image each executor ran, pinned to its digest when imported
                          **{f"executors[{i}].image": image for i, image in
                             enumerate((result.tes or {}).get("images") or []) if image},
                          **({"runner": detail.runner} if detail.runner else {}),
                          **({"attempt": str(detail.attempt)} if detail.attempt else {})}}
    if view == "FULL":
        reasons = list(log.get("system_logs") or [])
        if detail.reason and detail.reason not in reasons and result.status == st.ERROR:
            reasons.append(detail.reason)
        shown["system_logs"] = reasons
    return shown
