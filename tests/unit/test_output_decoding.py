"""Reading a runner's output report (either shape) and presenting kept bytes as text."""
import base64

import pytest

from services.scheduler.output import BadLogs, as_base64, as_text, from_report


def b64(data):
    return base64.b64encode(data).decode()


def test_new_shape_is_decoded_to_the_bytes_sent():
    row = from_report({"encoding": "base64", "stdout": b64(b"\x00\xff"), "stdout_head": 2, "stdout_total": 2})
    assert row["stdout"] == b"\x00\xff" and (row["stdout_head"], row["stdout_total"]) == (2, 2)
    assert row["stderr"] == b"" and (row["stderr_head"], row["stderr_total"]) == (0, 0)


def test_old_shape_is_its_utf8_and_a_cut_one_has_no_head():
    row = from_report({"stdout": "\u00e9\x00", "stdout_total": 3, "stderr": "end", "stderr_truncated": True,
                       "stderr_total": 90})
    assert (row["stdout"], row["stdout_head"], row["stdout_total"]) == (b"\xc3\xa9\x00", 3, 3)
    assert (row["stderr"], row["stderr_head"], row["stderr_total"]) == (b"end", 0, 90)


def test_counts_are_made_consistent_with_what_is_kept():
    # an old runner counted the bytes before replacing invalid ones by U+FFFD (3 bytes each)
    row = from_report({"stdout": "\ufffd", "stdout_total": 1})
    assert (row["stdout_head"], row["stdout_total"]) == (3, 3)
    row = from_report({"encoding": "base64", "stdout": b64(b"abc"), "stdout_head": 99, "stdout_total": 3})
    assert row["stdout_head"] == 3


@pytest.mark.parametrize("logs, field", [
    ([], "logs"),
    ({"encoding": "hex"}, "logs.encoding"),
    ({"encoding": "base64", "stdout": "%%%"}, "logs.stdout"),
    ({"encoding": "base64", "stderr": 5}, "logs.stderr"),
    ({"encoding": "base64", "stdout_total": -1}, "logs.stdout_total"),
    ({"encoding": "base64", "stdout_head": True}, "logs.stdout_head"),
    ({"stdout_total": "12"}, "logs.stdout_total"),
])
def test_unreadable_logs_are_refused_naming_the_field(logs, field):
    with pytest.raises(BadLogs, match=f"^{field}: "):
        from_report(logs)


def test_text_replaces_invalid_utf8_and_decodes_head_and_tail_apart():
    row = {"stdout": b"ab\xe2\x82" + b"\xac\xffz", "stdout_head": 4, "stdout_total": 50}
    text = as_text(row)
    assert text["encoding"] == "utf-8"
    assert text["stdout"] == "ab\ufffd" + "\ufffd\ufffdz"
    assert (text["stdout_head"], text["stdout_head_chars"], text["stdout_bytes"]) == (4, 3, 7)
    assert (text["stdout_omitted"], text["stdout_total"], text["stdout_truncated"]) == (43, 50, True)
    assert text["stderr"] == "" and text["stderr_omitted"] == 0 and text["stderr_truncated"] is False


def test_base64_gives_the_kept_bytes_exactly():
    raw = as_base64({"stdout": b"\x00\x1b\xff", "stdout_head": 3, "stdout_total": 3}, ["stdout"])
    assert raw == {"encoding": "base64", "stdout": b64(b"\x00\x1b\xff"), "stdout_head": 3, "stdout_total": 3}
