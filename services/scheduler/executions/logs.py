"""An execution's output: kept as runners report it, read whole or past a follower's offsets.

Stored in ``detail_logs``, one row per detail, for its latest attempt; the
columns are ``output``'s (services/scheduler/output.py).
"""
import base64
import logging

from sqlalchemy import case, func, text, tuple_
from sqlalchemy.dialects.postgresql import insert as pg_insert

from services.scheduler import output
from services.scheduler.executions.state import get_detail
from services.scheduler.models import Detail, DetailLog
from shared import statuses as st
from shared.errors import ValidationError
from shared.handlers import first_line, is_transient

log = logging.getLogger(__name__)


def _store_logs_statement():
    """The upsert of an attempt's output, built once (its parameters are bound per call).

    Live snapshots and the final logs may arrive in any order: each stream is
    replaced only by one that is further along, so nothing goes backwards.
    """
    logs = DetailLog.__table__
    stmt = pg_insert(logs)
    updates = {}
    for stream in output.STREAMS:
        # same attempt and bytes produced: the one keeping more of them (the final tail) wins
        newer = (tuple_(stmt.excluded.attempt, stmt.excluded[f"{stream}_total"],
                        func.octet_length(stmt.excluded[stream]))
                 > tuple_(logs.c.attempt, logs.c[f"{stream}_total"], func.octet_length(logs.c[stream])))
        for column in (stream, f"{stream}_head", f"{stream}_total"):
            updates[column] = case((newer, stmt.excluded[column]), else_=logs.c[column])
    updates["attempt"] = func.greatest(logs.c.attempt, stmt.excluded.attempt)
    return stmt.on_conflict_do_update(index_elements=["detail_id"], set_=updates)


STORE_LOGS = _store_logs_statement()


def logs_values(detail_id, attempt, row):
    """``STORE_LOGS``' parameters for an attempt's output (``output.from_report``'s columns)."""
    values = {"detail_id": detail_id, "attempt": attempt, "stdout": b"", "stderr": b"",
              "stdout_head": 0, "stderr_head": 0, "stdout_total": 0, "stderr_total": 0}
    values.update({k: v for k, v in row.items() if k in values})
    return values


def store_logs(session, detail_id, attempt, row, commit=True):
    """Keep an attempt's output (``output.from_report``'s columns); a newer attempt, or more bytes of
    the same one, wins."""
    session.execute(STORE_LOGS, logs_values(detail_id, attempt, row))
    if commit:
        session.commit()


def store_live_logs(session, report):
    """A running attempt's output so far (ignored once the attempt is no longer current).

    Best effort: a snapshot that cannot be read or stored is skipped (the next
    one, or the final output, takes its place); the database away raises.
    """
    detail = session.get(Detail, report["detail_id"])
    if detail is None or detail.attempt != report["attempt"] or detail.status in st.TERMINAL:
        session.rollback()
        return
    try:
        store_logs(session, detail.id, report["attempt"], output.from_report(report.get("logs")))
    except Exception as exc:  # noqa: BLE001 -- one bad snapshot must not stop the next
        if is_transient(exc):
            raise
        session.rollback()
        log.warning("live output of execution %s skipped: %s", detail.id, first_line(exc)[:200])


def _logs_row(session, result_id, detail_id):
    detail = get_detail(session, result_id, detail_id)
    row = session.get(DetailLog, detail.id)
    about = {"detail_id": detail.id, "status": detail.status, "attempt": detail.attempt}
    if row is None:
        return about, {}
    about["logs_attempt"] = row.attempt
    return about, {column: getattr(row, column) for stream in output.STREAMS
                   for column in (stream, f"{stream}_head", f"{stream}_total")}


def get_logs(session, result_id, detail_id):
    """The execution's output as text (JSON readers; see ``output.as_text``)."""
    about, row = _logs_row(session, result_id, detail_id)
    return {**about, **output.as_text(row)}


