"""The gateway's HTTP edge: what a client can hold, and for how long.

nameko's web entrypoint is eventlet.wsgi behind a worker pool of MAX_WORKERS.
Left as it is, a request takes a worker before its body is read, and neither
the head nor the body has a deadline: a dozen connections that announce a
body and send nothing hold every worker, and the whole API with them.  This
module puts limits at the door, all in the connection's own greenthread
(which costs a socket and a little memory, never a worker):

- a bounded number of open connections, in all (HTTP_MAX_CONNECTIONS: 503)
  and per client address (HTTP_MAX_CONNECTIONS_PER_CLIENT: 429);
- a connection with no request for HTTP_IDLE_TIMEOUT seconds is closed; once
  a request's first byte arrives its line and headers must follow within
  HTTP_HEADER_TIMEOUT seconds (408) and fit in HTTP_MAX_HEADER_BYTES (431);
- the body is read whole, within HTTP_BODY_TIMEOUT seconds (408) and at most
  HTTP_MAX_BODY_BYTES (413), before the request is handed to a worker;
- behind a proxy named in HTTP_TRUSTED_PROXIES the client is the address its
  X-Forwarded-For names, and the per-client bound counts that client's
  requests in progress through the proxy's connections.

Every refusal is the API's JSON error and closes the connection.

A step later, once the request's principal is known but before a worker is taken, its rate and its
address's failed authentications are bounded (services/gateway/throttle.py: 429 with Retry-After, the
connection kept).
"""
import errno
import io
import logging
from functools import partial
from http import HTTPStatus

import eventlet
from eventlet import wsgi
from eventlet.support import get_errno
from nameko.web.server import WebServer

from shared.settings import settings_of
from services.gateway.admission import (REFUSALS_LOGGED_EVERY, Counts, Refusal, Settings, fit_open_files,
                                        refusal_bytes)

log = logging.getLogger(__name__)

REQUEST_LINE_MAX = 8192
READ_SIZE = 65536


class _HeadTooLarge(Exception):
    pass


class _BoundedHead:
    """The connection's reader while headers are parsed: at most ``limit`` bytes in all."""

    def __init__(self, rfile, limit):
        self.rfile, self.left = rfile, limit

    def readline(self, size=-1):
        want = self.left + 1 if size is None or size < 0 else min(size, self.left + 1)
        line = self.rfile.readline(want)
        self.left -= len(line)
        if self.left < 0:
            raise _HeadTooLarge()
        return line


