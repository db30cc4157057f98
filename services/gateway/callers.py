"""Who a request is from: its bearer token (or its sign-in session's token) made a ``Caller``.

A token of STEVEDORE_TOKENS is the configured admin (``CONFIGURED``, of the ``default`` team).  Any
other token is looked up by its sha256 in the registry (``resolve_token``: the principal, its role and
team; None for an unknown, revoked or expired token, or a disabled principal), and the answer kept
TOKEN_CACHE_SECONDS (at most 1) by this gateway process (``TokenCache``).

Revocation reaches every gateway process at once: the registry dispatches ``token_revoked`` and each
gateway process has a BROADCAST handler of its own (services/gateway/tokens.py) that makes its cache
refuse the token from then on (``forget``).  Should that event be lost, the cache's time bounds the
delay: a revoked token is refused everywhere within TOKEN_CACHE_SECONDS.  A log stream let in with a
token asks it again through this cache every second (services/gateway/follow.py), so it ends with it too.
"""
import hashlib
import hmac
import time
from collections import OrderedDict
from dataclasses import replace

from nameko.containers import WorkerContext
from nameko.extensions import SharedExtension
from nameko.rpc import ReplyListener

from shared.errors import NotFound
from shared.principals import CONFIGURED, Caller
from shared.rpc import timeout_service
from shared.settings import settings_of

CACHE_SIZE = 10000
REVOKED_KEPT = 600  # seconds a revoked token's id is remembered (answers under way when it was revoked)
MISSING = object()


def sha256_hex(text):
    """The sha256 of a text, hex: all the registry keeps of a principal's token (``token_hash``) and of a
    sign-in cookie's secret (services/gateway/sessions.py ``secret_hash``)."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


token_hash = sha256_hex


def configured_match(token, table):
    """``table``'s value for ``token`` (``table``: each STEVEDORE_TOKENS token -> a value), or None.
    Every token is compared, in constant time, with no early exit."""
    raw = token.encode("utf-8", "surrogatepass")
    found = None
    for known, value in table.items():
        if hmac.compare_digest(raw, known.encode()):
            found = value
    return found


class AnswerCache:
    """The registry's answers, each kept until a time of its own, at most ``size`` (the oldest dropped
    first); ``ttl`` (seconds) bounds how long one is kept, 0 keeps none.  ``TokenCache`` and
    services/gateway/sessions.py ``SessionCache`` add their rules."""

    def __init__(self, ttl, size=CACHE_SIZE, clock=time.monotonic):
        self.ttl, self.size, self.clock = ttl, size, clock
        self.entries = OrderedDict()

    def get(self, key):
        """The answer kept for ``key``, or MISSING (none, or its time is up)."""
        entry = self.entries.get(key)
        if entry is None:
            return MISSING
        until, answer = entry
        if until <= self.clock():
            del self.entries[key]
            return MISSING
        return answer

    def keep(self, key, answer, seconds):
        self.entries[key] = (self.clock() + seconds, answer)
        self.entries.move_to_end(key)
        while len(self.entries) > self.size:
            self.entries.popitem(last=False)


class TokenCache(AnswerCache):
    """The registry's answers about token hashes, kept ``ttl`` seconds (never past the token's expiry).

    ``forget(token_id)`` (a revocation) refuses that token from then on, whatever answer is kept or
    arrives later from a lookup that was under way.
    """

    def __init__(self, ttl, size=CACHE_SIZE, clock=time.monotonic):
        super().__init__(ttl, size, clock)
        self.revoked = OrderedDict()  # token id -> until when it is remembered

    def get(self, key):
        principal = super().get(key)
        return None if principal is not MISSING and self.is_revoked(principal) else principal

    def put(self, key, principal):
        if self.ttl <= 0 or self.is_revoked(principal):
            return
        left = principal.get("seconds_left") if principal else None
        self.keep(key, principal, self.ttl if left is None else max(0.0, min(self.ttl, left)))

    def is_revoked(self, principal):
        if not principal:
            return False
        until = self.revoked.get(principal.get("token_id"))
        return until is not None and until > self.clock()

    def forget(self, token_id):
        """The token was revoked: refused from now on."""
        now = self.clock()
        self.revoked[token_id] = now + REVOKED_KEPT
        self.revoked.move_to_end(token_id)
        while self.revoked and (len(self.revoked) > self.size or next(iter(self.revoked.values())) <= now):
            self.revoked.popitem(last=False)
        for key in [key for key, (_, p) in self.entries.items() if p and p.get("token_id") == token_id]:
            del self.entries[key]


def caller_of_principal(principal, address):
    return Caller(principal["principal"], principal["role"], principal["team"], address)


class TokenGate(SharedExtension):
    """One per gateway process: the configured tokens and the cache of principals' tokens."""

    rpc_reply_listener = ReplyListener()

    def setup(self):
        settings = settings_of(self.container)
        self.timeout = settings.rpc_timeout
        self.configured = {token: True for token in settings.api_tokens}
        self.cache = TokenCache(settings.token_cache_seconds)
        self.team_ttl = settings.token_cache_seconds
        self.teams = OrderedDict()  # team name -> until when it is known to exist (``team_exists``)

    def is_configured(self, token):
        """Whether ``token`` is one of STEVEDORE_TOKENS (every one compared: no early exit)."""
        return configured_match(token, self.configured) is not None

    def principal(self, key, entrypoint=None, worker_ctx=None):
        """The principal of the token whose sha256 is ``key`` (a dict), or None.  Asks the registry
        (Unavailable when it does not answer) unless the cache answers; in a request's entrypoint
        (outside any worker), or a worker's ``worker_ctx``."""
        principal = self.cache.get(key)
        if principal is MISSING:
            registry = timeout_service(worker_ctx or WorkerContext(self.container, None, entrypoint), "registry",
                                       self.rpc_reply_listener, self.timeout)
            principal = registry.resolve_token(key)
            self.cache.put(key, principal)
            if self.cache.is_revoked(principal):  # revoked while the answer was on its way
                principal = None
        return principal

    def team_exists(self, name, entrypoint):
        """Whether the team ``name`` exists (the scheduler keeps the teams): the check of a team a request
        picks (services/gateway/http.py).  A yes is kept TOKEN_CACHE_SECONDS, as a token's answer is; a no
        is never kept (a team made now is found at once).  Unavailable when the scheduler does not answer."""
        now = time.monotonic()
        if self.teams.get(name, 0) > now:
            return True
        scheduler = timeout_service(WorkerContext(self.container, None, entrypoint), "scheduler",
                                    self.rpc_reply_listener, self.timeout)
        try:
            scheduler.get_team(name, caller=CONFIGURED.as_dict())
        except NotFound:
            self.teams.pop(name, None)
            return False
        if self.team_ttl > 0:
            self.teams[name] = now + self.team_ttl
            self.teams.move_to_end(name)
            while len(self.teams) > CACHE_SIZE:
                self.teams.popitem(last=False)
        return True

    def caller(self, token, entrypoint, address=None):
        """The Caller of a bearer token, or None (not a token of ours)."""
        if self.is_configured(token):
            return replace(CONFIGURED, address=address)
        principal = self.principal(token_hash(token), entrypoint)
        return None if principal is None else caller_of_principal(principal, address)
