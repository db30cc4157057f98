"""An execution's output as bytes, folded by the scheduler alone on the real broker and PostgreSQL.

Runner reports are sent as the real events a runner dispatches, in the new
shape (base64) and the old one (text); the task is handed to each RUN as the gateway does.
"""
import base64
import functools

import pytest
from nameko.standalone.events import event_dispatcher
from nameko.testing.services import entrypoint_waiter

from services.scheduler.output import past
from services.scheduler.service import SchedulerService
from shared.errors import ValidationError
from shared.messages import LogBytes
from tests.interface.test_scheduler_service import run_ready
from tests.support import call

ODD = b"a\x00b\xff\x1b[31mred\n"  # a NUL, a byte that is never UTF-8, an escape sequence


def b64(data):
    return base64.b64encode(data).decode()


@pytest.fixture
def scheduler(container_factory, service_config):
    container = container_factory(SchedulerService, service_config)
    container.start()
    return container


@pytest.fixture
def running(scheduler, service_config):
    """(container, dispatch, work): one execution claimed by runner-a and started."""
    result = run_ready(scheduler, {"operation": "RUN", "times": 1})
    work = call(scheduler, "claim_execution", "runner-a")
    assert work["result_id"] == result["result_id"]
    dispatch = event_dispatcher(service_config)
    with entrypoint_waiter(scheduler, "on_execution_started"):
        dispatch("runner", "execution_started", {"detail_id": work["detail_id"], "attempt": 1,
                                                 "runner": "runner-a", "start": 10.0, "container_id": "c"})
    return scheduler, dispatch, work


def finish(running, logs, **fields):
    container, dispatch, work = running
    report = {"detail_id": work["detail_id"], "attempt": 1, "runner": "runner-a", "status": "COMPLETE",
              "exit_code": 0, "reason": None, "start": 10.0, "end": 11.0, "logs": logs, **fields}
    with entrypoint_waiter(container, "on_execution_finished"):
        dispatch("runner", "execution_finished", report)
    detail = call(container, "get_detail", work["result_id"], work["detail_id"])
    raw = declared(call(container, "get_log_bytes", work["result_id"], work["detail_id"]))
    text = call(container, "get_logs", work["result_id"], work["detail_id"])
    return detail, raw, text


def declared(answer):
    """``answer`` if it is what shared/messages.py declares of get_log_bytes, fields and all."""
    LogBytes.model_validate(answer)
    assert set(answer) <= set(LogBytes.model_fields), set(answer) - set(LogBytes.model_fields)
    return answer


def test_bytes_with_nul_and_invalid_utf8_round_trip_exactly(running):
    detail, raw, text = finish(running, {"encoding": "base64", "stdout": b64(ODD), "stdout_head": len(ODD),
                                         "stdout_total": len(ODD), "stderr": b64(b"\xc3"), "stderr_head": 1,
                                         "stderr_total": 1})
    assert (detail["status"], detail["exit_code"], detail["reason"]) == ("COMPLETE", 0, None)
    assert base64.b64decode(raw["stdout"]) == ODD and base64.b64decode(raw["stderr"]) == b"\xc3"
    assert raw["encoding"] == "base64" and raw["stdout_head"] == raw["stdout_total"] == len(ODD)
    assert text["encoding"] == "utf-8"
    assert text["stdout"] == "a\x00b\ufffd\x1b[31mred\n" and text["stderr"] == "\ufffd"
    assert text["stdout_omitted"] == 0 and text["stdout_truncated"] is False


