"""Every route the gateway serves, walked with a token of each role, of another team, and none (issue 18).

The table below is this test's own word on what each route needs, apart from the gateway's
(services/gateway/access.py), and it must name exactly the routes served: those of the served OpenAPI
spec and every other entrypoint of the gateway (the web UI's).  A new route that is not added here fails
``test_the_table_names_every_route_the_gateway_serves``.

The things walked are team ``alpha``'s (made by its member).  For each route and caller the answer must be:
401 without a token; 403 when the role does not allow the route; 404 when the route reaches an ``alpha``
thing and the caller is of another team (``other``: a member of ``beta``); else the route's own answer.
A destructive route that is allowed is given a thing of its own, made for the purpose.
"""
import re
import uuid

import pytest
import requests

from services.gateway.service import GatewayService
from tests.support import Api

KINDS = ("none", "admin", "operator", "member", "viewer", "other")  # other: a member of team beta
PUBLIC, READ, CONTROL, SUBMIT, FLEET, AUDIT, ADMIN = "public", "read", "control", "submit", "fleet", "audit", "admin"
ALLOWED = {
    READ: {"admin", "operator", "member", "viewer", "other"},
    CONTROL: {"admin", "operator", "member", "other"},
    SUBMIT: {"admin", "member", "other"},
    FLEET: {"admin", "operator"},
    AUDIT: {"admin", "operator"},
    ADMIN: {"admin"},
}
# how the route reaches alpha's things: THING (in its path or body: 404 for another team), LIST (never shows
# them to another team), NAMED (a thing named within the team a request acts for, as a secret: an admin or
# operator picks alpha with X-Stevedore-Team, another team's member finds none: 404), NONE
THING, LIST, NAMED, NONE = "thing", "list", "named", "none"
TEAM_HEADER = "X-Stevedore-Team"

TASK, RESULT, SCHEDULE = "/task/{task_id}/", "/result/{result_id}/", "/schedule/{schedule_id}/"
DETAIL = RESULT + "detail/{detail_id}/"
SECRET, TEAM, TES = "/secret/{name}/", "/team/{name}/", "/ga4gh/tes/v1"

# (method, path) -> (permission, reach, answers of an allowed caller, body, a fresh thing for an allowed caller)
EXPECTED = {
    ("get", "/health/"): (PUBLIC, NONE, {200}, None, None),
    ("get", "/openapi.json"): (PUBLIC, NONE, {200}, None, None),
    ("get", "/metrics"): (FLEET, NONE, {200}, None, None),
    ("get", "/task/"): (READ, LIST, {200}, None, None),
    ("post", "/task/"): (SUBMIT, NONE, {201}, "new_task", None),
    ("get", TASK): (READ, THING, {200}, None, None),
    ("post", TASK): (SUBMIT, THING, {202}, {"operation": "RUN", "times": 1}, None),
    ("delete", TASK): (SUBMIT, THING, {204}, None, "task"),
    ("get", "/result/"): (READ, LIST, {200}, None, None),
    ("get", RESULT): (READ, THING, {200}, None, None),
    # the walked result ended COMPLETE: 409 is the answer of a caller let through
    ("post", RESULT): (CONTROL, THING, {409}, {"operation": "CANCEL"}, None),
    ("patch", RESULT): (CONTROL, THING, {409}, {"priority": 3}, None),
    ("delete", RESULT): (CONTROL, THING, {204}, None, "result"),
    ("get", RESULT + "detail/"): (READ, THING, {200}, None, None),
    ("get", DETAIL): (READ, THING, {200}, None, None),
    ("post", DETAIL): (CONTROL, THING, {409}, {"operation": "CANCEL"}, None),
    ("get", DETAIL + "logs/"): (READ, THING, {200}, None, None),
    ("get", DETAIL + "logs/{stream}/"): (READ, THING, {200}, None, None),
    ("get", "/schedule/"): (READ, LIST, {200}, None, None),
    ("post", "/schedule/"): (SUBMIT, THING, {201}, "new_schedule", None),
    ("get", SCHEDULE): (READ, THING, {200}, None, None),
    ("patch", SCHEDULE): (SUBMIT, THING, {200}, {"suspend": True}, None),
    ("post", SCHEDULE): (SUBMIT, THING, {202}, {"operation": "RUN"}, None),
    ("delete", SCHEDULE): (SUBMIT, THING, {204}, None, "schedule"),
    ("get", "/runner/"): (FLEET, NONE, {200}, None, None),
    ("get", "/token/"): (ADMIN, NONE, {200}, None, None),
    ("post", "/token/"): (ADMIN, NONE, {201}, "new_token", None),
    ("delete", "/token/{token_id}/"): (ADMIN, NONE, {204}, None, "token"),
    ("get", "/whoami/"): (READ, NONE, {200}, None, None),
    # secrets: of the team a request acts for; the walked one is alpha's
    ("get", "/secret/"): (READ, LIST, {200}, None, None),
    ("get", SECRET): (READ, NAMED, {200}, None, None),
    # another team's member sets a secret of its own team that has the same name (201)
    ("put", SECRET): (SUBMIT, NONE, {200, 201}, {"value": "walked"}, None),
    ("delete", SECRET): (SUBMIT, NAMED, {204}, None, "secret"),
    ("get", "/audit/"): (AUDIT, NONE, {200}, None, None),
    # teams: the walked one is alpha
    ("get", "/team/"): (READ, LIST, {200}, None, None),
    ("post", "/team/"): (ADMIN, NONE, {201}, "new_team", None),
    ("get", TEAM): (READ, THING, {200}, None, None),
    ("patch", TEAM): (ADMIN, THING, {200}, {"weight": 1}, None),
    ("delete", TEAM): (ADMIN, THING, {204}, None, "team"),
    # GA4GH TES: a TES task is a run of alpha's member; the walked one was cancelled (a cancel is 200 still)
    ("get", TES + "/service-info"): (READ, NONE, {200}, None, None),
    ("get", TES + "/openapi.json"): (PUBLIC, NONE, {200}, None, None),
    ("post", TES + "/tasks"): (SUBMIT, NONE, {200}, "new_tes_task", None),
    ("get", TES + "/tasks"): (READ, LIST, {200}, None, None),
    ("get", TES + "/tasks/{task_id}"): (READ, THING, {200}, None, None),
    ("post", TES + "/tasks/{task_id}:cancel"): (CONTROL, THING, {200}, {}, None),
    # the web UI: pages and assets are public (the API calls they make are the routes above)
    ("get", "/"): (PUBLIC, NONE, {302}, None, None),
    ("get", "/ui/"): (PUBLIC, NONE, {302}, None, None),
    ("get", "/ui/tasks"): (PUBLIC, NONE, {200}, None, None),
    ("get", "/ui/tasks/{task_id}"): (PUBLIC, NONE, {200}, None, None),
    ("get", "/ui/results"): (PUBLIC, NONE, {200}, None, None),
    ("get", "/ui/results/{result_id}"): (PUBLIC, NONE, {200}, None, None),
    ("get", "/ui/results/{result_id}/executions/{detail_id}"): (PUBLIC, NONE, {200}, None, None),
    ("get", "/ui/schedules"): (PUBLIC, NONE, {200}, None, None),
    ("get", "/ui/schedules/{schedule_id}"): (PUBLIC, NONE, {200}, None, None),
    ("get", "/ui/runners"): (PUBLIC, NONE, {200}, None, None),
    ("get", "/ui/signin"): (PUBLIC, NONE, {200}, None, None),
    ("post", "/ui/signin"): (PUBLIC, NONE, {303}, "form", None),
    ("post", "/ui/signout"): (PUBLIC, NONE, {303}, "form", None),
    ("get", "/ui/{rest}"): (PUBLIC, NONE, {404}, None, None),
    ("get", "/static/{name}"): (PUBLIC, NONE, {200}, None, None),
}


