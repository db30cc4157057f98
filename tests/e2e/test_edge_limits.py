"""The edge's bounds and deadlines, on a system of its own with small limits and a trusted proxy."""
import socket

import pytest

from tests.support import own_system

pytestmark = pytest.mark.e2e

PROXY = "127.0.0.3"  # named in HTTP_TRUSTED_PROXIES: its X-Forwarded-For names the client
PER_CLIENT = 3


@pytest.fixture(scope="module")
def small_system(vhost_pipeline, request):
    env = {"HTTP_MAX_CONNECTIONS_PER_CLIENT": str(PER_CLIENT), "HTTP_TRUSTED_PROXIES": PROXY,
           "HTTP_HEADER_TIMEOUT": "2", "HTTP_BODY_TIMEOUT": "2", "HTTP_IDLE_TIMEOUT": "3"}
    yield from own_system(request, vhost_pipeline, "edge-limits", env, runners=0)


def connect(system, source):
    sock = socket.socket()
    sock.bind((source, 0))
    sock.settimeout(15)
    sock.connect(("127.0.0.1", system.port))
    return sock


def answer(sock):
    """What the gateway answered until it closed (a reset after a refusal ends it too)."""
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    return data


def request(system, source, forwarded=None, path=b"/task/"):
    head = b"GET " + path + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer " \
        + system.token.encode() + b"\r\n"
    if forwarded:
        head += b"X-Forwarded-For: " + forwarded.encode() + b"\r\n"
    with connect(system, source) as sock:
        try:
            sock.sendall(head + b"\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused and closed before the request went out; its answer may still be there
        return answer(sock)


def half_body(system, source, forwarded=None):
    sock = connect(system, source)
    extra = b"X-Forwarded-For: " + forwarded.encode() + b"\r\n" if forwarded else b""
    sock.sendall(b"POST /ui/signin HTTP/1.1\r\nHost: x\r\n" + extra + b"Content-Length: 1000\r\n\r\nabc")
    return sock


def test_one_address_holds_at_most_its_share_of_connections(small_system):
    held = [half_body(small_system, "127.0.0.2") for _ in range(PER_CLIENT)]
    try:
        refused = request(small_system, "127.0.0.2")
        assert refused.startswith(b"HTTP/1.1 429") or refused == b"", refused[:300]
        if refused:
            assert b'"error": "TOO_MANY_CONNECTIONS"' in refused
        assert request(small_system, "127.0.0.4").startswith(b"HTTP/1.1 200")  # another address is served
    finally:
        for sock in held:
            sock.close()


def test_behind_a_trusted_proxy_the_bound_is_per_forwarded_client(small_system):
    held = [half_body(small_system, PROXY, forwarded="198.51.100.7") for _ in range(PER_CLIENT)]
    try:
        refused = request(small_system, PROXY, forwarded="198.51.100.7")
        assert refused.startswith(b"HTTP/1.1 429"), refused[:300]
        assert b"requests in progress per client address" in refused
        # the proxy's own connections are not bounded per address: other clients pass through it
        assert request(small_system, PROXY, forwarded="198.51.100.8").startswith(b"HTTP/1.1 200")
        # a client cannot name itself: what is left of the last untrusted hop is ignored
        assert request(small_system, PROXY, forwarded="1.2.3.4, 198.51.100.7").startswith(b"HTTP/1.1 429")
    finally:
        for sock in held:
            sock.close()


def test_an_unfinished_body_is_answered_408_when_its_deadline_passes(small_system):
    with half_body(small_system, "127.0.0.5") as sock:
        data = answer(sock)
    assert data.startswith(b"HTTP/1.1 408"), data[:300]
    assert b"body: must arrive within 2s" in data


def test_unfinished_headers_are_answered_408_when_their_deadline_passes(small_system):
    with connect(small_system, "127.0.0.5") as sock:
        sock.sendall(b"GET /task/ HTTP/1.1\r\nHost: x\r\nX-Slow: a")
        data = answer(sock)
    assert data.startswith(b"HTTP/1.1 408"), data[:300]
    assert b"headers: the request line and headers must arrive within 2s" in data


def test_an_idle_connection_is_closed_without_a_word(small_system):
    with connect(small_system, "127.0.0.5") as sock:
        assert answer(sock) == b""
