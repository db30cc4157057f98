"""Names of the events Stevedore dispatches, and who dispatches them.

Payloads carry ids and plain values only.  They are documented in
``docs/events.md``; other services may subscribe to any of them with
``@event_handler(SOURCE, NAME)``.
"""

# dispatched by the registry service
REGISTRY = "registry"
# version: rises with every change of the task's status (the higher, the newer)
TASK_SUBMITTED = "task_submitted"          # {task_id, version}
TASK_IMPORTED = "task_imported"            # {task_id, name, repository, digest, version}
TASK_IMPORT_FAILED = "task_import_failed"  # {task_id, name, repository, error, version}
TASK_DELETED = "task_deleted"              # {task_id, name}

# dispatched by the scheduler service
SCHEDULER = "scheduler"
RESULT_SUBMITTED = "result_submitted"      # {result_id, fanned_out}: fanned_out when made with the result
EXECUTIONS_QUEUED = "executions_queued"    # {result_id, count, runners?}: wakes idle runners (those named, or all)
RESULT_FINISHED = "result_finished"        # the result as the API shows it
RESULT_CANCELLED = "result_cancelled"      # {result_id}: runners stop what they hold of it
EXECUTION_CANCEL_REQUESTED = "execution_cancel_requested"  # {result_id, detail_id}
RESULT_DELETED = "result_deleted"          # {result_id, task_id, expired}: by DELETE, or its retention ran out

# dispatched by the runner service
RUNNER = "runner"
EXECUTION_STARTED = "execution_started"    # {detail_id, attempt, runner, start, container_id}
EXECUTION_FINISHED = "execution_finished"  # {detail_id, attempt, runner, status, exit_code, reason, start, end}
EXECUTION_OUTPUT = "execution_output"      # {detail_id, attempt, logs}: output so far, while running