def route_of(url):
    """A gateway rule as the spec writes paths: ``/task/<string:task_id>/`` -> ``/task/{task_id}/``."""
    return re.sub(r"<(?:[^:>]*:)?([^>]+)>", r"{\1}", url)


def gateway_routes():
    routes = set()
    for name in dir(GatewayService):
        for entrypoint in getattr(getattr(GatewayService, name), "nameko_entrypoints", ()):
            if hasattr(entrypoint, "url"):  # HTTP, not the event handlers
                routes.add((entrypoint.method.lower(), route_of(entrypoint.url)))
    return routes


class Things:
    """Team alpha's things, and fresh ones for the destructive routes."""

    def __init__(self, system, images):
        self.system, self.images = system, images
        self.member = system.as_("member")
        self.task_id = system.tasks["alpha"]["task_id"]
        self.result_id = self.finished_result()
        self.detail_id = self.member.details(self.result_id)[0]["detail_id"]
        self.schedule_id = self.schedule()
        self.token_id = self.token()
        self.secret_name = self.secret()
        self.team_name = "alpha"
        self.tes_id = self.tes_task()

    def finished_result(self):
        result_id = self.member.run(self.task_id)
        assert self.member.wait_result(result_id)["status"] == "COMPLETE"
        return result_id

    def schedule(self):
        made = self.member.post("/schedule/", self.new_schedule())
        assert made.status_code == 201, made.text
        return made.json()["schedule_id"]

    def token(self):
        made = self.system.api.post("/token/", self.new_token())
        assert made.status_code == 201, made.text
        return made.json()["token_id"]

    def secret(self):
        name = f"walked-{uuid.uuid4().hex[:8]}"
        made = self.member.http.put(f"{self.member.base_url}/secret/{name}/", json={"value": "walked"}, timeout=30)
        assert made.status_code == 201, made.text
        return name

    def team(self):
        made = self.system.api.post("/team/", self.new_team())
        assert made.status_code == 201, made.text
        return made.json()["name"]

    def tes_task(self):
        made = self.member.post("/ga4gh/tes/v1/tasks", self.new_tes_task())
        assert made.status_code == 200, made.text
        tes_id = made.json()["id"]
        cancelled = self.member.post(f"/ga4gh/tes/v1/tasks/{tes_id}:cancel", {})
        assert cancelled.status_code == 200, cancelled.text
        return tes_id

    def task(self):
        return self.member.register(self.images["ok"], name=f"gone-{uuid.uuid4().hex[:8]}")["task_id"]

    def result(self):
        return self.finished_result()

    def new_task(self):
        return {"repository": self.images["ok"], "name": f"new-{uuid.uuid4().hex[:8]}"}

    def new_schedule(self):
        return {"task_id": self.task_id, "cron": "0 0 1 1 *", "run": {"times": 1}, "suspend": True}

    @staticmethod
    def new_team():
        return {"name": f"walked-{uuid.uuid4().hex[:8]}"}

    def new_tes_task(self):
        return {"name": "walked", "executors": [{"image": self.images["ok"], "command": ["true"]}]}

    @staticmethod
    def new_token():
        return {"name": f"walked-{uuid.uuid4().hex[:8]}", "team": "alpha", "role": "viewer"}


