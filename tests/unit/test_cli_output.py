"""An execution's output as the ``stevedore`` command shows it: controls visible, bytes on demand."""
import pytest

from stevedore_jobs.cli import main
from stevedore_jobs.display import output_text, shown_output
from tests.unit.test_cli_client import DETAIL, LOGS, RESULT, server  # noqa: F401 -- the fixture

ODD = "a\x00b\ufffd\x1b[31mred\n"  # what the API gives for printf 'a\000b\377\033[31mred\n'


def test_control_characters_are_shown_escaped_and_newlines_and_tabs_kept():
    assert shown_output(ODD) == "a\\x00b\ufffd\\x1b[31mred\n"
    assert shown_output("x\ty\r\n\x07\x7f\x9b\u202eevil\ud800") == "x\ty\\x0d\n\\x07\\x7f\\x9b\\u202eevil\\ud800"
    assert shown_output("plain \u00e9\u20ac text") == "plain \u00e9\u20ac text"


def test_omitted_bytes_are_marked_where_they_were_left_out():
    logs = {"stdout": "first\nlast\n", "stdout_head_chars": 6, "stdout_omitted": 1234}
    assert output_text(logs, "stdout") == "first\n[stevedore: 1234 bytes not kept]\nlast\n"
    logs = {"stdout": "abcdef", "stdout_head_chars": 3, "stdout_omitted": 9}
    assert output_text(logs, "stdout") == "abc\n[stevedore: 9 bytes not kept]\ndef"
    assert output_text({"stdout": "\x1b[2J"}, "stdout") == "\\x1b[2J"


def test_logs_never_write_a_control_character_to_the_terminal(server, capsys):  # noqa: F811
    server.routes[LOGS] = [(200, {"status": "COMPLETE", "stdout": ODD, "stderr": "\x1b]0;title\x07",
                                  "stdout_omitted": 0, "stderr_omitted": 0})]
    assert main(["logs", RESULT, DETAIL]) == 0
    out = capsys.readouterr()
    assert (out.out, out.err) == ("a\\x00b\ufffd\\x1b[31mred\n", "\\x1b]0;title\\x07")


def test_followed_output_is_neutralised_too(server, capsys):  # noqa: F811
    stream = "event: stdout\ndata: \x1b[1mbold\n\nevent: end\ndata: {}\n\n"
    server.routes[LOGS] = [(200, stream, {"Content-Type": "text/event-stream"})]
    assert main(["logs", RESULT, DETAIL, "--follow"]) == 0
    assert capsys.readouterr().out == "\\x1b[1mbold\n"


def test_followed_output_that_is_json_is_shown_as_the_job_wrote_it(server, capsys):  # noqa: F811
    import json

    from services.gateway.log_events import sse

    lines = ['{"stream": "stderr", "text": "moved"}\n', '{"line": "lost its braces"}\n', '{"text": "joined"}\n']
    stream = "".join(sse("stdout", line) for line in lines) + sse("end", json.dumps({"status": "COMPLETE"}))
    server.routes[LOGS] = [(200, stream, {"Content-Type": "text/event-stream"})]
    assert main(["logs", RESULT, DETAIL, "--follow"]) == 0
    out = capsys.readouterr()
    assert (out.out, out.err) == ("".join(lines), "")
    server.routes[LOGS] = [(200, stream, {"Content-Type": "text/event-stream"})]
    assert main(["--json", "logs", RESULT, DETAIL, "--follow"]) == 0
    assert [json.loads(line) for line in capsys.readouterr().out.splitlines()] == \
        [{"stream": "stdout", "text": line} for line in lines]


def test_raw_writes_the_stream_bytes_exactly_and_notes_what_was_omitted(server, capsysbinary):  # noqa: F811
    server.routes[LOGS + "stderr/"] = [(200, b"a\x00b\xff\x1b[31mred\n", {
        "Content-Type": "application/octet-stream", "Stevedore-Head-Bytes": "4",
        "Stevedore-Omitted-Bytes": "10", "Stevedore-Total-Bytes": "22", "Stevedore-Status": "COMPLETE"})]
    assert main(["logs", RESULT, DETAIL, "--raw", "--stream", "stderr"]) == 0
    out = capsysbinary.readouterr()
    assert out.out == b"a\x00b\xff\x1b[31mred\n"
    assert out.err == b"stevedore: 10 bytes of stderr were not kept: they came after its first 4 bytes\n"


