"""JSON over HTTP for the gateway: one entrypoint type, one error table.

Handlers return ``payload`` or ``(status, payload)`` or ``(status, headers,
payload)`` where payload is any JSON value; errors become
``{"error": CODE, "message": "field: what is wrong"}`` with the status below.
Unknown paths and methods answer in the same JSON shape, never in HTML.

Before a request reaches a worker (services/gateway/edge.py) its body is read
whole, and every path value and query parameter is checked like any string
of a body (shared/validation.py ``check_text``).  Each request is logged once,
on one line, with the error of a refused one; expected client errors are not
logged again by nameko's container (shared/logs.py).

Who a request is (its token or sign-in cookie, its caller) is services/gateway/auth.py; what a handler
reads from a request (its JSON body, a list page's query) is services/gateway/inputs.py.
"""
import functools
import json
import logging
import re
from dataclasses import replace
from urllib.parse import unquote_to_bytes

from nameko.exceptions import RemoteError
from nameko.web.handlers import HttpRequestHandler
from nameko.web.server import WsgiApp
from werkzeug.exceptions import HTTPException
from werkzeug.routing import RequestRedirect
from werkzeug.wrappers import Request, Response

from services.gateway import access
from services.gateway.admission import Refusal, client_address
from services.gateway.auth import Admission, cross_site, is_public, presented_token
from services.gateway.callers import TokenGate, caller_of_principal
from services.gateway.edge import EdgeWebServer, read_body
from services.gateway.sessions import SessionGate
from services.gateway.throttle import Throttle, address_key
from shared import validation
from shared.errors import (
    Conflict, Forbidden, NotFound, StevedoreError, TooManyRequests, Unavailable, ValidationError)
from shared.handlers import first_line, is_transient
from shared.logs import printable
from shared.principals import CONFIGURED
from shared.settings import settings_of
from stevedore_jobs.contract.principals import TEAM_HEADER

log = logging.getLogger(__name__)
access_log = logging.getLogger("stevedore.access")

ERROR_STATUS = {
    ValidationError: 400,
    Forbidden: 403,
    NotFound: 404,
    Conflict: 409,
    TooManyRequests: 429,  # over a team's quota; Retry-After says when to try again
    Unavailable: 503,
}
# what a service's database raises when it is away or takes no more connections (SQLAlchemy's
# names): the service is unavailable for a moment, it did not fail (shared.handlers.is_transient)
DATABASE_AWAY = frozenset({"OperationalError", "InterfaceError", "DisconnectionError", "TimeoutError"})

_SURROGATE = re.compile(r"[\ud800-\udfff]")


def json_bytes(payload):
    """``payload`` as UTF-8 JSON; a lone surrogate becomes U+FFFD, as a UTF-8 decoder would show it.

    How one got in before the door checked strings: a RUN's ``env`` held the JSON
    escape "\\ud800"; the scheduler stored its params in a ``json`` column (the
    escape is written back as text, and PostgreSQL's ``json`` type keeps text as
    it is), read it back into a str with a lone surrogate, and the answer failed
    to encode here: a 500 for that RUN, and for every list that held the row.
    Such a row is now answered, not a failure.
    """
    text = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATE.sub("\ufffd", text).encode("utf-8")


def json_response(payload, status=200, headers=None):
    return Response(json_bytes(payload), status=status, headers=headers, mimetype="application/json")


MESSAGE_MAX = 500  # an error message that echoes input (an 8 KiB id) is cut here


def error_response(status, code, message):
    if len(message) > MESSAGE_MAX:
        message = message[:MESSAGE_MAX] + f"...(+{len(message) - MESSAGE_MAX} characters)"
    return json_response({"error": code, "message": message}, status=status)


