"""The web UI: HTML pages and their assets, served by the gateway beside the API.

Each page is a small HTML shell from ``ui/templates/``; ``ui/static/app.js``
fills it from the JSON API in the browser.  The API stays the only way to the
data, so its rules (validation, auth) hold for the UI as for any client, and
the pages themselves carry nothing secret: they are public, the API calls they
make are not.  Signing in with an API token starts a session whose secret (never
the token) goes in an HttpOnly cookie that the gateway accepts in place of the
Authorization header while the session lives (services/gateway/sessions.py).

Paths: ``/`` (to the task list), ``/ui/...`` (pages), ``/static/...`` (assets),
none of which clash with the API's ``/task/``, ``/result/`` and ``/health/``.
No build step and no CDN: every byte the browser loads comes from ``ui/``.
"""
import functools
import hashlib
import html
import mimetypes
import os
from string import Template
from urllib.parse import quote

from nameko.events import BROADCAST, event_handler
from nameko.exceptions import RemoteError
from werkzeug.utils import redirect
from werkzeug.wrappers import Response

from services.gateway.auth import cross_site
from services.gateway.http import api
from services.gateway.sessions import COOKIE, LEGACY_COOKIE, Sessions
from shared import events
from shared.errors import StevedoreError

UI_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ui")
HOME = "/ui/tasks"
# Pages without ids, served by the catch-all /ui/<path> route (so the one table of routes,
# services/gateway/access.py, needs no entry per page): who may do what (issue 18).
NAMED_PAGES = {"tokens": "Tokens", "secrets": "Secrets", "audit": "Audit log", "teams": "Teams"}
# not left to the machine's mime.types
MIMETYPES = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml", ".png": "image/png"}

