"""The gateway's edge rules as plain functions: settings, the client behind a proxy, the counts."""
import io
import logging

import pytest

from services.gateway.admission import Counts, Refusal, Settings, client_address
from services.gateway.edge import _BoundedHead, _HeadTooLarge, read_body
from shared.errors import NotFound, Unavailable
from shared.logs import ClientErrors, printable
from shared.settings import GatewaySettings, parse


def settings(**config):
    return Settings(parse(GatewaySettings, {key: str(value) for key, value in config.items()}))


def test_settings_default_and_refuse_bad_values_by_name():
    assert settings().max_body_bytes == 1024 * 1024
    assert settings(HTTP_HEADER_TIMEOUT="2.5").header_timeout == 2.5
    for key, value in (("HTTP_MAX_BODY_BYTES", "lots"), ("HTTP_BODY_TIMEOUT", "0"),
                       ("HTTP_TRUSTED_PROXIES", "10.0.0.1,nonsense")):
        with pytest.raises(ValueError, match=key):
            settings(**{key: value})


@pytest.mark.parametrize("peer, forwarded, client", [
    ("203.0.113.9", "198.51.100.1", "203.0.113.9"),          # not a trusted proxy: its header is ignored
    ("10.0.0.5", "198.51.100.1", "198.51.100.1"),
    ("10.0.0.5", "6.6.6.6, 198.51.100.1", "198.51.100.1"),   # what the client made up is left of it
    ("10.0.0.5", "198.51.100.1, 10.1.0.7", "198.51.100.1"),  # a chain of trusted proxies
    ("10.0.0.5", "", "10.0.0.5"),
])
def test_the_client_is_the_first_untrusted_address_from_the_right(peer, forwarded, client):
    edge = settings(HTTP_TRUSTED_PROXIES="10.0.0.5, 10.1.0.0/24")
    assert client_address({"REMOTE_ADDR": peer, "HTTP_X_FORWARDED_FOR": forwarded}, edge) == client


def test_connections_are_bounded_per_address_and_in_all():
    counts = Counts(settings(HTTP_MAX_CONNECTIONS=3, HTTP_MAX_CONNECTIONS_PER_CLIENT=2))
    assert counts.admit("a") is None and counts.admit("a") is None
    assert counts.admit("a").status == 429
    assert counts.admit("b") is None
    assert counts.admit("c").status == 503
    counts.release("a")
    assert counts.admit("a") is None


def test_a_trusted_proxy_counts_requests_per_forwarded_client():
    counts = Counts(settings(HTTP_MAX_CONNECTIONS_PER_CLIENT=1, HTTP_TRUSTED_PROXIES="10.0.0.5"))
    assert counts.admit("10.0.0.5") is None and counts.admit("10.0.0.5") is None
    counts.admit_forwarded("198.51.100.1")
    with pytest.raises(Refusal) as refused:
        counts.admit_forwarded("198.51.100.1")
    assert refused.value.status == 429
    counts.release_forwarded("198.51.100.1")
    counts.admit_forwarded("198.51.100.1")


def test_the_head_reader_stops_at_its_limit():
    head = _BoundedHead(io.BufferedReader(io.BytesIO(b"A: 1\r\n" + b"B: " + b"x" * 100 + b"\r\n")), 20)
    assert head.readline(65537) == b"A: 1\r\n"
    with pytest.raises(_HeadTooLarge):
        head.readline(65537)


def test_a_body_is_read_whole_and_replaced_or_refused():
    environ = {"CONTENT_LENGTH": "4", "wsgi.input": io.BytesIO(b"abcd")}
    assert read_body(environ, settings()) == b"abcd"
    assert environ["wsgi.input"].read() == b"abcd" and environ["wsgi.input_terminated"]
    with pytest.raises(Refusal) as refused:
        read_body({"CONTENT_LENGTH": "11", "wsgi.input": io.BytesIO(b"x" * 11)}, settings(HTTP_MAX_BODY_BYTES=10))
    assert refused.value.status == 413
    with pytest.raises(Refusal) as refused:
        read_body({"CONTENT_LENGTH": "10", "wsgi.input": io.BytesIO(b"short")}, settings())
    assert refused.value.status == 400 and "ended after 5 of the 10 bytes" in refused.value.message


def record_of(exc, entrypoint):
    class WorkerContext:
        service_name = "registry"

    ctx = WorkerContext()
    ctx.entrypoint = entrypoint
    try:
        raise exc
    except Exception:
        import sys
        return logging.LogRecord("nameko.containers", logging.ERROR, __file__, 1,
                                 "error handling worker %s: %s", (ctx, exc), sys.exc_info())


class Entrypoint:
    method_name = "get_task"


def test_a_client_error_becomes_one_info_line_without_traceback():
    record = record_of(NotFound("no task 'x" + "y" * 1000 + "'", "task_id"), Entrypoint())
    assert ClientErrors().filter(record)
    assert record.levelno == logging.INFO and record.exc_info is None
    line = record.getMessage()
    assert line.startswith("registry.get_task refused: NOT_FOUND task_id: no task") and len(line) < 400


