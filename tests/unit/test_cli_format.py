"""What the ``stevedore`` command shows and parses, without a server."""
import io

import pytest
import requests

from stevedore_jobs.cli import build_parser
from stevedore_jobs.client import ApiError, api_error, is_id, is_index, log_chunk, split_lines, sse_events
from stevedore_jobs.display import (Progress, UsageError, format_counts, format_duration, format_fields,
                               format_table, parse_env, progress_text)

# ---------------------------------------------------------------- tables and fields


def test_table_aligns_columns_under_their_headers_and_right_aligns_numbers():
    text = format_table(("INDEX", "NAME", "EXIT"), [(0, "first", 0), (12, "b", None), (3, "ccc", 137)])
    assert text.splitlines() == [
        "INDEX  NAME   EXIT",
        "    0  first     0",
        "   12  b         -",
        "    3  ccc     137",
    ]


def test_table_of_no_rows_is_its_header():
    assert format_table(("ID", "NAME"), []) == "ID  NAME"


def test_table_column_of_only_missing_values_stays_left_aligned():
    assert format_table(("A", "REASON"), [("x", None)]).splitlines()[1] == "x  -"


def test_table_cells_are_one_line_and_clipped():
    text = format_table(("REASON",), [("runner lost\nretrying\t",), ("x" * 80,)], max_width=20)
    lines = text.splitlines()
    assert lines[1] == "runner lost retrying"
    assert lines[2] == "x" * 19 + "…"


def test_fields_align_values_and_leave_out_missing_ones():
    assert format_fields([("id", "abc"), ("error", None), ("repository", "a/b")]) == \
        "id          abc\nrepository  a/b"


@pytest.mark.parametrize("seconds, text", [
    (None, "-"), (0.4242, "0.42s"), (12.34, "12.3s"), (125, "2m05s"), (3725, "1h02m"),
])
def test_durations_read_easily(seconds, text):
    assert format_duration(seconds) == text


def test_counts_show_non_zero_statuses_in_lifecycle_order():
    counts = {"KILLED": 0, "ERROR": 1, "COMPLETE": 3, "QUEUED": 0, "RUNNING": 2, "CANCELLED": 0}
    assert format_counts(counts) == "RUNNING 2  COMPLETE 3  ERROR 1"
    assert format_counts({}) == "-"


# ---------------------------------------------------------------- --env


def test_env_pairs_split_on_the_first_equals_sign():
    assert parse_env(["A=1", "URL=http://x/?a=b", "EMPTY=", "A=2"], environ={}) == \
        {"A": "2", "URL": "http://x/?a=b", "EMPTY": ""}


def test_env_key_alone_passes_this_shells_value():
    assert parse_env(["SECRET"], environ={"SECRET": "s3"}) == {"SECRET": "s3"}
    with pytest.raises(UsageError, match="SECRET is not set in this shell"):
        parse_env(["SECRET"], environ={})


def test_env_without_a_key_is_refused():
    with pytest.raises(UsageError, match="expected KEY=VALUE, got '=value'"):
        parse_env(["=value"], environ={})


def test_no_env_is_an_empty_dict():
    assert parse_env(None, environ={}) == {}


# ---------------------------------------------------------------- progress


def test_progress_text_fills_the_bar_with_finished_executions():
    counts = {"QUEUED": 4, "RUNNING": 2, "COMPLETE": 3, "ERROR": 1}
    assert progress_text(counts, 10, elapsed=3.2, width=10) == \
        "[####------]  4/10  QUEUED 4  RUNNING 2  COMPLETE 3  ERROR 1  3.20s"
    assert progress_text({"COMPLETE": 5}, 5, width=4) == "[####]  5/5  COMPLETE 5"
    assert progress_text({"QUEUED": 3}, 3, width=4) == "[----]  0/3  QUEUED 3"


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_progress_on_a_terminal_is_redrawn_in_place():
    stream, clock = io.StringIO(), Clock()
    progress = Progress(stream, tty=True, clock=clock)
    progress.update({"QUEUED": 2}, 2)
    progress.update({"RUNNING": 1, "COMPLETE": 1}, 2)
    progress.close({"COMPLETE": 2}, 2)
    out = stream.getvalue()
    assert out.count("\n") == 1 and out.endswith("\x1b[K\n")
    assert [part.split("\x1b[K")[0] for part in out.split("\r")[1:]] == [
        "[------------------------]  0/2  QUEUED 2  0.00s",
        "[############------------]  1/2  RUNNING 1  COMPLETE 1  0.00s",
        "[########################]  2/2  COMPLETE 2  0.00s",
    ]


def test_progress_off_a_terminal_is_plain_lines_when_counts_change_and_now_and_then():
    stream, clock = io.StringIO(), Clock()
    progress = Progress(stream, tty=False, interval=2, heartbeat=30, clock=clock)
    progress.update({"QUEUED": 2}, 2)                    # first state: shown
    clock.now += 1
    progress.update({"QUEUED": 1, "RUNNING": 1}, 2)      # changed, but too soon
    clock.now += 1.5
    progress.update({"QUEUED": 1, "RUNNING": 1}, 2)      # changed since the last line: shown
    clock.now += 10
    progress.update({"QUEUED": 1, "RUNNING": 1}, 2)      # unchanged: not shown
    clock.now += 25
    progress.update({"QUEUED": 1, "RUNNING": 1}, 2)      # unchanged for 30s: shown, to say it lives
    clock.now += 1
    progress.close({"COMPLETE": 2}, 2)                    # the end: always shown
    assert "\r" not in stream.getvalue() and "\x1b" not in stream.getvalue()
    assert stream.getvalue().splitlines() == [
        "[------------------------]  0/2  QUEUED 2  0.00s",
        "[------------------------]  0/2  QUEUED 1  RUNNING 1  2.50s",
        "[------------------------]  0/2  QUEUED 1  RUNNING 1  37.5s",
        "[########################]  2/2  COMPLETE 2  38.5s",
    ]


