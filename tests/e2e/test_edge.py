"""The HTTP edge: what a client on the network can hold, and what it is told when refused."""
import re
import socket
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

pytestmark = pytest.mark.e2e

ATTACKER = "127.0.0.2"  # another address on loopback: the per-client bound is by address
HALF_REQUESTS = 200


def open_from(address, port):
    sock = socket.socket()
    sock.bind((address, 0))
    sock.settimeout(10)
    sock.connect(("127.0.0.1", port))
    return sock


def half_request(n, token):
    """Request heads or bodies that are never finished, in four shapes."""
    shape = n % 4
    if shape == 0:  # the headers never end
        return b"GET /result/ HTTP/1.1\r\nHost: x\r\nX-Slow: "
    if shape == 1:  # the UI's sign-in, no token needed: a body announced and never sent
        return b"POST /ui/signin HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n"
    if shape == 2:  # a token holder's JSON endpoint, half a body
        return (b"POST /task/ HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + token.encode()
                + b"\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{\"repository\": ")
    return b""  # nothing at all: an idle connection


def received(sock):
    """What the gateway sent on ``sock`` so far (b"" if nothing; None if it reset the connection)."""
    sock.setblocking(False)
    try:
        return sock.recv(4096)
    except BlockingIOError:
        return b""
    except OSError:
        return None
    finally:
        sock.setblocking(True)


def test_held_half_requests_from_one_address_do_not_stop_other_clients(system, api):
    socks = []
    try:
        for n in range(HALF_REQUESTS):
            try:
                sock = open_from(ATTACKER, system.port)
            except OSError:  # refused at the limit: fine, it holds nothing
                continue
            socks.append(sock)
            try:
                sock.sendall(half_request(n, system.token))
            except OSError:
                pass
        # every kind of authenticated read is still answered, one after another and at once
        for path in ("/task/", "/result/", "/health/", "/openapi.json") * 5:
            response = api.get(path)
            assert response.status_code == 200, (path, response.text)
        # more at once than the gateway has workers, each on a connection of its own
        with ThreadPoolExecutor(12) as pool:
            answers = list(pool.map(lambda _: requests.get(
                system.url + "/result/", timeout=30, headers={"Authorization": f"Bearer {system.token}"}),
                range(12)))
        assert [answer.status_code for answer in answers] == [200] * 12
        assert api.post("/task/", raw=b"{}").status_code == 400  # a write still reaches a worker
        # the attacker got a bounded share: some of its connections are held, unanswered,
        # and the rest were refused (429 JSON, or a reset when its request was in flight)
        seen = [received(sock) for sock in socks]
        held = [data for data in seen if data == b""]
        refused = [data for data in seen if data != b""]
        assert held, "no half-request is held: the test did not test anything"
        assert len(held) < HALF_REQUESTS
        for data in refused:
            assert data is None or data.startswith(b"HTTP/1.1 429"), data[:200]
    finally:
        for sock in socks:
            sock.close()
    assert api.get("/health/").status_code == 200


def test_a_body_over_the_limit_is_refused_with_413_json(api):
    response = api.post("/task/", raw=b'{"name": "' + b"x" * (2 * 1024 * 1024) + b'"}',
                        headers={"Content-Type": "application/json"})
    assert response.status_code == 413, response.text[:300]
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.json() == {"error": "PAYLOAD_TOO_LARGE", "message": "body: must be at most 1048576 bytes"}


def test_a_chunked_body_over_the_limit_is_refused_with_413_json(api):
    def chunks():
        for _ in range(40):
            yield b"x" * 65536

    response = api.post("/task/", raw=chunks())
    assert response.status_code == 413, response.text[:300]
    assert response.json()["error"] == "PAYLOAD_TOO_LARGE"


def test_a_chunked_body_within_the_limit_is_read(api, test_images):
    def chunks():
        yield b'{"repository": "'
        yield test_images["ok"].encode()
        yield b'", "name": "chunked-body"}'

    response = api.post("/task/", raw=chunks(), headers={"Content-Type": "application/json"})
    assert response.status_code == 201, response.text


def test_headers_over_the_limit_are_refused_with_431_json(system):
    response = requests.get(system.url + "/health/", headers={"X-Big": "a" * 20000}, timeout=10)
    assert response.status_code == 431
    assert response.json()["error"] == "HEADERS_TOO_LARGE"
    assert response.json()["message"].startswith("headers:")


def test_a_request_line_over_the_limit_is_refused_with_414_json(system):
    response = requests.get(system.url + "/task/" + "a" * 9000 + "/", timeout=10)
    assert response.status_code == 414
    assert response.json()["error"] == "URI_TOO_LONG"


def test_a_malformed_request_line_is_answered_in_json(system):
    with open_from("127.0.0.1", system.port) as sock:
        sock.sendall(b"NONSENSE\r\n\r\n")
        data = sock.recv(4096)
    assert data.startswith(b"HTTP/1.1 400"), data
    assert b'"error": "BAD_REQUEST"' in data


def test_transfer_encoding_other_than_chunked_is_refused(system):
    with open_from("127.0.0.1", system.port) as sock:
        sock.sendall(b"POST /task/ HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n")
        data = sock.recv(4096)
    assert data.startswith(b"HTTP/1.1 400"), data
    assert b"transfer-encoding:" in data


@pytest.mark.parametrize("framing", [
    b"Content-Length: 2\r\nContent-Length: 40\r\n",
    b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
    b"Content-Length: 2\r\nTransfer-Encoding: chunked\r\n",
])
def test_a_body_framed_twice_is_refused(system, framing):
    with open_from("127.0.0.1", system.port) as sock:
        sock.sendall(b"POST /task/ HTTP/1.1\r\nHost: x\r\n" + framing + b"\r\n{}")
        data = sock.recv(4096)
    assert data.startswith(b"HTTP/1.1 400"), data
    assert b'"error": "VALIDATION_ERROR"' in data


def test_a_body_shorter_than_announced_is_refused(system):
    with open_from("127.0.0.1", system.port) as sock:
        sock.sendall(b"POST /task/ HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + system.token.encode()
                     + b"\r\nContent-Length: 100\r\n\r\n{}")
        sock.shutdown(socket.SHUT_WR)
        data = sock.recv(4096)
    assert data.startswith(b"HTTP/1.1 400"), data
    assert b"body: ended after 2 of the 100 bytes" in data


def test_requests_on_one_kept_alive_connection_are_all_answered(system):
    with open_from("127.0.0.1", system.port) as sock:
        auth = b"Authorization: Bearer " + system.token.encode() + b"\r\n"
        sock.sendall(b"GET /health/ HTTP/1.1\r\nHost: x\r\n\r\n"
                     b"POST /task/ HTTP/1.1\r\nHost: x\r\n" + auth + b"Content-Length: 2\r\n\r\n{}"
                     b"GET /task/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + auth + b"\r\n")
        data = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    statuses = re.findall(rb"HTTP/1\.1 (\d{3}) ", data)
    assert statuses == [b"200", b"400", b"200"], data[:500]


@pytest.mark.parametrize("raw_target", [b"/task/?limit=\xff", b"/task/\xff\xfe/", b"/result/?task_id=%ff"])
def test_raw_bytes_that_are_not_utf8_in_a_path_or_query_are_400(system, raw_target):
    with open_from("127.0.0.1", system.port) as sock:
        sock.sendall(b"GET " + raw_target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                     b"Authorization: Bearer " + system.token.encode() + b"\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    assert data.startswith(b"HTTP/1.1 400"), data[:300]
    assert b'"error":"VALIDATION_ERROR"' in data
