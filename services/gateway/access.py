"""Who may do what at the gateway: one table, every route the gateway serves -> the permission it needs.

Roles (shared/principals.py) and what each may:

=========  ====  =======  ======  =====  =====  =====
role       read  control  submit  fleet  audit  admin
=========  ====  =======  ======  =====  =====  =====
admin      yes   yes      yes     yes    yes    yes
operator   yes   yes      no      yes    yes    no
member     yes   yes      yes     no     no     no
viewer     yes   no       no      no     no     no
=========  ====  =======  ======  =====  =====  =====

``read``: GETs of tasks, runs, executions, logs, schedules;
``control``: cancel, change (PATCH) and delete runs and executions; ``submit``: register, import and
delete tasks, RUN, RERUN_FAILED, and schedules; ``fleet``: the runners and the cluster-wide /metrics;
``audit``: the audit log; ``admin``: tokens and teams.  A refusal is 403 FORBIDDEN naming the role's limit.

Which team's things a caller reaches is not decided here but in the services' queries (the ``caller``
kwarg of their RPCs: another team's thing is 404, lists hold only covered teams').  What is decided
here is the team a request acts for: an admin or operator picks one with ``X-Stevedore-Team`` (or,
on a GET, ``?team=``); a member or viewer always acts for its own, and naming another is 403.

Every entrypoint of the gateway must be in ``ROUTES``: ``route_permission`` refuses to start a gateway
with a route left out, and tests/e2e/test_access.py walks them all with a token of each role.
"""
import re
from dataclasses import replace

from shared.errors import Forbidden, ValidationError
from stevedore_jobs.contract.checks import TEAM_PATTERN
from stevedore_jobs.contract.principals import TEAM_HEADER

PUBLIC, READ, CONTROL, SUBMIT, FLEET, AUDIT, ADMIN = "public", "read", "control", "submit", "fleet", "audit", "admin"

ALLOWED = {
    READ: frozenset({"admin", "operator", "member", "viewer"}),
    CONTROL: frozenset({"admin", "operator", "member"}),
    SUBMIT: frozenset({"admin", "member"}),
    FLEET: frozenset({"admin", "operator"}),
    AUDIT: frozenset({"admin", "operator"}),
    ADMIN: frozenset({"admin"}),
}

# what a role may not do, as a refusal says it
LIMITS = {
    "operator": "an operator reads, cancels, changes and deletes runs and sees the runners; registering or "
                "importing tasks, running them and schedules are not in its role",
    "member": "a member works on its own team's tasks, runs and schedules; the runners, the cluster-wide "
              "metrics and tokens are not in its role",
    "viewer": "a viewer only reads its own team's tasks, runs and schedules",
}

TASK, RESULT = "/task/<string:task_id>/", "/result/<string:result_id>/"
DETAIL = RESULT + "detail/<string:detail_id>/"
SCHEDULE = "/schedule/<string:schedule_id>/"
TES = "/ga4gh/tes/v1"

# (method, the route as its @api declares it) -> permission; a dict: per ``operation`` of the body
ROUTES = {
    ("GET", "/health/"): PUBLIC,
    ("GET", "/openapi.json"): PUBLIC,
    ("GET", "/metrics"): FLEET,               # public when METRICS_PUBLIC is on
    ("GET", "/task/"): READ,
    ("POST", "/task/"): SUBMIT,
    ("GET", TASK): READ,
    ("POST", TASK): SUBMIT,                   # RUN, IMPORT
    ("DELETE", TASK): SUBMIT,
    ("GET", "/result/"): READ,
    ("GET", RESULT): READ,
    ("POST", RESULT): {"CANCEL": CONTROL, "RERUN_FAILED": SUBMIT},
    ("PATCH", RESULT): CONTROL,
    ("DELETE", RESULT): CONTROL,
    ("GET", RESULT + "detail/"): READ,
    ("GET", DETAIL): READ,
    ("POST", DETAIL): CONTROL,                # CANCEL
    ("GET", DETAIL + "logs/"): READ,
    ("GET", DETAIL + "logs/<any(stdout, stderr):stream>/"): READ,
    ("GET", "/schedule/"): READ,
    ("POST", "/schedule/"): SUBMIT,
    ("GET", SCHEDULE): READ,
    ("PATCH", SCHEDULE): SUBMIT,
    ("POST", SCHEDULE): SUBMIT,               # RUN now
    ("DELETE", SCHEDULE): SUBMIT,
    ("GET", "/runner/"): FLEET,
    ("GET", "/token/"): ADMIN,
    ("POST", "/token/"): ADMIN,
    ("DELETE", "/token/<string:token_id>/"): ADMIN,
    ("GET", "/whoami/"): READ,
    # secrets: names of the caller's team listed by any role, changed by admin and member (services/gateway/secrets.py)
    ("GET", "/secret/"): READ,
    ("GET", "/secret/<string:name>/"): READ,
    ("PUT", "/secret/<string:name>/"): SUBMIT,
    ("DELETE", "/secret/<string:name>/"): SUBMIT,
    # the audit log: admins and operators (services/gateway/audit.py)
    ("GET", "/audit/"): AUDIT,
    # teams: read as any list (the covered ones), changed by admins (services/gateway/teams.py)
    ("GET", "/team/"): READ,
    ("GET", "/team/<string:name>/"): READ,
    ("POST", "/team/"): ADMIN,
    ("PATCH", "/team/<string:name>/"): ADMIN,
    ("DELETE", "/team/<string:name>/"): ADMIN,
    # GA4GH TES (services/gateway/tes.py): a TES task is a run, so as a run's routes
    ("GET", TES + "/service-info"): READ,
    ("GET", TES + "/openapi.json"): PUBLIC,
    ("POST", TES + "/tasks"): SUBMIT,
    ("GET", TES + "/tasks"): READ,
    ("GET", TES + "/tasks/<string:task_id>"): READ,
    ("POST", TES + "/tasks/<string:task_id>:cancel"): CONTROL,
    # the web UI: pages and assets carry no data (the API calls they make are checked as any)
    ("GET", "/"): PUBLIC,
    ("GET", "/ui/"): PUBLIC,
    ("GET", "/ui/tasks"): PUBLIC,
    ("GET", "/ui/tasks/<string:task_id>"): PUBLIC,
    ("GET", "/ui/results"): PUBLIC,
    ("GET", "/ui/results/<string:result_id>"): PUBLIC,
    ("GET", "/ui/results/<string:result_id>/executions/<string:detail_id>"): PUBLIC,
    ("GET", "/ui/schedules"): PUBLIC,
    ("GET", "/ui/schedules/<string:schedule_id>"): PUBLIC,
    ("GET", "/ui/runners"): PUBLIC,
    ("GET", "/ui/signin"): PUBLIC,
    ("POST", "/ui/signin"): PUBLIC,
    ("POST", "/ui/signout"): PUBLIC,
    ("GET", "/ui/<path:rest>"): PUBLIC,
    ("GET", "/static/<string:name>"): PUBLIC,
}