def test_an_entrypoint_that_logs_its_requests_is_not_logged_twice_and_a_bug_stays_an_error():
    class Http(Entrypoint):
        logs_requests = True

    assert not ClientErrors().filter(record_of(NotFound("x", "task_id"), Http()))
    assert not ClientErrors().filter(record_of(Unavailable("not ready", "health"), Http()))
    bug = record_of(KeyError("x"), Entrypoint())
    assert ClientErrors().filter(bug) and bug.levelno == logging.ERROR and bug.exc_info


def test_a_system_away_becomes_one_warning_line_without_traceback():
    record = record_of(Unavailable("scheduler is not running (nothing consumes its RPC queue); try again", "rpc"),
                       Entrypoint())
    assert ClientErrors().filter(record)
    assert record.levelno == logging.WARNING and record.exc_info is None
    assert record.getMessage() == ("registry.get_task could not go on: UNAVAILABLE "
                                   "rpc: scheduler is not running (nothing consumes its RPC queue); try again")


def test_a_call_to_a_service_not_running_yet_is_unavailable_not_a_crash():
    from nameko.exceptions import UnknownService

    from shared.rpc import _Method

    class Reply:
        def result(self):
            raise UnknownService("scheduler")

    class Method:
        service_name, method_name = "scheduler", "claim_execution"

        def call_async(self, *args, **kwargs):
            return Reply()

    class Ready:
        def wait(self):
            pass

    with pytest.raises(Unavailable, match="scheduler is not running"):
        _Method(Method(), 5, Ready())()


def test_a_heartbeat_whose_answer_is_lost_gives_up_after_its_own_timeout_not_the_rpc_timeout():
    import time

    import eventlet

    from services.runner.service import heartbeat_timeout
    from shared.rpc import _Method

    class Lost:  # a reply that never comes: its queue went with a dead RabbitMQ node
        def result(self):
            eventlet.sleep(60)

    class Method:
        service_name, method_name = "scheduler", "heartbeat"

        def call_async(self, *args, **kwargs):
            return Lost()

    class Ready:
        def wait(self):
            pass

    assert heartbeat_timeout(5) == 10 and heartbeat_timeout(0.5) == 2
    started = time.monotonic()
    with pytest.raises(Unavailable, match=r"scheduler.heartbeat did not answer within 0.3s"):
        _Method(Method(), 30, Ready()).within(0.3)()
    assert time.monotonic() - started < 5
    assert _Method(Method(), 1, Ready()).within(10)._timeout == 1  # never longer than RPC_TIMEOUT


@pytest.mark.parametrize("status, level", [(200, logging.INFO), (404, logging.INFO), (503, logging.WARNING),
                                           (500, logging.ERROR)])
def test_each_request_is_one_access_line_at_the_level_its_answer_calls_for(status, level, caplog):
    from werkzeug.test import EnvironBuilder
    from werkzeug.wrappers import Request, Response

    from services.gateway.http import log_request

    request = Request(EnvironBuilder(method="GET", path="/health/").get_environ())
    with caplog.at_level(logging.INFO, logger="stevedore.access"):
        log_request("127.0.0.1", request, Response(b'{"error": "X", "message": "m"}', status=status,
                                                    mimetype="application/json"))
    [record] = caplog.records
    assert record.levelno == level and record.getMessage().startswith(f"127.0.0.1 GET /health/ {status}")


def test_printable_escapes_control_characters_and_cuts():
    assert printable("a\x00b\x1b[2J\ud800") == "a\\x00b\\x1b[2J\\ud800"
    assert printable("x" * 500, 10).startswith("x" * 10 + "...(+490")


def test_the_connection_bound_fits_the_open_file_limit():
    import resource

    from services.gateway.admission import FILES_SPARE, fit_open_files

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    edge = settings(HTTP_MAX_CONNECTIONS=10 ** 9)
    try:
        fit_open_files(edge)
        now_soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        assert edge.max_connections + FILES_SPARE <= now_soft
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def _one_request(raw, **config):
    """What the edge's protocol answers ``raw`` on one local connection, and what the app saw."""
    import eventlet
    from eventlet import wsgi

    from services.gateway.edge import EdgeProtocol

    seen = []

    def app(environ, start_response):
        seen.append(environ.get("CONTENT_LENGTH"))
        start_response("200 OK", [("Content-Length", "2")])
        return [b"ok"]

    listener = eventlet.listen(("127.0.0.1", 0))
    server = wsgi.Server(listener, listener.getsockname(), app, protocol=EdgeProtocol,
                         log=logging.getLogger(__name__), log_output=False)
    server.edge = settings(**config)

    def serve():
        conn, address = listener.accept()
        server.process_request([address, conn, wsgi.STATE_IDLE])

    thread = eventlet.spawn(serve)
    client = eventlet.connect(listener.getsockname())
    try:
        client.sendall(raw)
        answer = client.recv(4096)
        thread.wait()  # raises what the protocol raised
    finally:
        client.close()
        listener.close()
    return answer, seen


def test_a_content_length_of_thousands_of_digits_is_answered_not_raised():
    head = b"POST /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\nContent-Length: "
    answer, seen = _one_request(head + b"1" * 5000 + b"\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 413 ") and b"PAYLOAD_TOO_LARGE" in answer and not seen
    answer, seen = _one_request(head + b"0" * 5000 + b"2\r\n\r\nhi")  # zero-padded: the same small body
    assert answer.startswith(b"HTTP/1.1 200 ") and seen == ["2"]