class EdgeProtocol(wsgi.HttpProtocol):
    """eventlet's HTTP/1.1 protocol with deadlines and limits on the request head, JSON refusals."""

    def handle_one_request(self):
        edge = self.server.edge
        self.conn_state[2] = wsgi.STATE_IDLE
        # idle: a connection with nothing to say for HTTP_IDLE_TIMEOUT is closed without a word
        try:
            self.connection.settimeout(edge.idle_timeout)
            first = self.rfile.peek(1)
        except (OSError, ValueError):
            first = b""
        if not first:
            self.close_connection = 1
            return
        self.conn_state[2] = wsgi.STATE_REQUEST
        self._refusal = None
        timer = eventlet.Timeout(edge.header_timeout)
        try:
            self.connection.settimeout(edge.header_timeout)
            ok = self._read_head(edge)
        except eventlet.Timeout as exc:
            if exc is not timer:
                raise
            ok, self._refusal = False, Refusal(
                408, "REQUEST_TIMEOUT",
                f"headers: the request line and headers must arrive within {edge.header_timeout:g}s")
        except OSError:
            self.close_connection = 1
            return
        finally:
            timer.cancel()
        if not ok:
            if self._refusal is not None:
                self.refuse(self._refusal)
            self.close_connection = 1
            return
        self.connection.settimeout(edge.body_timeout)
        self.environ = self.get_environ()
        self.environ["stevedore.close"] = partial(setattr, self, "close_connection", 1)
        self.application = self.server.app
        self.server.outstanding_requests += 1
        try:
            self.handle_one_response()
        except OSError as exc:
            if get_errno(exc) not in wsgi.BROKEN_SOCK:
                raise
        finally:
            self.server.outstanding_requests -= 1

    def _read_head(self, edge):
        """Read and parse the request line and headers; False (with ``_refusal`` set) if refused."""
        self.raw_requestline = self.rfile.readline(REQUEST_LINE_MAX)
        if not self.raw_requestline:
            return False
        if len(self.raw_requestline) >= REQUEST_LINE_MAX:
            self._refusal = Refusal(414, "URI_TOO_LONG",
                                    f"path: the request line must be shorter than {REQUEST_LINE_MAX} bytes")
            return False
        reader = self.rfile
        self.rfile = _BoundedHead(reader, edge.max_header_bytes)
        try:
            if not self.parse_request():
                return False
        except _HeadTooLarge:
            self._refusal = Refusal(431, "HEADERS_TOO_LARGE",
                                    f"headers: must be at most {edge.max_header_bytes} bytes in all")
            return False
        finally:
            self.rfile = reader
        if any(len(self.headers.get_all(name, ())) > 1 for name in ("Content-Length", "Transfer-Encoding")):
            # two framings of one body: the way requests are smuggled past a proxy
            self._refusal = Refusal(400, "VALIDATION_ERROR",
                                    "content-length: Content-Length and Transfer-Encoding may each be sent once")
            return False
        length = self.headers.get("Content-Length")
        encoding = self.headers.get("Transfer-Encoding")
        if length is not None and not (length.isascii() and length.isdigit()):
            self._refusal = Refusal(400, "VALIDATION_ERROR", "content-length: must be a whole number of bytes")
            return False
        if encoding is not None and (encoding.strip().lower() != "chunked" or length is not None):
            self._refusal = Refusal(400, "VALIDATION_ERROR",
                                    "transfer-encoding: only 'chunked' is supported, and not with Content-Length")
            return False
        if length is not None:
            # eventlet turns Content-Length into an int before any handler runs, and int() refuses
            # a string of over 4300 digits (sys.get_int_max_str_digits): its ValueError would drop
            # the connection unanswered.  Without its leading zeros the figure is short, or too large.
            digits = length.lstrip("0") or "0"
            if len(digits) > len(str(edge.max_body_bytes)):
                self._refusal = Refusal(413, "PAYLOAD_TOO_LARGE",
                                        f"body: must be at most {edge.max_body_bytes} bytes")
                return False
            if digits != length:
                self.headers.replace_header("Content-Length", digits)
        return True

    def send_error(self, code, message=None, explain=None):
        """What ``parse_request`` finds wrong (bad request line, too many headers): a JSON refusal."""
        status = int(code)
        error = {431: "HEADERS_TOO_LARGE", 505: "HTTP_VERSION_NOT_SUPPORTED"}.get(status, "BAD_REQUEST")
        self._refusal = Refusal(status, error, f"request: {message or HTTPStatus(status).phrase}"[:200])

    def refuse(self, refusal):
        log.info("%s refused: %s %s", self.client_address[0] if self.client_address else "?",
                 refusal.status, refusal.message)
        try:
            self.wfile.write(refusal_bytes(refusal.status, refusal.code, refusal.message))
            self.wfile.flush()
        except OSError:
            pass
        self.close_connection = 1


