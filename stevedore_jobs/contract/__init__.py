"""The HTTP contract of Stevedore: every request and answer of the API, declared once.

Importable with pydantic alone (no server dependency).  From it come the
gateway's validation, the served /openapi.json (``openapi.spec``), the field
tables of docs/api.md (checked by tests/unit/test_contract.py), the statuses and
types of the Python client and the CLI, and the web UI's statuses and limits
(through /openapi.json).

    statuses   task and execution statuses (shared/statuses.py re-exports them)
    requests   bodies, query parameters and headers, with their constraints
    run        the RUN body, under the installation's limits
    items      a RUN's items and matrix: checked, and expanded per execution
    change     PATCH /result/{id}/: a running run's parallelism and priority
    schedule   schedules: a RUN on a cron schedule, their fires
    fleet      runner labels, a RUN's constraints and gpus, the runner list
    audit      the audit log's filters and entries (GET /audit/)
    responses  tasks, results, details, logs, health, the error shape
    checks     rules that are not a type: text, image references, sizes
    openapi    the OpenAPI 3.1 document made from them
"""
from stevedore_jobs.contract.checks import Invalid, check_strings, check_text, parse_reference
from stevedore_jobs.contract.requests import (
    DetailListQuery, DetailOperation, Limits, LogsQuery, NewTask, ResultListQuery, ResultOperation,
    TaskListQuery, TaskOperation, idempotency_key, operation, parse, query)
from stevedore_jobs.contract.run import RunRequest, run_params, run_request
from stevedore_jobs.contract.change import ResultChange
from stevedore_jobs.contract.responses import Detail, Error, Health, Logs, Result, Task
from stevedore_jobs.contract.fleet import Runner, RunnerListQuery
from stevedore_jobs.contract.audit import AuditEntry, AuditListQuery
from stevedore_jobs.contract.schedule import (
    NewSchedule, Schedule, ScheduleChange, ScheduleListQuery, ScheduleOperation, check_cron, schedule_run)

__all__ = [
    "Invalid", "check_strings", "check_text", "parse_reference",
    "DetailListQuery", "DetailOperation", "Limits", "LogsQuery", "NewTask", "ResultListQuery",
    "ResultChange", "ResultOperation", "RunRequest", "TaskListQuery", "TaskOperation", "idempotency_key", "operation",
    "parse", "query", "run_params", "run_request",
    "Detail", "Error", "Health", "Logs", "Result", "Task",
    "NewSchedule", "Schedule", "ScheduleChange", "ScheduleListQuery", "ScheduleOperation", "check_cron",
    "schedule_run", "Runner", "RunnerListQuery", "AuditEntry", "AuditListQuery",
]
