"""The scheduler's rules for results and their executions (details), one concern a module.

- ``state``: rows, counters, status, the database's clock and the lock order every rule keeps;
- ``views``: results and executions as the API shows them, listed;
- ``submit``: a RUN (or a rerun of a run's failures) made a result;
- ``fanout``: a result's executions made in PostgreSQL, in resumable batches;
- ``claims``: an execution given to a runner under a lease, renewed by heartbeat;
- ``reports``: a runner's reports of an attempt's start and end, folded;
- ``cancel``: cancelling a run or one execution;
- ``policy``: a run's failure policy (max_failures, exit-code rules of retries, deadline);
- ``change``: a running run's parallelism and priority changed;
- ``logs``: an execution's output, stored and read;
- ``retention``: a result's end announced, and the result deleted;
- ``dependencies``: a RUN's ``after``: runs that wait for others, released or cancelled.

The names the scheduler's service uses are imported here, so that it reads
``ex.claim``, ``ex.mark_finished``, ...
"""
from services.scheduler.executions import dependencies
from services.scheduler.executions.cancel import (
    cancel_detail, cancel_result, cancel_unstarted, finish_cancel, mark_cancelled, unfinished_cancels)
from services.scheduler.executions.change import change_result
from services.scheduler.executions.claims import (
    claim, claim_batch, claim_count, expired_leases, note_waiting, renew_leases, sized_active_results)
from services.scheduler.executions.fanout import FAN_OUT_BATCH, fan_out_batch, unfinished_fan_outs
from services.scheduler.executions.logs import get_log_bytes, get_logs, store_live_logs
from services.scheduler.executions.policy import arm_deadline, needs_stop
from services.scheduler.executions.reports import clean_text, mark_finished, mark_started, queue_wait
from services.scheduler.executions.retention import (
    RETENTION_BATCH, delete_result, expired_results, mark_notified, unnotified_finished)
from services.scheduler.executions.state import counts, get_detail, get_result, owner, owner_of
from services.scheduler.executions.submit import audited, create_result, find_by_key, rerun_failed
from services.scheduler.executions.views import (
    active_results, detail_as_dict, duration_percentiles, list_details, list_results, result_as_dict, submitted)

__all__ = [
    "FAN_OUT_BATCH", "RETENTION_BATCH", "active_results", "audited", "arm_deadline", "needs_stop", "cancel_detail", "cancel_result", "cancel_unstarted",
    "change_result", "claim", "claim_batch", "claim_count", "clean_text", "counts", "create_result", "dependencies", "delete_result", "detail_as_dict", "duration_percentiles",
    "expired_leases", "expired_results", "fan_out_batch", "find_by_key", "finish_cancel", "get_detail",
    "get_log_bytes", "get_logs", "get_result", "list_details", "list_results", "mark_cancelled", "mark_finished",
    "mark_notified", "mark_started", "note_waiting", "owner", "owner_of", "queue_wait", "renew_leases", "rerun_failed",
    "result_as_dict", "sized_active_results", "store_live_logs", "unfinished_cancels", "unfinished_fan_outs",
    "submitted", "unnotified_finished",
]
