"""How fast a client may ask, and how often an address may fail to authenticate: per gateway process.

- Each client has a token bucket (``Buckets``): HTTP_RATE_BURST requests at once, refilled at
  HTTP_RATE_LIMIT a second.  The client is the request's principal once its token or sign-in cookie is
  taken (every STEVEDORE_TOKENS token is the one configured admin), else its address (the edge's, through
  HTTP_TRUSTED_PROXIES: services/gateway/admission.py ``client_address``).  ``GET /health/`` has a
  bucket of its own per address, so a load balancer's probes and the API's traffic never starve each
  other, and a flood of health checks (two RPCs each) is still bounded.
- Each address's failed authentications are counted (``Failures``): a bearer token that is not ours, a
  sign-in with a token that is not ours.  After HTTP_AUTH_FAILURES of them within HTTP_AUTH_WINDOW
  seconds, every bearer token and sign-in from that address is refused, the good ones too, until the
  oldest of them is out of the window: at most HTTP_AUTH_FAILURES guesses per window, whatever the
  guesser tries.  A success resets nothing (a guesser holding one good token cannot clear its count
  with it).  A sign-in cookie is not counted nor refused: its secret is 256 random bits of the
  gateway's making, and a browser whose session ended sends it with every poll of an open page.
- A request with a sign-in cookie that names no live session, or with no credential, is a 401 that takes
  a token of a bucket of its address's own (``unauthenticated``), and is refused before its cookie is
  looked up while that bucket is empty: random cookies (each a registry lookup, as no cache knows them)
  cost at most HTTP_RATE_LIMIT lookups a second per address, and a live cookie's requests from a shared
  address take nothing from it.

A refusal is a 429 with Retry-After, answered in the connection's greenthread before any worker or RPC
(services/gateway/http.py ``JsonHttp``), and counted: the counts are logged every
REFUSALS_LOGGED_EVERY seconds, not a line per refusal.  Each table keeps at most CLIENTS_KEPT clients,
the least recently seen dropped first, so a client spraying source addresses or tokens costs bounded
memory (a dropped bucket comes back full, a dropped count empty).

Per gateway process: with N gateway processes behind a balancer a client may make N times the rate.
"""
import ipaddress
import logging
import math
import time
from collections import Counter, OrderedDict, deque

import eventlet
from nameko.extensions import SharedExtension

from services.gateway.admission import REFUSALS_LOGGED_EVERY
from shared.settings import settings_of

log = logging.getLogger(__name__)

CLIENTS_KEPT = 10000  # clients each table remembers; the least recently seen are dropped first
COUNTED_KEPT = 1000   # clients whose refusals are counted between two reports


def address_key(address):
    """The address a throttle counts ``address`` as: an IPv6 address as its /64 (one host, or one site's LAN,
    holds a whole /64: counted per address it would rotate past any bound), an IPv4 one as itself."""
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address
    if parsed.version == 4:
        return str(parsed)
    if parsed.ipv4_mapped is not None:
        return str(parsed.ipv4_mapped)
    return str(ipaddress.ip_network(f"{parsed}/64", strict=False))


def retry_after(seconds):
    """Whole seconds for a Retry-After header: at least 1."""
    return max(1, math.ceil(seconds - 1e-9))


class Buckets:
    """A token bucket per key: ``burst`` requests at once, ``rate`` a second after that (0: no limit)."""

    def __init__(self, rate, burst, size=CLIENTS_KEPT, clock=time.monotonic):
        self.rate, self.burst, self.size, self.clock = rate, burst, size, clock
        self.buckets = OrderedDict()  # key -> (tokens, when counted)

    def take(self, key):
        """0 when ``key`` may make a request now (one token taken), else the seconds until it may."""
        if self.rate <= 0:
            return 0.0
        now = self.clock()
        tokens, then = self.buckets.pop(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - then) * self.rate)
        wait = 0.0
        if tokens >= 1:
            tokens -= 1
        else:
            wait = (1 - tokens) / self.rate
        self.buckets[key] = (tokens, now)
        while len(self.buckets) > self.size:
            self.buckets.popitem(last=False)
        return wait

    def waiting(self, key):
        """The seconds until ``key`` may make a request (0: now), no token taken."""
        if self.rate <= 0 or key not in self.buckets:
            return 0.0
        tokens, then = self.buckets[key]
        tokens = min(self.burst, tokens + (self.clock() - then) * self.rate)
        return 0.0 if tokens >= 1 else (1 - tokens) / self.rate


