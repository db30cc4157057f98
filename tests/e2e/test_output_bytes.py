"""Output that is not text (a NUL, invalid UTF-8, escape sequences) from a real container, end to end.

The job once ended ERROR "runner was lost" because PostgreSQL text cannot hold a NUL.
All of it runs on the shared system, whose runner keeps the engine's default json-file
log driver: that driver turns bytes that are not UTF-8 into U+FFFD, but the runner reads
the output by attaching to the container, so the bytes come through exactly.
"""
import json
import os
import subprocess
import sys

import pytest

from tests.e2e.test_logs import read_events

pytestmark = pytest.mark.e2e

PRINTED = b"a\x00b\xff\x1b[31mred\n"
ODD = ["sh", "-c", r"printf 'a\000b\377\033[31mred\n'; printf 'e\033]0;x\007\n' >&2"]
COMMAND = os.path.join(os.path.dirname(sys.executable), "stevedore")


@pytest.fixture(scope="module")
def odd_run(api, ready_tasks):
    result_id = api.run(ready_tasks["ok"]["task_id"], times=1, command=ODD)
    api.wait_result(result_id)
    [detail] = api.details(result_id)
    return result_id, detail


def test_a_nul_in_the_output_no_longer_loses_the_execution(api, ready_tasks):
    result_id = api.run(ready_tasks["ok"]["task_id"], times=1, command=["sh", "-c", r"printf 'a\000b\n'"])
    assert api.wait_result(result_id)["status"] == "COMPLETE"
    [detail] = api.details(result_id)
    assert (detail["status"], detail["exit_code"], detail["reason"]) == ("COMPLETE", 0, None)
    raw = api.get(f"/result/{result_id}/detail/{detail['detail_id']}/logs/stdout/")
    assert raw.content == b"a\x00b\n"


def test_a_long_binary_line_comes_back_byte_for_byte_through_the_raw_download(api, ready_tasks):
    # 300,000 bytes of 0xff with no newline (json-file would give U+FFFD; Docker 20.10's local
    # driver would drop the newline after a line over 16 KiB), NULs, then a short last line
    command = ["sh", "-c", r"printf 'x\000y'; head -c 300000 /dev/zero | tr '\000' '\377'; printf '\000\nend\n'"]
    printed = b"x\x00y" + b"\xff" * 300000 + b"\x00\nend\n"
    result_id = api.run(ready_tasks["ok"]["task_id"], times=1, command=command)
    assert api.wait_result(result_id)["status"] == "COMPLETE"
    [detail] = api.details(result_id)
    raw = api.get(f"/result/{result_id}/detail/{detail['detail_id']}/logs/stdout/")
    assert raw.content == printed
    assert raw.headers["Stevedore-Total-Bytes"] == str(len(printed))


def test_output_with_a_nul_and_invalid_utf8_ends_complete(api, odd_run):
    result_id, detail = odd_run
    assert (detail["status"], detail["exit_code"], detail["reason"]) == ("COMPLETE", 0, None)
    assert api.get(f"/result/{result_id}/").json()["status"] == "COMPLETE"
    listing = api.get("/result/")
    assert listing.status_code == 200 and result_id in [r["result_id"] for r in listing.json()]


def test_raw_download_returns_exactly_the_bytes_printed(api, odd_run):
    result_id, detail = odd_run
    response = api.get(f"/result/{result_id}/detail/{detail['detail_id']}/logs/stdout/")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/octet-stream"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.content == PRINTED
    assert (response.headers["Stevedore-Head-Bytes"], response.headers["Stevedore-Omitted-Bytes"],
            response.headers["Stevedore-Total-Bytes"]) == (str(len(PRINTED)), "0", str(len(PRINTED)))
    stderr = api.get(f"/result/{result_id}/detail/{detail['detail_id']}/logs/stderr/")
    assert stderr.content == b"e\x1b]0;x\x07\n"