# Pages may load only what the gateway serves: no CDN, no inline script.
SECURITY_HEADERS = {
    "Content-Security-Policy": ("default-src 'self'; img-src 'self' data:; object-src 'none'; "
                                "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


class Assets:
    """The layout, the pages' bodies and the static files, read once; each static file with its hash."""

    def __init__(self, root=UI_DIR):
        self.bodies = {}
        for name in os.listdir(os.path.join(root, "templates")):
            stem, ext = os.path.splitext(name)
            if ext == ".html":
                with open(os.path.join(root, "templates", name), encoding="utf-8") as fh:
                    self.bodies[stem] = fh.read()
        self.layout = Template(self.bodies.pop("layout"))
        self.static = {}
        for name in os.listdir(os.path.join(root, "static")):
            with open(os.path.join(root, "static", name), "rb") as fh:
                body = fh.read()
            mimetype = (MIMETYPES.get(os.path.splitext(name)[1]) or mimetypes.guess_type(name)[0]
                        or "application/octet-stream")
            self.static[name] = (body, hashlib.sha256(body).hexdigest()[:16], mimetype)

    def url(self, name):
        """The versioned URL of a static file (cached for a year by the browser)."""
        return f"/static/{name}?v={self.static[name][1]}"

    def page(self, template, title, signed_in, data=None):
        """A whole page: the body of ``template`` in the layout; ``data`` goes to <body data-*>."""
        attrs = "".join(f' data-{key.replace("_", "-")}="{html.escape(str(value))}"'
                        for key, value in (data or {}).items())
        account = ('<form class="signout" method="post" action="/ui/signout">'
                   '<button type="submit" class="link">Sign out</button></form>') if signed_in else ""
        return self.layout.substitute(
            title=html.escape(title), page=template, attrs=attrs, account=account,
            css=self.url("app.css"), js=self.url("app.js"), icon=self.url("favicon.svg"),
            schedules_js=self.url("schedules.js"), runners_js=self.url("runners.js"),
            people_js=self.url("people.js"),
            content=self.bodies[template],
        )


@functools.lru_cache(maxsize=1)
def assets():
    return Assets()


def html_response(body, status=200):
    return Response(body, status=status, mimetype="text/html",
                    headers={"Cache-Control": "no-cache", **SECURITY_HEADERS})


def drop_cookie(request, response, name):
    """Tell the browser to forget cookie ``name`` if it sent one."""
    if name in request.cookies:
        response.delete_cookie(name, path="/", httponly=True, samesite="Strict")


def safe_next(target):
    """A local path to go back to after signing in; anything else goes home."""
    if isinstance(target, str) and target.startswith("/") and not target.startswith("//") \
            and "\\" not in target and not any(ord(ch) < 32 for ch in target):
        return target
    return HOME


def client(request):
    """The client's address as the gateway saw it (a trusted proxy's word), for the audit log."""
    return request.environ.get("stevedore_jobs.client")


class UiRoutes:
    """The UI's entrypoints, mixed into the gateway service."""

    sessions = Sessions()

    def _page(self, request, template, title, status=200, **data):
        signed_in = bool(request.cookies.get(COOKIE))
        response = html_response(assets().page(template, title, signed_in, data), status)
        drop_cookie(request, response, LEGACY_COOKIE)  # a raw API token, kept there before sessions
        return response

    @api("GET", "/", public=True)
    @api("GET", "/ui/", public=True)
    def ui_home(self, request):
        return redirect(HOME, code=302)

    @api("GET", "/ui/tasks", public=True)
    def ui_tasks(self, request):
        return self._page(request, "tasks", "Tasks")

    @api("GET", "/ui/tasks/<string:task_id>", public=True)
    def ui_task(self, request, task_id):
        return self._page(request, "task", "Task", task_id=task_id)

    @api("GET", "/ui/results", public=True)
    def ui_results(self, request):
        return self._page(request, "results", "Results")

    @api("GET", "/ui/results/<string:result_id>", public=True)
    def ui_result(self, request, result_id):
        return self._page(request, "result", "Result", result_id=result_id)

    @api("GET", "/ui/results/<string:result_id>/executions/<string:detail_id>", public=True)
    def ui_execution(self, request, result_id, detail_id):
        return self._page(request, "execution", "Execution", result_id=result_id, detail_id=detail_id)

    @api("GET", "/ui/schedules", public=True)
    def ui_schedules(self, request):
        return self._page(request, "schedules", "Schedules")

    @api("GET", "/ui/schedules/<string:schedule_id>", public=True)
    def ui_schedule(self, request, schedule_id):
        return self._page(request, "schedule", "Schedule", schedule_id=schedule_id)

    @api("GET", "/ui/runners", public=True)
    def ui_runners(self, request):
        return self._page(request, "runners", "Runners")

    @api("GET", "/ui/signin", public=True)
    def ui_signin(self, request):
        return self._page(request, "signin", "Sign in", next=safe_next(request.args.get("next")))

    @api("POST", "/ui/signin", public=True, signs_in=True)
    def ui_signin_submit(self, request):
        """Start a session for an API token (the page's script checked the token first); its secret
        goes in the cookie."""
        if cross_site(request):
            return html_response("Cross-site sign-in refused.", status=403)
        target = safe_next(request.form.get("next"))
        token = (request.form.get("token") or "").strip()
        if not token:
            return redirect(f"/ui/signin?next={quote(target)}", code=303)
        auth_required = self.settings.auth
        response = redirect(target, code=303)
        if auth_required:
            secret = self.sessions.sign_in(token, client(request))
            if secret is None:
                return self._page(request, "signin", "Sign in", status=401, next=target,
                                  error="the gateway does not accept this token")
            response.set_cookie(COOKIE, secret, max_age=self.sessions.settings.ui_session_seconds, path="/",
                                httponly=True, samesite="Strict",
                                secure=self.sessions.cookie_secure(request.environ))
        drop_cookie(request, response, LEGACY_COOKIE)
        return response

    @api("POST", "/ui/signout", public=True)
    def ui_signout(self, request):
        """Revoke the session and drop its cookie (kept, with a 503, if the session could not be revoked)."""
        if cross_site(request):
            return html_response("Cross-site sign-out refused.", status=403)
        secret = request.cookies.get(COOKIE)
        if secret:
            try:
                self.sessions.sign_out(secret, client(request))
            except (StevedoreError, RemoteError):  # the registry did not answer, or failed
                return html_response("Sign-out failed: the session could not be ended now, so you are "
                                     "still signed in. Go back and try again.", status=503)
        response = redirect("/ui/signin", code=303)
        drop_cookie(request, response, COOKIE)
        drop_cookie(request, response, LEGACY_COOKIE)
        return response

    # every gateway process has a queue of its own for this event (BROADCAST)
    @event_handler(events.REGISTRY, events.SESSION_ENDED, handler_type=BROADCAST, reliable_delivery=False)
    def on_session_ended(self, payload):
        """A sign-out on any gateway: this process refuses the session (and ends its streams) at once."""
        if isinstance(payload, dict) and isinstance(payload.get("secret_hash"), str):
            self.sessions.forget(payload["secret_hash"])

    @api("GET", "/ui/<path:rest>", public=True)
    def ui_not_found(self, request, rest):
        if rest.endswith("/"):  # /ui/tasks/ -> /ui/tasks
            return redirect("/ui/" + rest.rstrip("/"), code=301)
        if rest in NAMED_PAGES:
            return self._page(request, rest, NAMED_PAGES[rest])
        return self._page(request, "notfound", "Not found", status=404)

    @api("GET", "/static/<string:name>", public=True)
    def ui_static(self, request, name):
        found = assets().static.get(name)
        if found is None:
            return Response("Not found.", status=404, mimetype="text/plain")
        body, digest, mimetype = found
        cache = ("public, max-age=31536000, immutable" if request.args.get("v") == digest
                 else "no-cache")
        response = Response(body, mimetype=mimetype,
                            headers={"Cache-Control": cache, "X-Content-Type-Options": "nosniff"})
        response.set_etag(digest)
        return response.make_conditional(request)
