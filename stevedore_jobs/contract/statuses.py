"""Statuses of tasks, results and details (executions), as the API spells them."""
from typing import Literal

# Tasks
SUBMITTED = "SUBMITTED"
IMPORTING = "IMPORTING"
READY = "READY"
# shared by tasks, results and details
ERROR = "ERROR"

# Results and details
QUEUED = "QUEUED"
RUNNING = "RUNNING"
COMPLETE = "COMPLETE"
CANCELLED = "CANCELLED"
KILLED = "KILLED"

TaskStatus = Literal["SUBMITTED", "IMPORTING", "READY", "ERROR"]
ExecutionStatus = Literal["QUEUED", "RUNNING", "COMPLETE", "ERROR", "CANCELLED", "KILLED"]

TASK_STATUSES = TaskStatus.__args__
EXECUTION_STATUSES = ExecutionStatus.__args__  # in the order of a run's life
ACTIVE = frozenset({QUEUED, RUNNING})
TERMINAL = frozenset(EXECUTION_STATUSES) - ACTIVE
TASK_BUSY = frozenset({SUBMITTED, IMPORTING})  # a task being imported

# a webhook's delivery state (GET /result/{id}/ "webhook")
WebhookStatus = Literal["DELIVERING", "PENDING", "DELIVERED", "FAILED"]
