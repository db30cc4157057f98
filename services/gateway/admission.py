"""Who may hold a connection to the gateway, and how many: the edge's limits (read once at start),
the client behind a trusted proxy, the open connections counted, and the refusal a client gets.

services/gateway/edge.py applies them; its docstring lists every limit.
"""
import ipaddress
import json
import logging
from collections import Counter
from http import HTTPStatus

log = logging.getLogger(__name__)

LIMITS = ("idle_timeout", "header_timeout", "body_timeout", "max_header_bytes", "max_body_bytes",
          "max_connections", "max_connections_per_client")  # the HTTP_* settings (shared/settings.py)
REFUSALS_LOGGED_EVERY = 10.0  # seconds: refused connections are logged as a count, not one by one


class Refusal(Exception):
    """A request refused at the edge: answered with the API's JSON error, then the connection closes."""

    def __init__(self, status, code, message):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def refusal_bytes(status, code, message):
    body = json.dumps({"error": code, "message": message}).encode()
    head = (f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n")
    return head.encode("latin-1") + body


class Settings:
    """The edge's limits, from the gateway's settings (parsed at start); max_connections may be fitted."""

    def __init__(self, settings):
        for name in LIMITS:
            setattr(self, name, getattr(settings, f"http_{name}"))
        self.trusted_proxies = settings.http_trusted_proxies

    def trusted(self, address):
        return trusted(address, self.trusted_proxies)


def trusted(address, networks):
    """Whether ``address`` (text) is in one of ``networks`` (HTTP_TRUSTED_PROXIES, parsed in shared/settings.py); False if not an address."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


def client_address(environ, settings):
    """The client a request is from: its peer, or what a trusted proxy's X-Forwarded-For says.

    The list is read from the right: the first address that is not a trusted
    proxy is the client (anything left of it could be made up by the client).
    """
    peer = environ.get("REMOTE_ADDR", "")
    if not settings.trusted(peer):
        return peer
    hops = [hop.strip() for hop in environ.get("HTTP_X_FORWARDED_FOR", "").split(",") if hop.strip()]
    client = peer
    for hop in reversed(hops):
        client = hop[:64]
        if not settings.trusted(hop):
            break
    return client


class Counts:
    """Open connections in all and by client address; in-flight requests by forwarded client."""

    def __init__(self, settings):
        self.settings = settings
        self.total = 0
        self.by_client = Counter()
        self.forwarded = Counter()
        self.refused = Counter()

    def admit(self, address):
        """None when a new connection from ``address`` may go on, else its Refusal."""
        s = self.settings
        if self.total >= s.max_connections:
            return Refusal(503, "UNAVAILABLE",
                           f"connections: the gateway holds its limit of {s.max_connections} connections; "
                           "try again shortly")
        if not s.trusted(address) and self.by_client[address] >= s.max_connections_per_client:
            return Refusal(429, "TOO_MANY_CONNECTIONS",
                           f"connections: at most {s.max_connections_per_client} open connections "
                           "per client address")
        self.total += 1
        self.by_client[address] += 1
        return None

    def release(self, address):
        self.total -= 1
        self.by_client[address] -= 1
        if self.by_client[address] <= 0:
            del self.by_client[address]

    def admit_forwarded(self, client):
        """A request through a trusted proxy: count it against its client, or refuse it."""
        limit = self.settings.max_connections_per_client
        if self.forwarded[client] >= limit:
            raise Refusal(429, "TOO_MANY_CONNECTIONS",
                          f"connections: at most {limit} requests in progress per client address")
        self.forwarded[client] += 1

    def release_forwarded(self, client):
        self.forwarded[client] -= 1
        if self.forwarded[client] <= 0:
            del self.forwarded[client]

    def note_refused(self, address, refusal):
        """Refused connections are logged as counts (``report``, every REFUSALS_LOGGED_EVERY)."""
        if len(self.refused) < 1000 or (address, refusal.status) in self.refused:
            self.refused[(address, refusal.status)] += 1

    def report(self):
        if self.refused:
            log.warning("refused connections over the limits in the last %gs: %s", REFUSALS_LOGGED_EVERY,
                        ", ".join(f"{count} from {address} ({status})"
                                  for (address, status), count in self.refused.most_common(10)))
        self.refused.clear()


FILES_SPARE = 100  # open files kept for everything else: the broker, logs, the listening socket


def fit_open_files(settings):
    """Raise the open-file limit to fit HTTP_MAX_CONNECTIONS, or lower the bound to fit the limit.

    A gateway out of file descriptors cannot accept, nor reach RabbitMQ.
    """
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = settings.max_connections + FILES_SPARE
    if soft != resource.RLIM_INFINITY and soft < wanted:
        raised = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
            soft = raised
        except (ValueError, OSError):
            pass
    if soft != resource.RLIM_INFINITY and soft < wanted:
        fitted = max(1, soft - FILES_SPARE)
        log.warning("HTTP_MAX_CONNECTIONS %s does not fit the open-file limit %s; using %s",
                    settings.max_connections, soft, fitted)
        settings.max_connections = fitted
