"""The audit log's rules without a database: what an entry keeps, who may read the log, the CLI's times."""
import argparse
from unittest.mock import Mock

import pytest
from nameko.testing.services import worker_factory
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from services.gateway.http import JsonHttp
from services.gateway.service import GatewayService
from services.scheduler import auditing
from shared import audit
from shared.errors import Forbidden
from shared.principals import CONFIGURED, Caller
from shared.settings import GatewaySettings, SchedulerSettings, parse
from stevedore_jobs.cli.audit import when
from stevedore_jobs.contract import AuditListQuery, Invalid, query


def recorded(*args, **kwargs):
    """The values ``audit.record`` inserts, from a mock session."""
    session = Mock()
    audit.record(session, *args, **kwargs)
    [call] = session.execute.call_args_list
    statement = call.args[0]
    assert statement.table.name == "audit_log"
    return {key: value for key, value in statement.compile().params.items()}


def test_an_entry_names_the_callers_principal_role_address_and_the_objects_team():
    caller = Caller("ci-bot", "member", "ml", "10.0.0.7")
    values = recorded(caller.as_dict(), "result.cancel", "result", "r" * 32, team="ml", summary={"task_id": "t"},
                      outcome="RUNNING")
    assert {key: values[key] for key in ("principal", "role", "team", "address", "action", "target_type",
                                         "target_id", "summary", "outcome")} == {
        "principal": "ci-bot", "role": "member", "team": "ml", "address": "10.0.0.7", "action": "result.cancel",
        "target_type": "result", "target_id": "r" * 32, "summary": {"task_id": "t"}, "outcome": "RUNNING"}
    assert len(values["id"]) == 32


def test_no_caller_is_refused_and_the_system_is_its_own_principal():
    with pytest.raises(Forbidden) as refused:
        recorded(None, "task.delete", "task", "t")
    assert refused.value.field == "caller"
    assert recorded(CONFIGURED.as_dict(), "task.delete", "task", "t")["principal"] == CONFIGURED.principal
    values = recorded(audit.SYSTEM, "result.stop", "result", "r")
    assert (values["principal"], values["role"], values["address"], values["team"]) == (
        "system", "system", None, "default")


def test_a_summary_never_keeps_a_key_that_could_hold_a_secret():
    kept = audit.bounded_summary({"name": "app", "password": "p", "API_TOKEN": "t", "env": {"K": "v"},
                                  "params": {"times": 1}, "credentials": "c", "client_secret": "s",
                                  "Authorization": "Bearer x", "nested": {"token": "t", "ok": 1}})
    assert kept == {"name": "app", "nested": {"ok": 1}}


def test_a_summary_is_bounded_in_keys_and_value_sizes_whatever_it_is_given():
    kept = audit.bounded_summary({f"k{i}": "x" * 10000 for i in range(100)})
    assert len(kept) == audit.SUMMARY_KEYS and all(len(v) == audit.VALUE_MAX for v in kept.values())
    deep = audit.bounded_summary({"deep": {"a": {"b": {"c": "x" * 10000}}}, "list": list(range(100))})
    assert isinstance(deep["deep"], str) and len(deep["deep"]) == audit.VALUE_MAX
    assert deep["list"] == list(range(audit.SUMMARY_KEYS))
    values = recorded(Caller("p" * 5000, "admin", "default", "a" * 500), "x.y", "x", "i" * 5000,
                      outcome="o" * 5000)
    assert len(values["principal"]) == 200 and len(values["address"]) == 100
    assert len(values["target_id"]) == 200 and len(values["outcome"]) == 200


def listing_request(caller, query_string=""):
    request = Request(EnvironBuilder(method="GET", path="/audit/", query_string=query_string).get_environ())
    request.stevedore_caller = caller
    return request


@pytest.fixture
def gateway():
    return worker_factory(GatewayService, settings=parse(GatewaySettings, {"RPC_TIMEOUT": 5}))