# the routes whose ``?team=`` filters a record kept after its team is gone (a deleted team's audit rows, its
# principals' revoked tokens): a team that no longer exists is a filter like any, not checked to exist (an
# X-Stevedore-Team header still is)
HISTORY_FILTERS = frozenset({("GET", "/audit/"), ("GET", "/token/")})


class Uncovered(RuntimeError):
    """A gateway entrypoint with no entry in ``ROUTES``: the gateway does not start."""


def permission(method, url):
    """The permission route (``method``, ``url`` as its @api declares it) needs; Uncovered if none."""
    try:
        return ROUTES[(method, url)]
    except KeyError:
        raise Uncovered(f"{method} {url} has no entry in services/gateway/access.py ROUTES; add one "
                        "(the permission it needs), and to tests/e2e/test_access.py's table") from None


def shown(url):
    """A route as the docs write it: ``/task/{task_id}/``."""
    return re.sub(r"<(?:[^:>]*:)?([^>]+)>", r"{\1}", url)


def allows(role, needed):
    return needed == PUBLIC or role in ALLOWED[needed]


def refusal(caller, needed, what):
    """None when ``caller``'s role allows ``needed``, else the Forbidden naming the role's limit."""
    if allows(caller.role, needed):
        return None
    limit = LIMITS.get(caller.role, f"the role {caller.role!r} does not allow it")
    return Forbidden(f"{caller.role} may not {what}: {limit}", "role")


def check_operation(caller, method, url, operation):
    """For a route whose permission depends on the body's ``operation``: raise Forbidden if not allowed."""
    needed = permission(method, url)
    if isinstance(needed, dict):
        refused = refusal(caller, needed[operation], f"{operation} here")
        if refused is not None:
            raise refused


def route_permission(method, url):
    """The least permission of a route (its operations' least for a route that depends on them)."""
    needed = permission(method, url)
    if isinstance(needed, dict):
        order = (READ, CONTROL, SUBMIT, FLEET, AUDIT, ADMIN)
        return min(needed.values(), key=lambda p: len(order) - len(ALLOWED[p]))
    return needed


_TEAM = re.compile(TEAM_PATTERN[1:-1])


def picked_team(request):
    """The team a request names: its X-Stevedore-Team header, else (a GET's) ``?team=``; or None.
    400 naming the header or parameter for a value that is not a team's name."""
    picks = []
    header = request.headers.get(TEAM_HEADER)
    if header is not None:
        picks.append((header.strip(), TEAM_HEADER))
    if request.method in ("GET", "HEAD") and "team" in request.args:
        picks.append((request.args.get("team"), "team"))
    for value, field in picks:
        if not _TEAM.fullmatch(value or ""):
            raise ValidationError("must be a team's name: 1 to 63 lower-case letters, digits and '-', "
                                  "starting and ending with a letter or digit", field)
    return picks


def teams_to_check(request, method, url):
    """The (team, field) picks of a request on route (``method``, ``url``) that must name an existing team."""
    history = (method, url) in HISTORY_FILTERS
    return [(value, field) for value, field in picked_team(request) if not (history and field == "team")]


def acting(caller, request):
    """``caller`` acting for the team the request picks (and that team, or None if it picks none).

    An admin or operator may pick any team; a member or viewer only its own (another: Forbidden).
    """
    picks = picked_team(request)
    if not picks:
        return caller, None
    for value, field in picks:
        if not caller.all_teams and value != caller.team:
            raise Forbidden(f"a {caller.role} acts for its own team ({caller.team}) only", field)
    team = picks[0][0]
    return replace(caller, team=team), team
