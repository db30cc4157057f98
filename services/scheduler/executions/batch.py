"""A runner's reports of several executions folded in one transaction (``execution_reports``).

The rules are ``reports``' (``fold_started``, ``fold_finished``), applied to each report in the order the
runner sent them; what changes is how many round trips it takes.  The batch's details are locked in one
statement (by id), then their results in one (by id): every writer locks a detail before its result, and two
batches lock theirs in the same order, so no two writers wait on each other in a circle.  Each detail and
result row is written once, when the session flushes (a result whose executions several reports are about:
its counters once for all of them), the teams' held counts once per team, the output in one upsert, the runs
waiting on the ended ones found in the same transaction, and one commit.

A report that changes nothing (a duplicate, an attempt overtaken) changes nothing here either: a batch
delivered twice is folded once.  One whose fields or output cannot be stored is folded with a reason saying
so, as alone.  Should anything else fail (a value PostgreSQL refuses), the caller rolls the batch back and
folds its reports one by one, each in a transaction of its own (the poison one then fails alone).
"""
from collections import Counter
from dataclasses import dataclass, field

from sqlalchemy import select, text

from services.scheduler import output
from services.scheduler.executions import dependencies as deps
from services.scheduler.executions.logs import STORE_LOGS, logs_values
from services.scheduler.executions.reports import (
    clean_text,
    fold_finished,
    fold_started,
    is_stale_end,
)
from services.scheduler.executions.state import db_now
from services.scheduler.models import Detail, Result
from shared import statuses as st
from shared.handlers import first_line

STARTED = "started"
FINISHED = "finished"

RELEASE_MANY = text("UPDATE teams SET active = greatest(active - :n, 0) WHERE name = :team")


@dataclass
class Folded:
    """What a batch changed, for what follows its commit (metrics, wake-ups, the run's end, dependents)."""

    started: list = field(default_factory=list)   # (result, detail) of each start folded
    finished: list = field(default_factory=list)  # (result, detail) of each end folded
    waits: list = field(default_factory=list)     # queue waits of starts folded with their ends
    waiting_on: dict = field(default_factory=dict)  # result id -> runs waiting on it (one of its details ended)


class _Outputs:
    """The batch's output rows, kept in one upsert (two when a detail's start and end both carry output)."""

    def __init__(self):
        self.rounds = [{}]

    def store(self, detail_id, attempt, logs):
        try:
            row = output.from_report(logs)
        except Exception as exc:  # noqa: BLE001 -- an unreadable output: the outcome is kept without it
            return clean_text(first_line(exc) or exc.__class__.__name__, 200)
        values = logs_values(detail_id, attempt, row)
        for kept in self.rounds:  # one row a detail a statement (ON CONFLICT cannot touch a row twice)
            if detail_id not in kept:
                kept[detail_id] = values
                return None
        self.rounds.append({detail_id: values})
        return None

    def write(self, session):
        for kept in self.rounds:
            if kept:
                session.execute(STORE_LOGS, list(kept.values()))


def fold(session, reports, retry_base=1.0, retry_cap=300.0):
    """Fold ``reports``: (STARTED, report) or (FINISHED, (report, logs, tes_log)), read and in order.

    Commits once; returns a ``Folded``.  Raises what PostgreSQL raised (the caller rolls back)."""
    ids = sorted({(item if kind == STARTED else item[0])["detail_id"] for kind, item in reports})
    details = {row.id: row for row in session.scalars(
        select(Detail).where(Detail.id.in_(ids)).order_by(Detail.id).with_for_update())}
    result_ids = sorted({detail.result_id for detail in details.values()})
    results = {row.id: row for row in session.scalars(
        select(Result).where(Result.id.in_(result_ids)).order_by(Result.id).with_for_update())} if result_ids else {}
    outputs, released, folded, ended = _Outputs(), Counter(), Folded(), set()
    clock = []  # the database's clock, asked once, and only if a report says its runner was lost

    def db_clock():
        if not clock:
            clock.append(db_now(session))
        return clock[0]

    for kind, item in reports:
        if kind == STARTED:
            detail = details.get(item["detail_id"])
            result = results.get(detail.result_id) if detail is not None else None
            if fold_started(detail, result, item, outputs.store):
                folded.started.append((result, detail))
            continue
        report, logs, tes_log = item
        detail = details.get(report["detail_id"])
        if is_stale_end(detail, report, db_clock):
            if logs and detail is not None:  # the output of an attempt overtaken by events is still its output
                outputs.store(detail.id, report["attempt"], logs)
            continue
        result = results[detail.result_id]
        wait = fold_finished(detail, result, report, logs=logs, tes_log=tes_log, retry_base=retry_base,
                             retry_cap=retry_cap, store=outputs.store, release=lambda team: released.update([team]))
        if wait is not None:
            folded.waits.append(wait)
        folded.finished.append((result, detail))
        if detail.status in st.TERMINAL:
            ended.add(result.id)
    session.flush()
    outputs.write(session)
    for team, count in sorted(released.items(), key=lambda pair: str(pair[0])):
        session.execute(RELEASE_MANY, {"team": team, "n": count})
    if ended:
        folded.waiting_on = deps.waiting_on_any(session, sorted(ended))
    session.commit()
    return folded
