"""What the scheduler tells a runner that reconciles its engine with the database.

A runner asks, at start and then periodically:

* which executions the database says it holds (``runner_holdings``), to find
  the ones it runs without knowing it (it was restarted: re-attach to the
  container) or was given without ever hearing of it (the claim's reply was
  lost: hand the claim back with ``release_claim``);
* who holds the executions of the containers on its engine
  (``execution_states``), to remove the containers of executions that are
  over or that another attempt has replaced;
* this installation's id (``installation_id``, from the ``installation``
  table), which labels every container it starts: a container of this
  installation whose execution the database does not know was deleted with
  its result, and is removed; one of another installation is left alone.

Same locking order as ``executions.state``: the detail row, then its result row, then its team's.
"""
from sqlalchemy import select

from services.scheduler.executions import fairshare
from services.scheduler.executions.cancel import cancel_unstarted
from services.scheduler.models import Detail, Installation, Result
from shared import statuses as st
from shared.messages import ExecutionState, Holding, wire


_installations = {}  # database URL -> its installation id (one row, made once, never changed)


def installation_id(session):
    """This installation's id (the ``installation`` table's one row), read once per database."""
    url = str(session.get_bind().url)
    found = _installations.get(url)
    if found is None:
        found = session.scalar(select(Installation.id))
        session.rollback()
        if found is None:  # not migrated to 0007 yet: nothing is labelled
            return None
        _installations[url] = found
    return found


def runner_holdings(session, runner, lease_seconds, limit=1000):
    """The executions the database says ``runner`` holds, each with its status."""
    rows = session.execute(
        select(Detail, Result).join(Result, Result.id == Detail.result_id).where(
            Detail.runner == runner, Detail.status.in_([st.QUEUED, st.RUNNING]))
        .limit(limit)).all()
    session.rollback()
    return [wire(Holding.of(detail.id, result.id, result.task_id, detail.index, detail.attempt, result.image,
                            result.params, lease_seconds, own=detail.params, status=detail.status,
                            gpu_ids=detail.gpu_ids, team=result.team, submitted_by=result.submitted_by))
            for detail, result in rows]


def execution_states(session, detail_ids):
    """{detail_id: {attempt, runner, status}} for the ids this scheduler knows.

    An id it does not know is left out: the runner then judges by the
    container's installation label (ours: its result was deleted; another's,
    or none: left alone).
    """
    ids = [i for i in detail_ids if isinstance(i, str) and 0 < len(i) <= 32]
    if not ids:
        return {}
    rows = session.execute(select(Detail.id, Detail.attempt, Detail.runner, Detail.status)
                           .where(Detail.id.in_(ids))).all()
    session.rollback()
    return {row.id: wire(ExecutionState(attempt=row.attempt, runner=row.runner, status=row.status))
            for row in rows}


def release_claim(session, runner, detail_id, attempt):
    """Take back a claim that never started; returns (result, detail), or (None, None).

    Only a claim of ``runner`` that never started (still QUEUED) of the
    attempt named: the execution goes back to the queue as if it had never
    been claimed, its attempt number unspent, since nothing ran; or, when it
    or its run was cancelled meanwhile, it ends CANCELLED.
    """
    detail = session.get(Detail, detail_id, with_for_update=True)
    if detail is None or detail.runner != runner or detail.attempt != attempt \
            or detail.status != st.QUEUED:
        session.rollback()
        return None, None
    result = session.get(Result, detail.result_id, with_for_update=True)
    if result.active > 0:  # a slot of its run and of its team free again (executions/fairshare.py)
        result.active -= 1
        fairshare.release(session, detail.team)
    detail.runner = None
    detail.attempt -= 1
    detail.lease_expires_at = None
    detail.container_id = None
    if result.cancel_requested or detail.cancel_requested:
        cancel_unstarted(result, detail)
    session.commit()
    return result, detail
