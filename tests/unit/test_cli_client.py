"""The ``stevedore`` command against a scripted HTTP server on loopback: what the real system
cannot show yet (live logs as server-sent events) or on demand (tokens, pages, odd answers)."""
import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from stevedore_jobs.cli import main
from stevedore_jobs.client import Client

RESULT = "r" * 32
DETAIL = "d" * 32
LOGS = f"/result/{RESULT}/detail/{DETAIL}/logs/"


class Scripted(BaseHTTPRequestHandler):
    """Answers each GET from ``routes[path]``: a list of answers, the last one repeated."""

    routes = {}
    seen = []

    def do_GET(self):
        parts = urlsplit(self.path)
        self.seen.append((parts.path, parse_qs(parts.query), dict(self.headers)))
        answers = self.routes.get(parts.path) or [(404, {"error": "NOT_FOUND", "message": "nope"})]
        answer = answers.pop(0) if len(answers) > 1 else answers[0]
        status, body, *headers = answer
        if callable(body):
            body = body(parse_qs(parts.query))
        raw = body if isinstance(body, bytes) else body.encode() if isinstance(body, str) else json.dumps(body).encode()
        self.send_response(status)
        for name, value in {"Content-Type": "application/json", **(headers[0] if headers else {})}.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    do_DELETE = do_GET  # answered from routes the same way

    def log_message(self, *args):
        pass


@pytest.fixture
def server(monkeypatch):
    Scripted.routes, Scripted.seen = {}, []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Scripted)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}"
    monkeypatch.setenv("STEVEDORE_URL", url)
    monkeypatch.delenv("STEVEDORE_TOKEN", raising=False)
    monkeypatch.setattr("stevedore_jobs.cli.session.POLL_INTERVAL", 0.01)
    yield Scripted
    httpd.shutdown()
    httpd.server_close()


def task(name, task_id):
    return {"task_id": task_id, "id": task_id, "name": name, "repository": "r/x", "status": "READY",
            "error": None, "digest": None, "created_at": 1.0, "imported_at": None}


def test_token_is_sent_as_a_bearer_token_and_the_flag_wins(server, monkeypatch, capsys):
    server.routes["/task/"] = [(200, [])]
    monkeypatch.setenv("STEVEDORE_TOKEN", "from-env")
    assert main(["task", "ls"]) == 0
    assert main(["task", "ls", "--token", "from-flag"]) == 0
    assert [headers["Authorization"] for _, _, headers in server.seen] == [
        "Bearer from-env", "Bearer from-flag"]