class Failures:
    """Failed authentications per address: at most ``limit`` within ``window`` seconds (0: no limit)."""

    def __init__(self, limit, window, size=CLIENTS_KEPT, clock=time.monotonic):
        self.limit, self.window, self.size, self.clock = limit, window, size, clock
        self.failures = OrderedDict()  # address -> the times of its last ``limit`` failures

    def locked(self, address):
        """The seconds ``address``'s tokens and sign-ins are still refused for; 0: not refused."""
        times = self.failures.get(address)
        if self.limit <= 0 or times is None or len(times) < self.limit:
            return 0.0
        return max(0.0, times[0] + self.window - self.clock())

    def failed(self, address):
        if self.limit <= 0:
            return
        times = self.failures.pop(address, None) or deque(maxlen=self.limit)
        times.append(self.clock())
        self.failures[address] = times
        while len(self.failures) > self.size:
            self.failures.popitem(last=False)


class Refused:
    """429s given, by client and reason, logged as counts (``report``), not one line each."""

    def __init__(self):
        self.counts = Counter()

    def note(self, client, reason):
        if len(self.counts) < COUNTED_KEPT or (client, reason) in self.counts:
            self.counts[(client, reason)] += 1

    def report(self):
        if self.counts:
            log.warning("requests refused with 429 in the last %gs: %s", REFUSALS_LOGGED_EVERY,
                        ", ".join(f"{count} from {client} ({reason})"
                                  for (client, reason), count in self.counts.most_common(10)))
        self.counts.clear()


class Throttle(SharedExtension):
    """One per gateway process: the buckets, the failed authentications, the refusals' counts.

    Each method answers None (go on) or ``(seconds, message)``: the request is refused, 429 with
    Retry-After ``seconds``.
    """

    def setup(self):
        settings = settings_of(self.container)
        self.buckets = Buckets(settings.http_rate_limit, settings.http_rate_burst)
        self.failures = Failures(settings.http_auth_failures, settings.http_auth_window)
        self.refused = Refused()
        self._reporter = None

    def start(self):
        self._reporter = eventlet.spawn(self._report)

    def stop(self):
        if self._reporter is not None:
            self._reporter.kill()
            self._reporter = None
        self.refused.report()

    def _report(self):
        while True:
            eventlet.sleep(REFUSALS_LOGGED_EVERY)
            self.refused.report()

    def take(self, key, shown):
        """A request of the client ``key`` (shown in the logs as ``shown``)."""
        return self._refusal(self.buckets.take(key), shown)

    def check_unauthenticated(self, address):
        """A request with a sign-in cookie or no credential: refused while ``address``'s requests that failed
        to authenticate so have emptied its bucket (``unauthenticated``), before the cookie is looked up."""
        return self._refusal(self.buckets.waiting(("unauthenticated", address)), address)

    def unauthenticated(self, address):
        """A request from ``address`` with a cookie that names no live session, or no credential: a 401."""
        self.buckets.take(("unauthenticated", address))

    def _refusal(self, wait, shown):
        if not wait:
            return None
        self.refused.note(shown, "rate")
        seconds = retry_after(wait)
        return seconds, (f"rate: at most {self.buckets.rate:g} requests a second per client, "
                         f"{self.buckets.burst} at once; try again in {seconds} s")

    def check_address(self, address):
        """A bearer token or a sign-in from ``address``: refused while it has failed too often."""
        left = self.failures.locked(address)
        if not left:
            return None
        self.refused.note(address, "authentication")
        seconds = retry_after(left)
        return seconds, (f"authorization: {self.failures.limit} failed tokens or sign-ins from this address "
                         f"within {self.failures.window:g} s; its tokens and sign-ins are refused for {seconds} s")

    def failed(self, address):
        self.failures.failed(address)