def check_request_text(environ, request, values):
    """Path values and query parameters hold UTF-8 text without control characters: else a 400."""
    try:
        environ.get("PATH_INFO", "").encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        raise ValidationError("must be UTF-8 (percent-encoded)", "path") from None
    try:  # WSGI strings hold the raw bytes as latin-1; raw and percent-decoded, they must be UTF-8
        raw_query = environ.get("QUERY_STRING", "").encode("latin-1")
        raw_query.decode("utf-8")
        unquote_to_bytes(raw_query.replace(b"+", b" ")).decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        raise ValidationError("must be UTF-8 (percent-encoded)", "query") from None
    for name, value in values.items():
        if isinstance(value, str):
            validation.check_text(value, name)
    for name, value in request.args.items(multi=True):
        validation.check_text(name, "query")
        validation.check_text(value, name[:validation.SHOWN_MAX])


class JsonWsgiApp(WsgiApp):
    def __call__(self, environ, start_response):
        # eventlet buffers a streamed body in 4 KiB chunks by default; a log
        # follower must see each line as it is written
        environ["eventlet.minimum_write_chunk_size"] = 0
        edge = self.server.settings
        client = environ["stevedore_jobs.client"] = client_address(environ, edge)
        request = Request(environ, shallow=True)
        try:
            if client != environ.get("REMOTE_ADDR"):  # through a trusted proxy
                self.server.counts.admit_forwarded(client)
                environ["eventlet.posthooks"].append(
                    (lambda env, c: self.server.counts.release_forwarded(c), (client,), {}))
            read_body(environ, edge)
            response = self.route(environ, request)
        except Refusal as refusal:
            environ["stevedore.close"]()
            response = error_response(refusal.status, refusal.code, refusal.message)
        except Exception:  # noqa: BLE001 -- a bug, but one request's only
            log.exception("unexpected error at the gateway's door")
            environ["stevedore.close"]()  # what is left of its body is not waited for
            response = error_response(500, "INTERNAL_ERROR", "the server failed; the error is logged")
        if not getattr(request, "stevedore_throttled", False):  # counted instead (throttle.py)
            log_request(client, request, response)
        return response(environ, start_response)

    def route(self, environ, request):
        adapter = self.url_map.bind_to_environ(environ)
        try:
            provider, values = adapter.match()
            check_request_text(environ, request, values)
            request.path_values = values
            return provider.handle_request(request)
        except RequestRedirect as exc:  # /task -> /task/
            return exc.get_response(environ)
        except ValidationError as exc:
            request.stevedore_error = exc
            return error_response(400, exc.code, str(exc))
        except HTTPException as exc:
            code = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}.get(exc.code, "HTTP_ERROR")
            path = printable(request.path, 200)
            message = (f"no endpoint {request.method} {path}" if exc.code == 404
                       else f"{request.method} is not allowed on {path}" if exc.code == 405
                       else exc.description)
            response = error_response(exc.code, code, message)
            if exc.code == 405 and getattr(exc, "valid_methods", None):
                response.headers["Allow"] = ", ".join(exc.valid_methods)
            return response


def log_request(client, request, response):
    """One line a request: who, what, the answer; a refusal's error, cut short.  No header, no body."""
    status = response.status_code
    query = request.environ.get("QUERY_STRING")
    target = printable(request.path + (f"?{query}" if query else ""), 200)
    if status < 400:
        access_log.info("%s %s %s %s", client, request.method, target, status)
        return
    error = getattr(request, "stevedore_error", None)
    detail = f"{error.code} {error}" if error is not None else ""
    if not detail and response.mimetype == "application/json":
        try:
            body = json.loads(response.get_data())
            detail = f"{body.get('error')} {body.get('message')}"
        except (ValueError, AttributeError, RuntimeError):
            detail = ""
    # a 503 is a system away (not started yet, a restart), said once at WARNING; another 5xx is a bug
    level = logging.INFO if status < 500 else logging.WARNING if status == 503 else logging.ERROR
    access_log.log(level, "%s %s %s %s %s", client,
                   request.method, target, status, printable(detail, 300))


class JsonWebServer(EdgeWebServer):
    def get_wsgi_app(self):
        return JsonWsgiApp(self)


def too_many(request, refusal):
    """The 429 of a request the throttle refused (``refusal``: seconds, message); not logged one by one."""
    seconds, message = refusal
    request.stevedore_throttled = True
    response = error_response(429, "TOO_MANY_REQUESTS", message)
    response.headers["Retry-After"] = str(seconds)
    return response


