"""Browser sessions: what the web UI's cookie holds instead of an API token.

Signing in (``POST /ui/signin`` with an API token) makes a random secret,
``secrets.token_urlsafe(32)``, for the ``stevedore_session`` cookie (HttpOnly,
SameSite=Strict, Path=/, Secure as ``cookie_secure`` says).  The registry keeps
the session (services/registry/sessions.py): only the secret's sha256, the
fingerprint of the API token it was made with, and its times.  A request that
carries the cookie is let in while its session lives: not expired
(UI_SESSION_SECONDS after sign-in), not revoked (signing out deletes it), and
made with a token still in STEVEDORE_TOKENS, or a principal's token still live
(not revoked nor expired: services/gateway/callers.py; the fingerprint of such a
token is its sha256, the registry's key for it), whose principal is then the
request's caller.  Anything else, a raw API token in the old ``stevedore_token``
cookie among it, is refused like a bad token.

The gateway asks the registry about a cookie at most once every
UI_SESSION_CACHE_SECONDS (``SessionCache``): a sign-out on one gateway replica
is seen by the others within that time; the replica that signs out forgets
the session at once.  The check runs in the request's entrypoint, before a
worker is taken (``SessionGate``, shared by the gateway's HTTP entrypoints).
"""
import functools
import hashlib
import hmac
import secrets
import time
from collections import OrderedDict
from dataclasses import replace

from nameko.containers import WorkerContext
from nameko.extensions import DependencyProvider, SharedExtension
from nameko.rpc import ReplyListener

from services.gateway.admission import trusted
from services.gateway.callers import TokenGate, caller_of_principal, token_hash
from shared.principals import CONFIGURED, SYSTEM
from shared.rpc import timeout_service
from shared.settings import settings_of

COOKIE = "stevedore_session"
LEGACY_COOKIE = "stevedore_token"  # held a raw API token before sessions; never accepted now
CACHE_SIZE = 10000
FINGERPRINT_SALT = b"stevedore web UI session"
FINGERPRINT_ROUNDS = 100_000


def secret_hash(secret):
    """What the registry stores of a cookie's secret: its sha256, hex."""
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


@functools.lru_cache(maxsize=256)
def fingerprint(token):
    """The hash of an API token a session remembers (slow to guess a weak token back from)."""
    return hashlib.pbkdf2_hmac("sha256", token.encode(), FINGERPRINT_SALT, FINGERPRINT_ROUNDS).hex()


def forwarded_proto(environ):
    """The scheme the nearest proxy reported: the last value of X-Forwarded-Proto, lower-cased."""
    values = [v.strip() for v in environ.get("HTTP_X_FORWARDED_PROTO", "").split(",") if v.strip()]
    return values[-1].lower() if values else None


def cookie_secure(mode, environ, proxies):
    """Whether the cookie gets ``Secure``: ``mode`` on/off forces it; auto: the request came over https.

    Over https means the gateway itself saw https, or the peer is a proxy named
    in ``proxies`` (HTTP_TRUSTED_PROXIES) and its X-Forwarded-Proto says https.
    Anyone else's X-Forwarded-Proto is ignored: a client may send what it likes.
    """
    if mode != "auto":
        return mode == "on"
    if environ.get("wsgi.url_scheme") == "https":
        return True
    return trusted(environ.get("REMOTE_ADDR", ""), proxies) and forwarded_proto(environ) == "https"


MISSING = object()


class SessionCache:
    """The registry's answers about cookies, kept ``ttl`` seconds (a live session: never past its expiry).

    An answer "no such session" is kept too, and is never replaced by a live one
    while kept: a secret is only ever presented after its session was made, so
    a "no" can only be about a session that ended (revoked here: ``forget``), and
    a check that was under way while it ended must not bring it back.
    """

    def __init__(self, ttl, size=CACHE_SIZE, clock=time.monotonic):
        self.ttl, self.size, self.clock = ttl, size, clock
        self.entries = OrderedDict()

    def get(self, key):
        entry = self.entries.get(key)
        if entry is None:
            return MISSING
        until, session = entry
        if until <= self.clock():
            del self.entries[key]
            return MISSING
        return session

    def put(self, key, session, seconds_left=None):
        if self.ttl <= 0:
            return
        if session is not None and self.get(key) is None:
            return  # ended meanwhile
        keep = self.ttl if session is None else min(self.ttl, seconds_left)
        self.entries[key] = (self.clock() + keep, session)
        self.entries.move_to_end(key)
        while len(self.entries) > self.size:
            self.entries.popitem(last=False)

    def forget(self, key):
        """The session ended here: "no" from now on (kept ``ttl``, as any answer)."""
        self.entries.pop(key, None)
        self.put(key, None)


