"""/team/ and /team/{name}/ in the OpenAPI description (stevedore_jobs/contract/teams.py), and the 429 of
a team's queue quota on the routes that make a run."""
from stevedore_jobs.contract import teams as tm
from stevedore_jobs.contract.openapi import (
    LINK, array, conflict, error, location, not_found, ok, operation, query_parameters, ref)

MODELS = ((tm.NewTeam, "validation"), (tm.TeamChange, "validation"), (tm.Team, "serialization"))

FORBIDDEN = {"403": error("the caller's role may not do this (only an admin manages teams), or a cross-site "
                          "request with the sign-in cookie")}

# what a RUN (and a rerun, a schedule's run now) is answered over its team's max_queued
OVER_QUOTA = {"429": error("the team's `max_queued` would be passed (TOO_MANY_REQUESTS: the message names the "
                           "quota; try again after Retry-After), or this client's request rate or its "
                           "address's failed authentications are over the gateway's limits (the message names "
                           "`rate` or `authorization`), or the address has too many connections open",
                           **{"Retry-After": ("integer", "seconds")})}


def admin(op):
    """An operation only an admin may do: its 403 says so (after operation()'s cross-site 403)."""
    op["responses"].update(FORBIDDEN)
    return op


def team_paths():
    name = [{"name": "name", "in": "path", "required": True,
             "schema": {"type": "string", "pattern": tm.TEAM_PATTERN, "maxLength": tm.TEAM_MAX}}]
    return {
        "/team/": {
            "get": operation("the teams the caller's role covers, by name, with their running and queued "
                             "executions", ok("a page of teams", array("Team"), **LINK),
                             query_parameters(tm.TeamListQuery)),
            "post": admin(operation("create a team (admin)",
                                    {**ok("the team", ref("Team"), "201", **location("team")),
                                     **conflict("a team of that name exists")},
                                    request=ref("NewTeam"), changes=True))},
        "/team/{name}/": {
            "parameters": name,
            "get": operation("the team, with its running and queued executions",
                             {**ok("the team", ref("Team")), **not_found("team")}),
            "patch": admin(operation("change a team's weight and quotas (admin; fields not sent stay, a quota "
                                     "sent null is lifted)", {**ok("the team", ref("Team")), **not_found("team")},
                                     request=ref("TeamChange"), changes=True)),
            "delete": admin(operation("delete a team that owns nothing (admin)",
                                      {"204": {"description": "deleted"}, **not_found("team"),
                                       **conflict("the team still has tasks, runs or schedules, or is `default`")},
                                      changes=True))},
    }


def quota_answers(paths):
    """``paths`` with the 429 of the queue quota on the routes that make a run (RUN, RERUN_FAILED, run now)."""
    for path in ("/task/{task_id}/", "/result/{result_id}/", "/schedule/{schedule_id}/"):
        paths[path]["post"]["responses"].update(OVER_QUOTA)
    return paths