def test_a_cut_stream_says_how_many_bytes_were_omitted_and_where(running):
    kept = b"first" + b"\xe2\x82" + b"\xac-last"  # a euro sign cut in two by the omission
    _, raw, text = finish(running, {"encoding": "base64", "stdout": b64(kept), "stdout_head": 7,
                                    "stdout_total": 1000})
    assert base64.b64decode(raw["stdout"]) == kept and raw["stdout_head"] == 7
    assert text["stdout"] == "first\ufffd\ufffd-last"  # head and tail decoded apart
    assert (text["stdout_head"], text["stdout_head_chars"], text["stdout_bytes"]) == (7, 6, 13)
    assert (text["stdout_omitted"], text["stdout_total"], text["stdout_truncated"]) == (987, 1000, True)


def test_old_text_reports_with_a_nul_are_stored_as_their_utf8(running):
    detail, raw, text = finish(running, {"stdout": "a\x00b\u00e9", "stdout_truncated": False, "stdout_total": 5,
                                         "stderr": "end only", "stderr_truncated": True, "stderr_total": 100})
    assert detail["status"] == "COMPLETE" and detail["reason"] is None
    assert base64.b64decode(raw["stdout"]) == "a\x00b\u00e9".encode()
    assert text["stdout"] == "a\x00b\u00e9" and text["stdout_omitted"] == 0
    # an old runner kept a cut stream's end: no head, the omitted bytes come first
    assert (raw["stderr_head"], text["stderr_omitted"], text["stderr_truncated"]) == (0, 92, True)


def test_output_postgresql_refuses_still_ends_the_execution_with_its_status(running):
    # a total beyond bigint: PostgreSQL refuses the row (a non-transient error while folding)
    logs = {"encoding": "base64", "stdout": b64(b"out"), "stdout_head": 3, "stdout_total": 10 ** 20}
    detail, raw, text = finish(running, logs, status="ERROR", exit_code=3, reason="exited with code 3")
    assert (detail["status"], detail["exit_code"]) == ("ERROR", 3)
    assert detail["reason"].startswith("exited with code 3; its output could not be stored: ")
    assert "out of range" in detail["reason"]
    assert raw["stdout"] == "" and text["stdout"] == ""
    assert detail["attempts"][0]["reason"] == detail["reason"]


def test_unreadable_output_still_ends_the_execution_complete(running):
    detail, _, _ = finish(running, {"encoding": "base64", "stdout": "not base64!"})
    assert (detail["status"], detail["exit_code"]) == ("COMPLETE", 0)
    assert detail["reason"].startswith("its output could not be stored: logs.stdout: is not base64")


def test_report_fields_that_cannot_be_stored_are_named_and_the_rest_kept(running):
    detail, raw, _ = finish(running, {"encoding": "base64", "stdout": b64(b"ok")},
                            exit_code=0, reason="done\x00\ud800", end="soon")
    assert (detail["status"], detail["exit_code"]) == ("COMPLETE", 0)
    assert detail["reason"].startswith("done\\x00?; the runner's report could not be read in full (end ")
    assert detail["end"] is not None and base64.b64decode(raw["stdout"]) == b"ok"


def test_live_output_in_the_new_shape_is_stored_and_a_bad_snapshot_skipped(running):
    container, dispatch, work = running
    snapshot = {"detail_id": work["detail_id"], "attempt": 1, "runner": "runner-a",
                "logs": {"encoding": "base64", "stdout": b64(b"\x00so far"), "stdout_head": 7,
                         "stdout_total": 7}}
    with entrypoint_waiter(container, "on_execution_output"):
        dispatch("runner", "execution_output", snapshot)
    with entrypoint_waiter(container, "on_execution_output"):
        dispatch("runner", "execution_output", {**snapshot, "logs": {"encoding": "rot13", "stdout": "x"}})
    text = call(container, "get_logs", work["result_id"], work["detail_id"])
    assert text["status"] == "RUNNING" and text["stdout"] == "\x00so far"


