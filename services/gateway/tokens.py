"""The gateway's routes for principals' tokens (/token/, admin only) and /whoami/: a mixin of ``GatewayService``.

A token is made here (``secrets.token_urlsafe``), answered once, and only its sha256 goes to the registry
(services/registry/principals.py), so the token itself never crosses the broker nor is stored.  A
revocation is broadcast by the registry (``token_revoked``): every gateway process forgets the token at
once (``on_token_revoked``), and the one that revoked it before it answers.
"""
import secrets

from nameko.events import BROADCAST, event_handler
from nameko.extensions import DependencyProvider
from werkzeug.wrappers import Response

from services.gateway.auth import caller_of
from services.gateway.callers import TokenGate, token_hash
from services.gateway.http import api
from services.gateway.inputs import json_body, listing
from shared import events, validation
from shared.errors import NotFound, ValidationError
from shared.principals import DEFAULT_TEAM
from stevedore_jobs.contract import principals as pr

TOKEN_PREFIX = "stv_"  # so that secret scanners can tell a Stevedore token


class TokenCacheProvider(DependencyProvider):
    """A worker's handle on this gateway process's token cache (the ``TokenGate`` every entrypoint shares)."""

    gate = TokenGate()

    def get_dependency(self, worker_ctx):
        return self.gate.cache


class TokenRoutes:
    token_cache = TokenCacheProvider()

    @api("POST", "/token/")
    def create_token(self, request):
        new = validation.parse(pr.NewToken, json_body(request))
        caller = caller_of(request).as_dict()
        if new.team != DEFAULT_TEAM:  # the team must exist (POST /team/): the scheduler keeps the teams
            try:
                self.scheduler.get_team(new.team, caller=caller)
            except NotFound:
                raise ValidationError(f"no team {new.team!r}; make it first (POST /team/)", "team") from None
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        made = self.registry.create_token(token_hash(token), new.model_dump(), caller=caller)
        return 201, {"Location": f"/token/{made['token_id']}/"}, {**made, "token": token}

    @api("GET", "/token/")
    def list_tokens(self, request):
        return listing(request, pr.TokenListQuery, self.registry.list_tokens, "token_id", "created_at")

    @api("DELETE", "/token/<string:token_id>/")
    def revoke_token(self, request, token_id):
        revoked = self.registry.revoke_token(token_id, caller=caller_of(request).as_dict())
        self.token_cache.forget(revoked["token_id"])  # here at once; the others by the broadcast
        return Response(status=204)

    @api("GET", "/whoami/")
    def whoami(self, request):
        caller = caller_of(request)
        teams = self.registry.team_names(caller=caller.as_dict()) if caller.all_teams else [caller.team]
        return {"principal": caller.principal, "role": caller.role, "team": caller.team,
                "all_teams": caller.all_teams, "teams": teams}

    # every gateway process has a queue of its own for this event (BROADCAST)
    @event_handler(events.REGISTRY, events.TOKEN_REVOKED, handler_type=BROADCAST, reliable_delivery=False)
    def on_token_revoked(self, payload):
        if isinstance(payload, dict) and isinstance(payload.get("token_id"), str):
            self.token_cache.forget(payload["token_id"])