class JsonHttp(HttpRequestHandler):
    """JSON responses, the error table, bearer-token auth, who may do what (services/gateway/access.py), and
    how fast (services/gateway/throttle.py).

    ``public=True`` skips auth; ``public="KEY"`` skips it when config switch KEY is on.  ``signs_in``: the
    route takes a token in its form (a 401 is a failed sign-in); ``bucket``: the route's requests are
    counted apart from the client's others (the health check's).
    """

    server = JsonWebServer()
    sessions = SessionGate()
    tokens = TokenGate()
    throttle = Throttle()
    # each request is logged once, by the app (log_request): nameko's container does not log
    # this entrypoint's expected client errors again (shared/logs.py)
    logs_requests = True

    def __init__(self, method, url, public=False, signs_in=False, bucket="client", **kwargs):
        super().__init__(method, url, **kwargs)
        self.public, self.signs_in, self.bucket = public, signs_in, bucket

    def setup(self):
        super().setup()
        settings = settings_of(self.container)
        self.auth_required = settings.auth
        self.permission = access.route_permission(self.method, self.url)  # a route left out: no start
        self.public = is_public(self.public, settings) or self.permission == access.PUBLIC

    def handle_request(self, request):
        address = address_key(request.environ.get("stevedore_jobs.client"))  # IPv6: its /64 (throttle.py)
        if self.public:
            return self.handle_public(request, address)
        bearer = self.auth_required and presented_token(request)[1] == "header"
        if bearer:
            refused = self.throttle.check_address(address)
        else:  # a cookie (or nothing): its failures are a rate of the address, not a lockout
            refused = self.auth_required and self.throttle.check_unauthenticated(address) or None
        if refused is not None:
            return too_many(request, refused)
        caller, refusal = self.authenticate(request)
        if refusal is not None:
            if refusal.status_code == 401:
                (self.throttle.failed if bearer else self.throttle.unauthenticated)(address)
            return refusal
        # a caller is its principal (with auth off everyone is the configured admin: its address)
        client = ("principal", caller.principal) if self.auth_required else ("address", address)
        refused = self.throttle.take((self.bucket, *client), client[1])
        if refused is not None:
            return too_many(request, refused)
        return self.authorize(request, caller) or super().handle_request(request)

    def handle_public(self, request, address):
        """A route without auth: the address's bucket; a sign-in also its failed authentications."""
        signs_in = self.signs_in and self.auth_required
        refused = ((signs_in and self.throttle.check_address(address))
                   or self.throttle.take((self.bucket, "address", address), address))
        if refused is not None:
            return too_many(request, refused)
        response = super().handle_request(request)
        if signs_in and response.status_code == 401:
            self.throttle.failed(address)
        return response

    def authenticate(self, request):
        """(the request's ``Caller``, None), or (None, the 401/403/503 response)."""
        address = request.environ.get("stevedore_jobs.client")
        if not self.auth_required:
            request.stevedore_admission = Admission(replace(CONFIGURED, address=address), None)
            return request.stevedore_admission.caller, None
        token, source = presented_token(request)
        caller = None
        try:
            if source == "cookie":
                message = "session: the sign-in session expired or ended; sign in again"
                recheck = functools.partial(self.session_caller, token, address)
            else:
                message = "authorization: send a valid API token as 'Authorization: Bearer <token>'"
                recheck = functools.partial(self.tokens.caller, token, self, address) if token else lambda: None
            caller = recheck()
        except (StevedoreError, RemoteError) as exc:  # the registry did not answer, or failed
            log.error("a %s could not be checked: %s", "sign-in session" if source == "cookie" else "token", exc)
            what = "session: the sign-in session" if source == "cookie" else "authorization: the token"
            return None, error_response(503, "UNAVAILABLE", f"{what} cannot be checked now; try again")
        if not caller:
            response = error_response(401, "UNAUTHORIZED", message)
            response.headers["WWW-Authenticate"] = 'Bearer realm="stevedore"'
            return None, response
        if source == "cookie" and request.method not in ("GET", "HEAD") and cross_site(request):
            return None, error_response(403, "FORBIDDEN",
                                        "origin: cross-site requests may not use the sign-in cookie")
        request.stevedore_admission = Admission(caller, recheck)
        return caller, None

    def session_caller(self, secret, address):
        """The caller of a sign-in cookie: the principal of the token its session was made with."""
        token_print = self.sessions.session_print(secret, self)
        if token_print is None:
            return None
        if self.sessions.is_configured(token_print):
            return replace(CONFIGURED, address=address)
        principal = self.tokens.principal(token_print, self)  # a principal's token: its sha256
        return None if principal is None else caller_of_principal(principal, address)

    def authorize(self, request, caller):
        """None when ``caller`` may use this route (acting for the team it picks, which must exist), else the
        400/403 (503: the team could not be checked)."""
        try:
            acting, team = access.acting(caller, request)
        except (ValidationError, Forbidden) as exc:
            request.stevedore_error = exc
            return error_response(ERROR_STATUS[type(exc)], exc.code, str(exc))
        refused = access.refusal(acting, self.permission, f"{request.method} {access.shown(self.url)}")
        if refused is not None:
            request.stevedore_error = refused
            return error_response(403, refused.code, str(refused))
        try:
            self.require_teams(request, caller)
        except ValidationError as exc:  # no such team
            request.stevedore_error = exc
            return error_response(400, exc.code, str(exc))
        except (StevedoreError, RemoteError) as exc:  # the scheduler did not answer, or failed
            log.error("the team a request picks could not be checked: %s", exc)
            request.stevedore_error = exc
            return error_response(503, "UNAVAILABLE", f"{TEAM_HEADER}: the team cannot be checked now; try again")
        request.stevedore_caller, request.stevedore_team = acting, team
        return None

    def require_teams(self, request, caller):
        """ValidationError (400) naming the header or parameter when a team the request picks does not exist (an admin
        or operator may pick any name: a team that is not must not show an empty world, nor get objects).
        The caller's own team is not asked about (a team with principals' live tokens is not deleted), nor
        a ``?team=`` filter of a record that outlives teams (``access.HISTORY_FILTERS``)."""
        for value, field in access.teams_to_check(request, self.method, self.url):
            if value != caller.team and not self.tokens.team_exists(value, self):
                raise ValidationError(f"no team {value!r} (GET /team/ lists them)", field)

    def response_from_result(self, result):
        if isinstance(result, Response):
            return result
        status, headers, payload = 200, None, result
        if isinstance(result, tuple):
            if len(result) == 3:
                status, headers, payload = result
            else:
                status, payload = result
        return json_response(payload, status=status, headers=headers)

    def response_from_exception(self, exc):
        for error_type, status in ERROR_STATUS.items():
            if isinstance(exc, error_type):
                response = error_response(status, exc.code, str(exc))
                if getattr(exc, "retry_after", None) is not None:
                    response.headers["Retry-After"] = str(int(exc.retry_after))
                return response
        if isinstance(exc, StevedoreError):
            return error_response(500, exc.code, str(exc))
        if isinstance(exc, RemoteError) and exc.exc_type in DATABASE_AWAY:
            log.warning("a service could not use its database: %s", printable(first_line(exc), 300))
            return error_response(503, "UNAVAILABLE", "database: not available at the moment; try again")
        if not isinstance(exc, RemoteError) and is_transient(exc):  # the gateway's own link: RabbitMQ
            log.warning("RabbitMQ could not be reached: %s", printable(first_line(exc), 300))
            return error_response(503, "UNAVAILABLE", "broker: not reachable at the moment; try again")
        if isinstance(exc, RemoteError):
            log.error("a service failed: %s", exc)
        else:
            log.exception("unexpected error in the gateway", exc_info=exc)
        return error_response(500, "INTERNAL_ERROR", "the server failed; the error is logged")


api = JsonHttp.decorator