@pytest.fixture(scope="module")
def things(teams_system, test_images):
    return Things(teams_system, test_images)


def expected(permission, reach, kind, answers):
    if permission == PUBLIC:
        return answers
    if kind == "none":
        return {401}
    if kind not in ALLOWED[permission]:
        return {403}
    if reach in (THING, NAMED) and kind == "other":
        return {404}
    return answers


def ask(system, things, method, path, kind, permission, reach, answers, body, fresh):
    ids = {"task_id": things.task_id, "result_id": things.result_id, "detail_id": things.detail_id,
           "schedule_id": things.schedule_id, "token_id": things.token_id, "stream": "stdout",
           "name": "app.css", "rest": "nowhere"}
    if path.startswith(TES):
        ids["task_id"] = things.tes_id
    elif path.startswith("/secret/"):
        ids["name"] = things.secret_name
    elif path.startswith("/team/"):
        ids["name"] = things.team_name
    let_through = expected(permission, reach, kind, answers) == answers and permission != PUBLIC
    if fresh and let_through:  # it destroys what it reaches: a thing of its own
        ids["name" if fresh in ("secret", "team") else f"{fresh}_id"] = getattr(things, fresh)()
    url = system.url + path.format(**ids)
    headers = {} if kind == "none" else {"Authorization": f"Bearer {system.tokens[kind]}"}
    if reach == NAMED and kind in ("admin", "operator"):
        headers[TEAM_HEADER] = "alpha"  # they act for alpha to reach its things by name
    if body == "form":
        return requests.request(method, url, data={"token": system.tokens.get(kind, ""), "next": "/ui/tasks"},
                                allow_redirects=False, timeout=30)
    if isinstance(body, str):
        body = getattr(things, body)()
    return requests.request(method, url, json=body, headers=headers, allow_redirects=False, timeout=30)


def test_the_table_names_every_route_the_gateway_serves(teams_system):
    spec = Api(teams_system.url).get("/openapi.json").json()
    in_spec = {(method, path) for path, item in spec["paths"].items() for method in item if method != "parameters"}
    served = gateway_routes()
    assert in_spec <= served, in_spec - served  # every route of the spec is served
    assert set(EXPECTED) == served | in_spec, (served - set(EXPECTED), set(EXPECTED) - served)


@pytest.mark.parametrize("route", sorted(EXPECTED), ids=lambda route: f"{route[0].upper()} {route[1]}")
def test_each_route_answers_each_role_and_team_as_the_table_says(teams_system, things, route):
    permission, reach, answers, body, fresh = EXPECTED[route]
    wrong = []
    for kind in KINDS:
        response = ask(teams_system, things, *route, kind, permission, reach, answers, body, fresh)
        want = expected(permission, reach, kind, answers)
        if response.status_code not in want:
            wrong.append(f"{kind}: {response.status_code} (expected {sorted(want)}) {response.text[:200]}")
        elif response.status_code == 403:
            error = response.json()
            assert error["error"] == "FORBIDDEN" and error["message"].startswith("role: "), error
        elif reach == LIST and response.status_code == 200 and kind == "other":
            items = response.json()
            items = items["tasks"] if isinstance(items, dict) else items  # TES's list
            listed = {item.get("id", item.get("name")) for item in items}
            assert not listed & {things.task_id, things.result_id, things.schedule_id, things.secret_name,
                                 "alpha", things.tes_id}, (kind, route)
    assert not wrong, "\n".join(wrong)


def test_rerun_failed_needs_the_right_to_run_not_only_to_cancel(teams_system, things):
    body = {"operation": "RERUN_FAILED"}
    answers = {kind: teams_system.as_(kind).post(f"/result/{things.result_id}/", body).status_code
               for kind in ("admin", "operator", "member", "viewer", "other")}
    # the run completed: a caller let through is told there is nothing to rerun (409)
    assert answers == {"admin": 409, "operator": 403, "member": 409, "viewer": 403, "other": 404}