def test_raw_refuses_to_write_the_jobs_bytes_to_a_terminal(server, capsys, monkeypatch):  # noqa: F811
    import sys

    server.routes[LOGS + "stdout/"] = [(200, b"\x1b]0;pwned\x07\x1b[2J", {"Content-Type": "application/octet-stream"})]
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    assert main(["logs", RESULT, DETAIL, "--raw"]) == 2
    out = capsys.readouterr()
    assert out.out == "" and "redirect" in out.err and "\x1b" not in out.err
    assert not any(path.endswith("stdout/") for path, *_ in server.seen)


@pytest.mark.parametrize("args", [["--raw", "--follow"], ["--stream", "stderr"]])
def test_raw_options_used_wrongly_are_a_usage_error(server, capsys, args):  # noqa: F811
    assert main(["logs", RESULT, DETAIL, *args]) == 2
    assert capsys.readouterr().err.startswith("stevedore: --")


# what a hostile server, or a name a hostile user chose, may hold: CSI (ESC [ and the one-character C1
# CSI), an OSC title, a right-to-left override; the door refuses the controls, not the bidi override
HOSTILE = "evil\x1b[2J\x9b31m\x1b]0;pwned\x07\u202etxt.exe"
HOSTILE_SHOWN = "evil\\x1b[2J\\x9b31m\\x1b]0;pwned\\x07\\u202etxt.exe"


def test_tables_and_fields_show_control_characters_of_server_values_escaped(server, capsys):  # noqa: F811
    from tests.unit.test_cli_client import task

    hostile = {**task(HOSTILE, "a" * 32), "error": HOSTILE, "labels": {"k": HOSTILE}}
    server.routes["/task/"] = [(200, [hostile])]
    server.routes[f"/task/{'a' * 32}/"] = [(200, hostile)]
    assert main(["task", "ls"]) == 0
    assert main(["task", "show", "a" * 32]) == 0
    out = capsys.readouterr().out
    assert HOSTILE_SHOWN in out
    assert not any(ch in out for ch in "\x1b\x9b\x07\u202e")


def test_a_message_naming_what_the_server_said_is_escaped_too(server, capsys):  # noqa: F811
    from tests.unit.test_cli_client import task

    server.routes[f"/task/{'a' * 32}/"] = [(200, task(HOSTILE, "a" * 32))]
    assert main(["task", "rm", "a" * 32]) == 0
    out = capsys.readouterr().out
    assert HOSTILE_SHOWN in out and not any(ch in out for ch in "\x1b\x9b\x07\u202e")


def test_an_error_message_from_the_server_reaches_the_terminal_escaped(server, capsys):  # noqa: F811
    server.routes["/task/"] = [(400, {"error": "VALIDATION_ERROR", "message": HOSTILE})]
    assert main(["task", "ls"]) == 2
    err = capsys.readouterr().err
    assert HOSTILE_SHOWN in err and not any(ch in err for ch in "\x1b\x9b\x07\u202e")


def test_json_output_holds_no_raw_terminal_control_and_reads_back_the_same(server, capsys):  # noqa: F811
    import json

    from tests.unit.test_cli_client import task

    hostile = {**task(HOSTILE, "a" * 32), "error": HOSTILE}
    server.routes["/task/"] = [(200, [hostile])]
    server.routes[LOGS] = [(200, {"status": "COMPLETE", "stdout": HOSTILE, "stderr": "",
                                  "stdout_omitted": 0, "stderr_omitted": 0})]
    assert main(["--json", "task", "ls"]) == 0
    assert main(["--json", "logs", RESULT, DETAIL]) == 0
    stream = f"event: stdout\ndata: {HOSTILE}\n\nevent: end\ndata: {{}}\n\n"
    server.routes[LOGS] = [(200, stream, {"Content-Type": "text/event-stream"})]
    assert main(["--json", "logs", RESULT, DETAIL, "--follow"]) == 0
    out = capsys.readouterr().out
    assert not any(ch in out for ch in "\x1b\x9b\x07\u202e")
    tasks_json, rest = out.split("\n]\n", 1)
    assert json.loads(tasks_json + "]")[0]["name"] == HOSTILE
    logs_json, followed = rest.split("\n}\n", 1)
    assert json.loads(logs_json + "}")["stdout"] == HOSTILE
    assert json.loads(followed) == {"stream": "stdout", "text": HOSTILE + "\n"}
