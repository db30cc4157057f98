"""Who calls a service (shared/principals.py, issue 18): a call naming no caller is refused, never taken for
an admin; every RPC that a role or a team limits (it takes a ``caller``) refuses it before any worker runs."""
import inspect
from types import SimpleNamespace

import pytest

from services.registry.service import RegistryService
from services.scheduler.service import SchedulerService
from shared import audit
from shared.errors import Forbidden
from shared.principals import CONFIGURED, SYSTEM, Caller
from shared.rpc import Rpc, names_caller

MEMBER = {"principal": "ci-bot", "role": "member", "team": "ml", "address": "10.0.0.9"}


def test_a_caller_crosses_rpc_as_itself():
    assert Caller.from_dict(MEMBER) == Caller("ci-bot", "member", "ml", "10.0.0.9")
    assert Caller.from_dict(Caller.from_dict(MEMBER).as_dict()).as_dict() == MEMBER
    assert Caller.from_dict(CONFIGURED) is CONFIGURED


def test_no_caller_is_refused_not_taken_for_the_configured_admin():
    with pytest.raises(Forbidden) as refused:
        Caller.from_dict(None)
    assert refused.value.field == "caller" and "names no caller" in refused.value.message


@pytest.mark.parametrize("value, field", [
    ("admin", "caller"), (["admin", "admin", "default"], "caller"), ({}, "caller.principal"),
    ({**MEMBER, "principal": ""}, "caller.principal"), ({**MEMBER, "principal": 7}, "caller.principal"),
    ({**MEMBER, "role": "root"}, "caller.role"), ({**MEMBER, "role": None}, "caller.role"),
    ({**MEMBER, "team": None}, "caller.team"), ({**MEMBER, "address": 5}, "caller.address"),
])
def test_what_is_no_caller_is_refused_naming_the_field(value, field):
    with pytest.raises(Forbidden) as refused:
        Caller.from_dict(value)
    assert refused.value.field == field


def test_the_system_is_one_constant_of_its_own_role_covering_only_its_team():
    assert audit.SYSTEM is SYSTEM
    assert SYSTEM.role == "system" and not SYSTEM.all_teams and not SYSTEM.covers("ml")
    assert Caller.from_dict(SYSTEM.as_dict()) == SYSTEM


def rpcs(service_cls):
    """(name, method) of each @rpc entrypoint of ``service_cls`` whose method takes a ``caller``."""
    found = []
    for name, fn in inspect.getmembers(service_cls, inspect.isfunction):
        entrypoints = getattr(fn, "nameko_entrypoints", ())
        if any(isinstance(e, Rpc) for e in entrypoints) and names_caller(fn):
            found.append((name, fn))
    return found


def entrypoint(service_cls, name):
    rpc = Rpc()
    rpc.container = SimpleNamespace(service_cls=service_cls)
    rpc.method_name = name
    return rpc


def arguments(fn):
    """A value for each positional parameter that has no default (what they are does not matter here)."""
    return [f"x-{p.name}" for p in list(inspect.signature(fn).parameters.values())[1:]
            if p.default is inspect.Parameter.empty and p.kind is p.POSITIONAL_OR_KEYWORD]


LIMITED = [(cls, name, fn) for cls in (RegistryService, SchedulerService) for name, fn in rpcs(cls)]


def test_the_rpcs_a_role_or_team_limits_are_found():
    names = {name for _, name, _ in LIMITED}
    assert {"create_token", "list_tokens", "revoke_token", "create_session", "revoke_session", "create_task",
            "get_task", "task_facts", "run_task", "get_result", "list_results", "cancel_result", "delete_result",
            "put_secret", "list_secrets", "create_team", "delete_team", "list_audit", "list_runners",
            "create_schedule", "create_tes_task"} <= names
    assert not {"claim_execution", "heartbeat", "release_claim", "pull_credentials", "resolve_token",
                "check_session"} & names  # the runners' and the gateway's own questions name no principal


@pytest.mark.parametrize("service_cls, name, fn", LIMITED, ids=[f"{c.name}.{n}" for c, n, _ in LIMITED])
def test_every_limited_rpc_refuses_a_call_naming_no_caller_before_any_worker_runs(service_cls, name, fn):
    rpc = entrypoint(service_cls, name)
    args = arguments(fn)
    with pytest.raises(Forbidden) as refused:
        rpc.check_signature(args, {})
    assert refused.value.field == "caller"
    with pytest.raises(Forbidden):
        rpc.check_signature(args, {"caller": None})
    with pytest.raises(Forbidden):
        rpc.check_signature(args, {"caller": {**MEMBER, "role": "root"}})
    rpc.check_signature(args, {"caller": MEMBER})  # a caller: on to the worker (its own checks)


# defence in depth: the services check the role themselves for principals, tokens, teams, secrets, the audit
# log and the runner list, so a forged call (or a gateway bug) with a lesser caller changes and reads nothing
SHA = "a" * 64
GUARDED = [
    (RegistryService, "create_token", (SHA, {"name": "x", "team": "default", "role": "admin"}), {"admin"}),
    (RegistryService, "list_tokens", (), {"admin"}),
    (RegistryService, "revoke_token", ("t" * 32,), {"admin"}),
    (RegistryService, "team_names", (), {"admin", "operator"}),
    (SchedulerService, "create_team", ({"name": "forged"},), {"admin"}),
    (SchedulerService, "update_team", ("ml", {"weight": 100}), {"admin"}),
    (SchedulerService, "delete_team", ("ml",), {"admin"}),
    (SchedulerService, "put_secret", ("API_KEY", "sealed"), {"admin", "member"}),
    (SchedulerService, "delete_secret", ("API_KEY",), {"admin", "member"}),
    (SchedulerService, "list_audit", (), {"admin", "operator"}),
    (SchedulerService, "list_runners", (), {"admin", "operator"}),
]
REFUSED = [(cls, name, args, role) for cls, name, args, allowed in GUARDED
           for role in ("admin", "operator", "member", "viewer", "system") if role not in allowed]


@pytest.mark.parametrize("service_cls, name, args, role", REFUSED,
                         ids=[f"{c.name}.{n}-{r}" for c, n, _, r in REFUSED])
def test_a_lesser_caller_is_refused_by_the_service_itself_and_touches_nothing(service_cls, name, args, role):
    from nameko.testing.services import worker_factory

    service = worker_factory(service_cls)
    with pytest.raises(Forbidden) as refused:
        getattr(service, name)(*args, caller={**MEMBER, "role": role})
    assert refused.value.field == "role", refused.value
    assert not service.db.session.method_calls  # refused before any read or write
    assert not service.dispatch.called