def test_names_are_found_on_later_pages(server, capsys):
    first = [task(f"t{i}", f"{i:032x}") for i in range(2)]

    def page(query):
        return [task("wanted", "f" * 32)] if query.get("after") == [first[-1]["task_id"]] else first

    server.routes["/task/"] = [(200, page, {"Link": '</task/?after=x>; rel="next"'}),
                               (200, page, {})]
    assert main(["task", "show", "wanted", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["task_id"] == "f" * 32
    assert [query.get("after") for _, query, _ in server.seen] == [None, [first[-1]["task_id"]]]


def test_the_next_page_is_asked_with_the_links_after_key_too(server, capsys):
    first = [task(f"t{i}", f"{i:032x}") for i in range(2)]
    last = first[-1]["task_id"]
    server.routes["/task/"] = [(200, first, {"Link": f'</task/?after={last}&after_key=1.5>; rel="next"'}),
                               (200, [task("wanted", "f" * 32)], {})]
    assert main(["task", "show", "wanted", "--json"]) == 0
    assert [(query.get("after"), query.get("after_key")) for _, query, _ in server.seen] == [
        (None, None), ([last], ["1.5"])]


def endless(pages, fresh):
    """A /task/ that always says "next page" (``fresh``: each page a new item, else the same one), for
    ``pages`` pages at most: then a 500, so that a client that does not stop ends too."""
    calls = []

    def page(query):
        calls.append(query)
        return [task("t", f"{len(calls) if fresh else 1:032x}")]

    link = {"Link": '</task/?after=x>; rel="next"'}
    return calls, [*[(200, page, link)] * pages, (500, {"error": "INTERNAL", "message": "the test's end"})]


def test_a_listing_whose_next_page_repeats_a_cursor_stops_with_an_error(server, capsys):
    calls, server.routes["/task/"] = endless(100, fresh=False)
    assert main(["task", "ls"]) == 1
    assert "starts after 00000000000000000000000000000001 again" in capsys.readouterr().err
    assert len(calls) == 2


def test_a_listing_that_never_ends_stops_after_items_max(server, capsys, monkeypatch):
    monkeypatch.setattr("stevedore_jobs.client.ITEMS_MAX", 5)
    calls, server.routes["/task/"] = endless(100, fresh=True)
    assert main(["task", "ls"]) == 1
    assert "still lists more after 5 items" in capsys.readouterr().err
    assert len(calls) == 5
    calls, server.routes["/task/"] = endless(100, fresh=True)
    client = Client(os.environ["STEVEDORE_URL"])
    assert len(list(client.pages("/task/", "task_id", limit=7))) == 7  # a limit asked ends it as ever
    assert len(calls) == 7


def test_follow_prints_a_server_sent_event_stream_as_it_comes(server, capsys):
    stream = ("retry: 1000\n\n: keep-alive\n\n"
              "event: stdout\ndata: line one\n\n"
              "event: stderr\ndata: a warning\n\n"
              'data: {"stream": "stdout", "text": "raw text\\n"}\n\n'
              'event: end\ndata: {"status": "COMPLETE", "exit_code": 0}\n\n')
    server.routes[LOGS] = [(200, stream, {"Content-Type": "text/event-stream; charset=utf-8"})]
    assert main(["logs", RESULT, DETAIL, "--follow"]) == 0
    out = capsys.readouterr()
    assert (out.out, out.err) == ("line one\nraw text\n", "a warning\n")
    [(path, query, headers)] = server.seen
    assert query == {"follow": ["true"]} and headers["Accept"] == "text/event-stream"


def test_follow_says_so_when_the_stream_closes_before_the_execution_ends(server, capsys):
    server.routes[LOGS] = [(200, "event: stdout\ndata: partial\n\n", {"Content-Type": "text/event-stream"}),
                           (200, {"status": "RUNNING", "stdout": "", "stderr": ""})]
    assert main(["logs", RESULT, DETAIL, "--follow"]) == 1
    out = capsys.readouterr()
    assert out.out == "partial\n"
    assert out.err == "stevedore: the log stream closed before the execution ended (it is RUNNING)\n"


def test_follow_without_live_logs_polls_until_the_execution_ends(server, capsys):
    server.routes[LOGS] = [
        (200, {"status": "RUNNING", "stdout": "", "stderr": ""}),
        (200, {"status": "QUEUED", "stdout": "first attempt\n", "stderr": "boom\n"}),
        (200, {"status": "COMPLETE", "stdout": "second attempt\n", "stderr": ""}),
    ]
    assert main(["logs", RESULT, DETAIL, "--follow", "--json"]) == 0
    chunks = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert chunks == [{"stream": "stdout", "text": "first attempt\n"},
                      {"stream": "stderr", "text": "boom\n"},
                      {"stream": "stdout", "text": "second attempt\n"}]
    assert len(server.seen) == 3


def test_a_wait_loop_rides_out_a_429_after_its_retry_after(server, capsys):
    server.routes[LOGS] = [
        (200, {"status": "RUNNING", "stdout": "one\n", "stderr": ""}),
        (429, {"error": "TOO_MANY_REQUESTS", "message": "rate: at most 1 requests a second per client"},
         {"Retry-After": "1"}),
        (200, {"status": "COMPLETE", "stdout": "one\ntwo\n", "stderr": ""}),
    ]
    assert main(["logs", RESULT, DETAIL, "--follow"]) == 0
    out = capsys.readouterr()
    assert out.out == "one\ntwo\n"
    assert "rate: at most 1 requests a second per client (429 TOO_MANY_REQUESTS); retrying" in out.err
    assert len(server.seen) == 3


def test_a_429_without_retry_after_ends_a_wait_loop(server, capsys):
    server.routes[LOGS] = [
        (200, {"status": "RUNNING", "stdout": "", "stderr": ""}),
        (429, {"error": "TOO_MANY_CONNECTIONS", "message": "connections: at most 3"}),
    ]
    assert main(["logs", RESULT, DETAIL, "--follow"]) == 2
    assert "connections: at most 3 (429 TOO_MANY_CONNECTIONS)" in capsys.readouterr().err


def test_an_answer_that_is_not_the_apis_is_one_line(server, capsys):
    server.routes["/task/"] = [(502, "<html>bad gateway</html>", {"Content-Type": "text/html"})]
    assert main(["task", "ls"]) == 1
    assert capsys.readouterr().err == \
        "stevedore: the server answered Bad Gateway to GET /task/ (502 HTTP_ERROR)\n"
    server.routes["/task/"] = [(200, "<html>hello</html>", {"Content-Type": "text/html"})]
    assert main(["task", "ls"]) == 1
    assert "did not answer JSON to GET /task/; is it the Stevedore API?" in capsys.readouterr().err


@pytest.mark.parametrize("answer", [[1, 2], [{}], {"a": 1}, "\"x\"", "null", [{"task_id": None, "name": None}]])
def test_an_answer_of_another_shape_is_one_line_not_a_traceback(server, capsys, answer):
    server.routes["/task/"] = [(200, answer)]
    assert main(["task", "ls"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("stevedore: the server's answer is not what the Stevedore API answers (")
    assert err.count("\n") == 1 and "Traceback" not in err


def test_the_clients_typed_calls_answer_the_contracts_models_and_refuse_unknown_run_fields(server):
    from stevedore_jobs.client import CliError, Client
    from stevedore_jobs.contract import Task

    whole = {**task("app", "a" * 32), "updated_at": 1.0, "image_id": None, "private": False}
    server.routes["/task/"] = [(200, [whole])]
    server.routes[f"/task/{'a' * 32}/"] = [(200, whole)]
    client = Client(os.environ["STEVEDORE_URL"])
    found = client.task("a" * 32)
    assert isinstance(found, Task) and found.status == "READY" and found.private is False
    assert [t.name for t in client.tasks()] == ["app"]
    with pytest.raises(CliError, match="colour: not a RUN parameter"):
        client.run("a" * 32, 1, colour="blue")
