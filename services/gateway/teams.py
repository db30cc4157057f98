"""The gateway's routes for teams (/team/): a mixin of ``GatewayService``.

The scheduler keeps the teams (services/scheduler/teams.py) and says who may do what; a team's DELETE
first asks the registry how many tasks, and principals with live tokens, the team has (the two services
never call each other).
"""
from werkzeug.wrappers import Response

from services.gateway.auth import caller_of
from services.gateway.http import api
from services.gateway.inputs import json_body, listing
from shared import validation
from stevedore_jobs.contract import teams as contract


class TeamRoutes:
    @api("GET", "/team/")
    def list_teams(self, request):
        return listing(request, contract.TeamListQuery, self.scheduler.list_teams, "name")  # listing passes caller

    @api("POST", "/team/")
    def create_team(self, request):
        body = json_body(request)
        validation.parse(contract.NewTeam, body)  # its shape; the scheduler checks it again, and the role
        team = self.scheduler.create_team(body, caller=caller_of(request).as_dict())
        return 201, {"Location": f"/team/{team['name']}/"}, team

    @api("GET", "/team/<string:name>/")
    def get_team(self, request, name):
        return self.scheduler.get_team(name, caller=caller_of(request).as_dict())

    @api("PATCH", "/team/<string:name>/")
    def update_team(self, request, name):
        body = json_body(request)
        validation.parse(contract.TeamChange, body)
        return self.scheduler.update_team(name, body, caller=caller_of(request).as_dict())

    @api("DELETE", "/team/<string:name>/")
    def delete_team(self, request, name):
        caller = caller_of(request).as_dict()
        self.scheduler.get_team(name, caller=caller)  # 404 for no such team, before asking the registry
        tasks = self.registry.count_team_tasks(name)
        principals = self.registry.count_team_principals(name)
        self.scheduler.delete_team(name, tasks, principals, caller=caller)
        return Response(status=204)