def test_json_logs_give_the_text_with_invalid_bytes_replaced(api, odd_run):
    result_id, detail = odd_run
    logs = api.get(f"/result/{result_id}/detail/{detail['detail_id']}/logs/").json()
    assert logs["encoding"] == "utf-8"
    assert logs["stdout"] == "a\x00b\ufffd\x1b[31mred\n"
    assert (logs["stdout_bytes"], logs["stdout_omitted"], logs["stdout_total"]) == (len(PRINTED), 0, len(PRINTED))
    assert logs["stdout_truncated"] is False


def test_follow_replays_the_replaced_text(api, odd_run):
    result_id, detail = odd_run
    path = f"/result/{result_id}/detail/{detail['detail_id']}/logs/?follow=true"
    with api.http.get(api.base_url + path, stream=True, timeout=30) as response:
        events = [(event, data) for event, data, _ in read_events(response)]
    assert events[0] == ("stdout", "a\x00b\ufffd\x1b[31mred")
    assert events[-1][0] == "end" and json.loads(events[-1][1])["status"] == "COMPLETE"


def test_unknown_stream_is_a_json_404(api, odd_run):
    result_id, detail = odd_run
    response = api.get(f"/result/{result_id}/detail/{detail['detail_id']}/logs/stdin/")
    assert response.status_code == 404 and response.json()["error"] == "NOT_FOUND"
    response = api.get(f"/result/{result_id}/detail/{'0' * 32}/logs/stdout/")
    assert response.status_code == 404 and response.json()["error"] == "NOT_FOUND"


def stevedore(system, *args):
    environ = {key: value for key, value in os.environ.items() if not key.startswith("STEVEDORE_")}
    environ.update({"STEVEDORE_URL": system.url, "STEVEDORE_TOKEN": system.token})
    return subprocess.run([COMMAND, *args], env=environ, capture_output=True, timeout=60,
                          stdin=subprocess.DEVNULL)


def test_cli_shows_the_output_with_every_control_visible(system, odd_run):
    result_id, _ = odd_run
    proc = stevedore(system, "logs", result_id, "0")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "a\\x00b\ufffd\\x1b[31mred\n".encode()
    assert proc.stderr == b"e\\x1b]0;x\\x07\n"


def test_cli_raw_writes_the_bytes_exactly(system, odd_run):
    result_id, _ = odd_run
    proc = stevedore(system, "logs", result_id, "0", "--raw")
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, PRINTED, b"")
    proc = stevedore(system, "logs", result_id, "0", "--raw", "--stream", "stderr")
    assert (proc.returncode, proc.stdout) == (0, b"e\x1b]0;x\x07\n")


def test_a_long_output_keeps_its_first_and_last_half_and_says_what_was_left_out(api, ready_tasks):
    # 1,288,895 bytes of numbered lines: more than LOG_LIMIT_BYTES (1 MiB, the default)
    printed = "".join(f"{i}\n" for i in range(1, 200001)).encode()
    limit = 1024 * 1024
    result_id = api.run(ready_tasks["ok"]["task_id"], times=1, command=["seq", "1", "200000"])
    assert api.wait_result(result_id, timeout=60)["status"] == "COMPLETE"
    [detail] = api.details(result_id)
    raw = api.get(f"/result/{result_id}/detail/{detail['detail_id']}/logs/stdout/")
    head = limit // 2
    assert raw.content == printed[:head] + printed[-(limit - head):]
    assert (raw.headers["Stevedore-Head-Bytes"], raw.headers["Stevedore-Omitted-Bytes"],
            raw.headers["Stevedore-Total-Bytes"]) == (str(head), str(len(printed) - limit), str(len(printed)))
    logs = api.get(f"/result/{result_id}/detail/{detail['detail_id']}/logs/").json()
    assert (logs["stdout_head"], logs["stdout_head_chars"]) == (head, head)
    assert logs["stdout_omitted"] == len(printed) - limit and logs["stdout_truncated"] is True
    assert logs["stdout"] == (printed[:head] + printed[-(limit - head):]).decode()