def test_a_read_since_offsets_answers_only_the_bytes_kept_past_them(running):
    kept = b"first" + b"-last"  # the first 5 bytes of 1000, then the last 5
    _, whole, _ = finish(running, {"encoding": "base64", "stdout": b64(kept), "stdout_head": 5,
                                   "stdout_total": 1000, "stderr": b64(b"err\n"), "stderr_head": 4,
                                   "stderr_total": 4})
    container, _, work = running
    read = functools.partial(call, container, "get_log_bytes")  # as the configured admin
    past_head = read(work["result_id"], work["detail_id"], since={"attempt": 1, "stdout": 3, "stderr": 4})
    in_tail = read(work["result_id"], work["detail_id"], since={"attempt": 1, "stdout": 997, "stderr": 0})
    other_attempt = read(work["result_id"], work["detail_id"], since={"attempt": 7, "stdout": 999})
    with pytest.raises(ValidationError) as refused:
        read(work["result_id"], work["detail_id"], since={"attempt": 1, "stdout": -1})
    with pytest.raises(ValidationError) as bad_attempt:
        read(work["result_id"], work["detail_id"], since={"attempt": "1"})
    huge = read(work["result_id"], work["detail_id"], since={"attempt": 10**40, "stdout": 10**40})
    assert "stdout_since" not in whole  # a read without since is answered as before
    assert base64.b64decode(past_head["stdout"]) == b"st-last" and past_head["stdout_head"] == 2
    assert (past_head["stdout_since"], past_head["stdout_total"]) == (3, 1000)
    assert past_head["stderr"] == "" and past_head["stderr_since"] == 4
    assert base64.b64decode(in_tail["stdout"]) == b"ast" and in_tail["stdout_head"] == 3
    assert base64.b64decode(in_tail["stderr"]) == b"err\n"
    assert base64.b64decode(other_attempt["stdout"]) == kept and other_attempt["stdout_since"] == 0
    assert refused.value.field == "since.stdout" and bad_attempt.value.field == "since.attempt"
    for answer in (past_head, in_tail, other_attempt, huge):
        declared(answer)
    assert base64.b64decode(huge["stdout"]) == kept and huge["stdout_since"] == 0


def test_a_read_since_any_offset_agrees_with_cutting_the_whole_read(running):
    kept = bytes(range(40))  # the first 25 bytes of 300, then the last 15
    finish(running, {"encoding": "base64", "stdout": b64(kept), "stdout_head": 25, "stdout_total": 300})
    container, _, work = running
    read = functools.partial(call, container, "get_log_bytes")  # as the configured admin
    for since in (0, 1, 24, 25, 26, 150, 284, 285, 286, 299, 300, 301, 10**12):
        answer = read(work["result_id"], work["detail_id"], ["stdout"], since={"attempt": 1, "stdout": since})
        cut, head, start = past(kept, 25, 300, since)
        assert (base64.b64decode(answer["stdout"]), answer["stdout_head"], answer["stdout_since"]) == \
            (cut, head, start), since
        assert answer["stdout_total"] == 300 and "stderr" not in answer


def test_the_first_output_carried_by_the_start_report_is_stored_and_a_bad_one_does_not_stop_the_start(
        scheduler, service_config):
    dispatch = event_dispatcher(service_config)
    for logs, expected in (({"encoding": "base64", "stdout": b64(b"early\n"), "stdout_head": 6,
                             "stdout_total": 6}, "early\n"),
                           ({"encoding": "rot13", "stdout": "x"}, "")):
        result = run_ready(scheduler, {"operation": "RUN", "times": 1})
        work = call(scheduler, "claim_executions", "runner-a", 1)[0]
        assert work["result_id"] == result["result_id"]
        with entrypoint_waiter(scheduler, "on_execution_started"):
            dispatch("runner", "execution_started", {"detail_id": work["detail_id"], "attempt": 1,
                                                     "runner": "runner-a", "start": 10.0, "container_id": "c",
                                                     "logs": logs})
        text = call(scheduler, "get_logs", work["result_id"], work["detail_id"])
        assert text["status"] == "RUNNING" and (text.get("stdout") or "") == expected