def test_progress_interrupted_on_a_terminal_ends_its_line():
    stream = io.StringIO()
    progress = Progress(stream, tty=True, clock=Clock())
    progress.update({"QUEUED": 1}, 1)
    progress.close()
    assert stream.getvalue().endswith("\n")


# ---------------------------------------------------------------- ids, errors, arguments


def test_details_are_named_by_id_or_by_index():
    detail_id = "0123456789abcdef0123456789abcdef"
    assert is_id(detail_id) and not is_index(detail_id)
    assert is_index("0") and is_index("42") and not is_id("42")
    assert not is_index("-1") and not is_index("٣")  # Arabic-Indic three is a digit, not an index
    assert is_id("1" * 32) and not is_index("1" * 32)


def response(status, body, reason="Bad Request"):
    answer = requests.Response()
    answer.status_code, answer.reason, answer._content = status, reason, body.encode()
    answer.request = requests.Request("GET", "http://api.test/task/?limit=5").prepare()
    return answer


def test_api_errors_read_as_one_line_with_status_and_code():
    error = api_error(response(400, '{"error": "VALIDATION_ERROR", "message": "times: must be an integer"}'))
    assert isinstance(error, ApiError)
    assert str(error) == "times: must be an integer (400 VALIDATION_ERROR)"
    assert error.exit_code == 2
    assert api_error(response(503, '{"error": "UNAVAILABLE", "message": "x"}')).exit_code == 1


def test_errors_that_are_not_the_apis_say_what_answered():
    error = api_error(response(502, "<html>bad gateway</html>", reason="Bad Gateway"))
    assert str(error) == "the server answered Bad Gateway to GET /task/ (502 HTTP_ERROR)"
    assert error.exit_code == 1


@pytest.mark.parametrize("argv", [
    ["--json", "--url", "http://a:1", "task", "ls"],
    ["task", "ls", "--json", "--url", "http://a:1"],
    ["--url", "http://b:2", "task", "ls", "--json", "--url", "http://a:1"],
])
def test_global_options_go_before_or_after_the_command(argv):
    args = build_parser().parse_args(argv)
    assert args.json is True and args.url == "http://a:1" and args.token is None


def test_argument_mistakes_are_one_line_with_exit_2(capsys):
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["run", "task", "--times", "many"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == \
        "stevedore: argument --times: invalid int value: 'many' (see stevedore run --help)\n"


# ---------------------------------------------------------------- event streams


def test_lines_survive_chunks_cut_anywhere():
    chunks = [b"event: std", b"out\r", b"\ndata: caf\xc3", b"\xa9\n\n", b"tail"]
    assert list(split_lines(chunks)) == ["event: stdout", "data: café", "", "tail"]


def test_server_sent_events_are_read_by_the_spec():
    lines = [": keep-alive", "", "event: stdout", "data: one", "data:two", "", "data: unnamed", "",
             "event: end", ""]
    assert list(sse_events(lines)) == [("stdout", "one\ntwo"), ("message", "unnamed"), ("end", "")]


@pytest.mark.parametrize("event, data, chunk", [
    ("stdout", "a line", ("stdout", "a line\n")),
    ("stderr", "", ("stderr", "\n")),
    ("message", '{"stream": "stderr", "text": "raw\\n"}', ("stderr", "raw\n")),
    ("message", '{"line": "json line"}', ("stdout", "json line\n")),
    ("stdout", '{"line": "a job\'s own JSON"}', ("stdout", '{"line": "a job\'s own JSON"}\n')),
    ("end", '{"status": "COMPLETE"}', ("end", {"status": "COMPLETE"})),
    ("done", "", ("end", {})),
    ("status", "RUNNING", None),
    ("message", "not a log", None),
])
def test_log_events_become_output_or_the_end(event, data, chunk):
    assert log_chunk(event, data) == chunk


# ---------------------------------------------------------------- run --after

def test_after_options_become_the_runs_conditions():
    from stevedore_jobs.cli.runs import parse_after

    a, b = "a" * 32, "b" * 32
    assert parse_after(None) is None
    assert parse_after([a]) == [{"result_id": a, "when": "COMPLETE"}]
    assert parse_after([a, f"{b}:ended"], when="ENDED") == [{"result_id": a, "when": "ENDED"},
                                                             {"result_id": b, "when": "ENDED"}]
    assert parse_after([f"{a}:ENDED", b]) == [{"result_id": a, "when": "ENDED"}, {"result_id": b, "when": "COMPLETE"}]


@pytest.mark.parametrize("items, when, per_index, message", [
    (None, "ENDED", False, "--when needs --after RESULT"),
    (None, None, True, "--per-index needs --after RESULT"),
    (["a" * 32 + ":SOON"], None, False, "--after: expected RESULT or RESULT:COMPLETE|ENDED"),
    ([":ENDED"], None, False, "--after: expected RESULT"),
])
def test_after_options_that_make_no_condition_are_usage_mistakes(items, when, per_index, message):
    from stevedore_jobs.cli.runs import parse_after

    with pytest.raises(UsageError, match=message.replace("|", r"\|")):
        parse_after(items, when, per_index)


def test_run_parses_after_when_and_per_index():
    args = build_parser().parse_args(["run", "app", "--times", "3", "--after", "x" * 32, "--after", "y" * 32,
                                      "--when", "ended", "--per-index"])
    assert (args.after, args.when, args.per_index) == (["x" * 32, "y" * 32], "ENDED", True)
