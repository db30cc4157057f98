"""Statuses of tasks, results and details, as the API spells them: the contract's (one list)."""
from stevedore_jobs.contract.statuses import (  # noqa: F401 -- re-exported for the services
    ACTIVE, CANCELLED, COMPLETE, ERROR, EXECUTION_STATUSES, IMPORTING, KILLED, QUEUED, READY, RUNNING,
    SUBMITTED, TASK_BUSY, TASK_STATUSES, TERMINAL)