class SessionGate(SharedExtension):
    """One per gateway process: the settings, the token fingerprints and the cache of sessions."""

    rpc_reply_listener = ReplyListener()

    def setup(self):
        self.settings = settings_of(self.container)
        self.timeout = self.settings.rpc_timeout
        self.fingerprints = {token: fingerprint(token) for token in self.settings.api_tokens}
        self.cache = SessionCache(self.settings.ui_session_cache_seconds)

    def registry(self, worker_ctx):
        return timeout_service(worker_ctx, "registry", self.rpc_reply_listener, self.timeout)

    def token_fingerprint(self, token):
        """The fingerprint of ``token`` if it is one of STEVEDORE_TOKENS, else None."""
        found = None
        for known, print_ in self.fingerprints.items():  # every token compared: no early exit
            if hmac.compare_digest(token.encode("utf-8", "surrogatepass"), known.encode()):
                found = print_
        return found

    def session_print(self, secret, entrypoint):
        """The token fingerprint of the live session the cookie's ``secret`` names, or None.

        Asks the registry (raises Unavailable when it does not answer) unless the
        cache answers.  Called in ``entrypoint``'s request, outside any worker.
        """
        key = secret_hash(secret)
        session = self.cache.get(key)
        if session is MISSING:
            session = self.registry(WorkerContext(self.container, None, entrypoint)).check_session(key)
            self.cache.put(key, session, session and session["seconds_left"])
        return None if session is None else session["token_fingerprint"]

    def is_configured(self, token_print):
        """Whether a session's fingerprint is that of a token still in STEVEDORE_TOKENS."""
        return token_print in self.fingerprints.values()

    def admits(self, secret, entrypoint):
        """Whether the cookie's ``secret`` names a live session made with a token still configured."""
        token_print = self.session_print(secret, entrypoint)
        return token_print is not None and self.is_configured(token_print)


class Sessions(DependencyProvider):
    """A worker's verbs on sessions: sign in, sign out, and the cookie's attributes."""

    gate = SessionGate()
    tokens = TokenGate()

    def get_dependency(self, worker_ctx):
        return SessionVerbs(self.gate, worker_ctx, self.tokens)


class SessionVerbs:
    def __init__(self, gate, worker_ctx, tokens=None):
        self.gate = gate
        self.tokens = tokens
        self.settings = gate.settings
        self.worker_ctx = worker_ctx

    def sign_in(self, token, address=None):
        """A new session for an API token (one of STEVEDORE_TOKENS, or a principal's live token): its
        secret (for the cookie), or None if the token is not ours.  The audit log's ``session.sign_in``
        is the token's principal's, from ``address``."""
        token_print = self.gate.token_fingerprint(token)
        if token_print is None:
            key = token_hash(token)
            principal = self.tokens and self.tokens.principal(key, worker_ctx=self.worker_ctx)
            if principal is None:
                return None
            token_print = key  # a principal's session ends with its token (revoked, expired)
            caller = caller_of_principal(principal, address)
        else:
            caller = replace(CONFIGURED, address=address)
        secret = secrets.token_urlsafe(32)
        self.gate.registry(self.worker_ctx).create_session(secret_hash(secret), token_print,
                                                           self.settings.ui_session_seconds,
                                                           caller=caller.as_dict())
        return secret

    def sign_out(self, secret, address=None):
        """Revoke the session; this replica refuses it at once, others within the cache's time.  The audit
        log's ``session.sign_out`` is the session's principal's; of a session whose token is no longer live
        (revoked, expired: its principal is not known any more), ``SYSTEM``'s."""
        key = secret_hash(secret)
        registry = self.gate.registry(self.worker_ctx)
        session = registry.check_session(key)
        caller = SYSTEM
        if session is not None:
            token_print = session["token_fingerprint"]
            if self.gate.is_configured(token_print):
                caller = CONFIGURED
            else:
                principal = self.tokens and self.tokens.principal(token_print, worker_ctx=self.worker_ctx)
                caller = SYSTEM if principal is None else caller_of_principal(principal, None)
        registry.revoke_session(key, caller=replace(caller, address=address).as_dict())
        self.gate.cache.forget(key)

    def cookie_secure(self, environ):
        return cookie_secure(self.settings.ui_cookie_secure, environ, self.settings.http_trusted_proxies)
