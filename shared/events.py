"""Names of the events Stevedore dispatches, and who dispatches them.

Each payload is a model in ``shared/messages.py`` (``EVENTS``: by source and
name), documented in ``docs/events.md``; other services may subscribe to any
of them with ``@event_handler(SOURCE, NAME)``.
"""

# dispatched by the registry service
REGISTRY = "registry"
TASK_SUBMITTED = "task_submitted"
TASK_IMPORTED = "task_imported"
TASK_IMPORT_FAILED = "task_import_failed"
TASK_DELETED = "task_deleted"
TOKEN_REVOKED = "token_revoked"  # every gateway forgets the token at once (BROADCAST)
SESSION_ENDED = "session_ended"  # every gateway forgets the web UI session at once (BROADCAST)

# dispatched by the scheduler service
SCHEDULER = "scheduler"
RESULT_SUBMITTED = "result_submitted"
EXECUTIONS_QUEUED = "executions_queued"
RESULT_FINISHED = "result_finished"
RESULT_CANCELLED = "result_cancelled"
RESULT_CHANGED = "result_changed"
EXECUTION_CANCEL_REQUESTED = "execution_cancel_requested"
RESULT_DELETED = "result_deleted"
RESULT_RELEASED = "result_released"
SCHEDULE_FIRED = "schedule_fired"
SCHEDULE_FAILED = "schedule_failed"
BACKBONE_PROBE = "backbone_probe"  # internal: the scheduler's own round trip (services/scheduler/recovery.py)

# dispatched by the runner service
RUNNER = "runner"
EXECUTION_STARTED = "execution_started"
EXECUTION_FINISHED = "execution_finished"
EXECUTION_OUTPUT = "execution_output"
EXECUTION_REPORTS = "execution_reports"  # several of a runner's starts and ends in one message
