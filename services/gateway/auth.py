"""Who a gateway request is: the credential it presents, whether its route asks for one, the caller it was
let in as, and how to ask again while its response streams.

services/gateway/http.py ``JsonHttp`` authenticates with these (a bearer token, else the web UI's sign-in
cookie, services/gateway/sessions.py); the handlers read the caller back with ``caller_of`` / ``who``.
"""
import logging

from nameko.exceptions import RemoteError

from services.gateway.sessions import COOKIE
from shared.errors import StevedoreError
from shared.principals import CONFIGURED

log = logging.getLogger(__name__)


def is_public(public, settings):
    """Whether an endpoint skips auth: ``public`` is True/False, or the name of a switch in ``settings``."""
    if isinstance(public, str):
        return getattr(settings, public.lower())
    return bool(public)


def presented_token(request):
    """What a request carries: an API token (Authorization: Bearer), else the UI's session secret
    (its cookie, services/gateway/sessions.py); and which of the two."""
    header = request.headers.get("Authorization", "")
    if header[:7].lower() == "bearer ":
        return header[7:].strip(), "header"
    cookie = request.cookies.get(COOKIE)
    if cookie:
        return cookie, "cookie"
    return None, None


def cross_site(request):
    """A browser request sent from another site's page (so a cookie must not authorise it)."""
    origin = request.headers.get("Origin")
    if not origin:
        return False
    return origin.split("://", 1)[-1].rstrip("/") != request.host


class Admission:
    """How a request was let in, to be asked again while its response streams (services/gateway/follow.py):
    its ``caller`` then, and ``recheck``, which works the caller out anew from the same token or sign-in
    cookie (None: nothing to ask again, auth is off)."""

    def __init__(self, caller, recheck):
        self.caller = caller
        self.recheck = recheck

    def holds(self):
        """Whether the request's token or session would be let in now, as the same caller.

        Asked through this gateway process's caches (TOKEN_CACHE_SECONDS, UI_SESSION_CACHE_SECONDS), which a
        revocation (``token_revoked``) or a sign-out (``session_ended``) empties at once, so it costs at most one
        registry lookup per token or session and cache time.  A lookup the registry does not answer is no
        verdict: it holds until a later one says otherwise.
        """
        if self.recheck is None:
            return True
        try:
            return self.recheck() == self.caller
        except (StevedoreError, RemoteError) as exc:
            log.warning("a stream's %s could not be checked again: %s", self.caller.principal, exc)
            return True


def admission(request):
    """The request's ``Admission`` (set when it was let in; a public route's: always holds)."""
    return getattr(request, "stevedore_admission", None) or Admission(caller_of(request), None)


def caller_of(request):
    """The request's ``Caller`` (shared/principals.py), set when it was admitted."""
    return getattr(request, "stevedore_caller", None) or CONFIGURED


def who(request):
    """The request's caller as a service is handed it: the ``caller=`` of an RPC (issue 18)."""
    return caller_of(request).as_dict()