@pytest.mark.parametrize("role", ["member", "viewer"])
def test_only_admins_and_operators_may_read_the_log_others_get_403(gateway, role):
    with pytest.raises(Forbidden) as refused:
        gateway.list_audit(listing_request(Caller("alice", role, "ml")))
    assert refused.value.field == "role" and not gateway.scheduler.list_audit.called
    response = JsonHttp("GET", "/audit/").response_from_exception(refused.value)
    assert response.status_code == 403 and b'"FORBIDDEN"' in response.get_data()


@pytest.mark.parametrize("role", ["admin", "operator"])
def test_an_admin_or_operator_gets_a_page_with_the_filters_handed_on(gateway, role):
    gateway.scheduler.list_audit.return_value = {"items": [{"audit_id": "a" * 32, "at": 1700000001.25}],
                                                 "more": True}
    status, headers, items = gateway.list_audit(
        listing_request(Caller("op", role, "default"), "limit=1&principal=ci-bot&since=1700000000"))
    assert status == 200 and items == [{"audit_id": "a" * 32, "at": 1700000001.25}]
    assert headers["Link"].startswith("</audit/?") and f"after={'a' * 32}&after_key=1700000001.25" in headers["Link"]
    kwargs = gateway.scheduler.list_audit.call_args.kwargs
    assert kwargs.pop("caller")["role"] == role and kwargs.pop("team", None) is None
    assert kwargs == {"limit": 1, "after": None, "principal": "ci-bot", "since": 1700000000.0, "paged": True}


@pytest.mark.parametrize("args, field", [
    ({"since": "soon"}, "since"), ({"until": "inf"}, "until"), ({"until": "-5"}, "until"),
    ({"action": "drop table"}, "action"), ({"team": "-bad-"}, "team"), ({"target_type": "Result"}, "target_type"),
    ({"principal": "a\x01b"}, "principal"), ({"target_id": "x" * 201}, "target_id"), ({"after": "nope"}, "after"),
    ({"after_key": "-1"}, "after_key"), ({"after": "a" * 32, "after_key": "nan"}, "after_key"),
])
def test_a_bad_filter_is_refused_naming_it(args, field):
    with pytest.raises(Invalid) as refused:
        query(AuditListQuery, args)
    assert refused.value.field == field


def test_the_cli_reads_a_time_ago_a_local_date_or_epoch_seconds():
    assert when("90m", clock=lambda: 10000.0) == 10000.0 - 5400
    assert when("7d", clock=lambda: 1e9) == 1e9 - 7 * 86400
    assert when("1700000000") == 1700000000.0
    assert when("2026-01-31") > 1.7e9
    with pytest.raises(argparse.ArgumentTypeError):
        when("last tuesday")


def test_retention_is_a_setting_of_its_own_365_days_by_default_and_0_keeps_all():
    settings = parse(SchedulerSettings, {})
    assert (settings.audit_retention_days, settings.audit_sweep_interval) == (365, 3600)
    assert parse(SchedulerSettings, {"AUDIT_RETENTION_DAYS": "0"}).audit_retention_days == 0
    service = auditing.AuditMixin()
    service.db, service.settings = Mock(), parse(SchedulerSettings, {"AUDIT_RETENTION_DAYS": "0"})
    service.delete_expired_audit()
    assert not service.db.session.execute.called
    service.settings = parse(SchedulerSettings, {"AUDIT_RETENTION_DAYS": "30"})
    service.db.session.execute.return_value.rowcount = 0
    service.delete_expired_audit()
    assert service.db.session.execute.call_count == 1


def test_a_sweep_pass_is_bounded_and_stops_at_a_short_batch():
    session = Mock()
    session.execute.return_value.rowcount = 5
    assert auditing.expire(session, 1000.0, batch=5, batches=3) == 15
    assert session.execute.call_count == 3 and session.commit.call_count == 3
    session = Mock()
    session.execute.return_value.rowcount = 2
    assert auditing.expire(session, 1000.0, batch=5, batches=3) == 2 and session.execute.call_count == 1