def get_log_bytes(session, result_id, detail_id, streams=output.STREAMS, since=None):
    """The execution's output as kept, bytes exactly (base64; see ``output.as_base64``).

    ``since`` ({"attempt": n, "stdout": offset, "stderr": offset}) asks only for
    what is kept past those offsets of that attempt (a follower's next poll);
    when the kept output is another attempt's, the offsets count as 0.
    """
    streams = [s for s in output.STREAMS if s in streams]
    offsets = _since_offsets(since, streams)
    if offsets is not None:
        attempt = since.get("attempt")
        if attempt is not None and not -2 ** 31 <= attempt < 2 ** 31:
            attempt = None  # no such attempt: read from the start
        return _log_bytes_since(session, result_id, detail_id, streams, offsets, attempt)
    about, row = _logs_row(session, result_id, detail_id)
    return {**about, **output.as_base64(row, streams)}


def _since_columns(stream):
    # a: the row's figures made consistent, as output._split; b: the offset, 0 for another
    # attempt, clamped as output.past; c: the bytes kept past it, cut in PostgreSQL
    return (f"{stream}, octet_length({stream}) AS l_{stream}, "
            f"LEAST({stream}_head, octet_length({stream})) AS h_{stream}, "
            f"GREATEST({stream}_total, octet_length({stream})) AS t_{stream}",
            f"{stream}, l_{stream}, h_{stream}, t_{stream}, LEAST(GREATEST("
            f"CASE WHEN attempt = :attempt THEN :since_{stream} ELSE 0 END, 0), t_{stream}) AS s_{stream}",
            f"h_{stream}, t_{stream}, s_{stream}, CASE WHEN s_{stream} <= h_{stream} "
            f"THEN substring({stream} FROM (s_{stream} + 1)::int) "
            f"ELSE substring({stream} FROM (h_{stream} + 1 + GREATEST(0, s_{stream} - GREATEST(h_{stream}, "
            f"t_{stream} - (l_{stream} - h_{stream}))))::int) END AS {stream}")


def _logs_since_statement():
    a, b, c = zip(*(_since_columns(stream) for stream in output.STREAMS))
    return text(f"SELECT attempt, {', '.join(c)} FROM ("
                f"SELECT attempt, {', '.join(b)} FROM ("
                f"SELECT attempt, {', '.join(a)} FROM detail_logs WHERE detail_id = :detail_id) a) b")


LOGS_SINCE = _logs_since_statement()


def _log_bytes_since(session, result_id, detail_id, streams, offsets, attempt):
    """``output.as_base64(row, streams, offsets)``, with the bytes before the offsets left in the
    database: a follower's poll of a long log moves only what is new."""
    detail = get_detail(session, result_id, detail_id)
    about = {"detail_id": detail.id, "status": detail.status, "attempt": detail.attempt}
    row = session.execute(LOGS_SINCE, {"detail_id": detail.id, "attempt": attempt,
                                       **{f"since_{s}": offsets.get(s, 0) for s in output.STREAMS}}).first()
    if row is None:
        return {**about, **output.as_base64({}, streams, {})}
    row = row._mapping
    about["logs_attempt"] = row["attempt"]
    out = {"encoding": "base64"}
    for stream in streams:
        new = bytes(row[stream] or b"")
        head, total, since = row[f"h_{stream}"], row[f"t_{stream}"], row[f"s_{stream}"]
        out[stream] = base64.b64encode(new).decode("ascii")
        out[f"{stream}_head"] = output.past_head(len(new), head, total, since)
        out[f"{stream}_total"] = total
        out[f"{stream}_since"] = since
    return {**about, **out}


def _since_offsets(since, streams):
    """``since``'s offsets checked: None when not given; a ValidationError naming ``since``."""
    if since is None:
        return None
    if not isinstance(since, dict):
        raise ValidationError("must be an object of stream offsets", "since")
    attempt = since.get("attempt")
    if attempt is not None and (isinstance(attempt, bool) or not isinstance(attempt, int)):
        raise ValidationError("must be an attempt number or null", "since.attempt")
    offsets = {}
    for stream in streams:
        value = since.get(stream, 0)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValidationError("must be a whole number of bytes", f"since.{stream}")
        offsets[stream] = min(value, 2 ** 62)  # past any stream's end, and within PostgreSQL's bigint
    return offsets