def read_body(environ, settings):
    """The request's whole body, read here (in the connection's greenthread) within the limits.

    Replaces the environ's input with the bytes read, so the worker that
    handles the request never waits on the client.  Raises Refusal.
    """
    length = environ.get("CONTENT_LENGTH")
    chunked = environ.get("HTTP_TRANSFER_ENCODING", "").strip().lower() == "chunked"
    limit = settings.max_body_bytes
    too_large = Refusal(413, "PAYLOAD_TOO_LARGE", f"body: must be at most {limit} bytes")
    if not chunked and length in (None, "", "0"):
        return b""
    expected = None if chunked else int(length)
    if expected is not None and expected > limit:
        raise too_large
    stream = environ["wsgi.input"]
    parts, size = [], 0
    timer = eventlet.Timeout(settings.body_timeout)
    try:
        while True:
            chunk = stream.read(min(READ_SIZE, limit + 1 - size))
            if not chunk:
                break
            parts.append(chunk)
            size += len(chunk)
            if size > limit:
                raise too_large
    except eventlet.Timeout as exc:
        if exc is not timer:
            raise
        raise Refusal(408, "REQUEST_TIMEOUT",
                      f"body: must arrive within {settings.body_timeout:g}s") from None
    except ValueError as exc:  # eventlet's ChunkReadError
        raise Refusal(400, "VALIDATION_ERROR", f"body: malformed chunked encoding ({exc})"[:200]) from None
    except OSError:
        raise Refusal(400, "VALIDATION_ERROR", "body: the connection failed while it was read") from None
    finally:
        timer.cancel()
    body = b"".join(parts)
    if expected is not None and len(body) < expected:
        raise Refusal(400, "VALIDATION_ERROR",
                      f"body: ended after {len(body)} of the {expected} bytes Content-Length announced")
    environ["wsgi.input"] = io.BytesIO(body)
    environ["wsgi.input_terminated"] = True
    environ["CONTENT_LENGTH"] = str(len(body))
    environ.pop("HTTP_TRANSFER_ENCODING", None)
    return body


class EdgeWebServer(WebServer):
    """nameko's WebServer with the edge's limits on connections (see the module's docstring)."""

    def start(self):
        if not self._starting:
            self.settings = Settings(settings_of(self.container))
            fit_open_files(self.settings)
            self.counts = Counts(self.settings)
            super().start()
            self._reporter = eventlet.spawn(self._report_refusals)

    def stop(self):
        reporter = getattr(self, "_reporter", None)
        if reporter is not None:
            reporter.kill()
            self.counts.report()
        super().stop()

    def _report_refusals(self):
        while True:
            eventlet.sleep(REFUSALS_LOGGED_EVERY)
            self.counts.report()

    def get_wsgi_server(self, sock, wsgi_app, protocol=EdgeProtocol, debug=False):
        server = wsgi.Server(sock, sock.getsockname(), wsgi_app, protocol=EdgeProtocol, debug=False,
                             log=logging.getLogger(__name__), log_output=False,
                             keepalive=self.settings.idle_timeout, url_length_limit=REQUEST_LINE_MAX,
                             socket_timeout=self.settings.body_timeout)
        server.edge = self.settings
        return server

    def run(self):
        while self._is_accepting:
            try:
                sock, address = self._sock.accept()
            except OSError as exc:
                if get_errno(exc) in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    log.warning("cannot accept a connection (%s); waiting", exc)
                    eventlet.sleep(0.1)
                    continue
                if get_errno(exc) in (errno.ECONNABORTED, errno.EPROTO, errno.EINTR):
                    continue
                raise
            host = address[0]
            refusal = self.counts.admit(host)
            if refusal is not None:
                self.counts.note_refused(host, refusal)
                shed(sock, refusal)
                continue
            sock.settimeout(self.settings.idle_timeout)
            self.container.spawn_managed_thread(partial(self.process_request, sock, address))

    def process_request(self, sock, address):
        # a connection's failure must stay its own: nameko kills the whole service
        # when a managed thread raises
        try:
            super().process_request(sock, address)
        except Exception as exc:  # noqa: BLE001 -- logged, and the connection closed
            if get_errno(exc) not in wsgi.BROKEN_SOCK:
                log.warning("a connection from %s failed: %s: %s", address[0], exc.__class__.__name__,
                            str(exc)[:200])
        finally:
            self.counts.release(address[0])
            try:
                sock.close()
            except OSError:
                pass


def shed(sock, refusal):
    """Answer a connection over the limits without waiting on it, and close it."""
    try:
        sock.setblocking(False)
        sock.send(refusal_bytes(refusal.status, refusal.code, refusal.message))
    except OSError:
        pass
    finally:
        sock.close()
