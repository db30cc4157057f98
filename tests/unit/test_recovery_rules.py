"""The small rules fault recovery rests on, without the backbone."""
from types import SimpleNamespace

import pytest
from sqlalchemy.exc import IntegrityError, OperationalError

from services.scheduler import recovery
from services.scheduler.executions import reports
from shared.errors import Unavailable, ValidationError
from shared.handlers import is_transient


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.fixture
def clock(monkeypatch):
    fake = Clock()
    monkeypatch.setattr(recovery.time, "monotonic", fake)
    return fake


def probe_for(backbone, clock, seconds, step=1.0):
    for _ in range(int(seconds / step)):
        backbone.probe_received({"instance": backbone.instance})
        clock.now += step
    backbone.probe_received({"instance": backbone.instance})


def test_no_lease_is_expired_before_the_broker_has_answered_for_a_full_lease(clock):
    backbone = recovery.Backbone(probe_interval=1)
    assert not backbone.trusted_for(6)
    probe_for(backbone, clock, 5)
    assert not backbone.trusted_for(6)
    probe_for(backbone, clock, 2)
    assert backbone.trusted_for(6)


def test_a_gap_in_the_probes_means_the_broker_was_away(clock):
    backbone = recovery.Backbone(probe_interval=1)
    probe_for(backbone, clock, 10)
    assert backbone.trusted_for(6)
    clock.now += 8                       # no probe came back for 8 s
    assert not backbone.trusted_for(6)
    probe_for(backbone, clock, 5)
    assert not backbone.trusted_for(6)   # back for 5 s only
    probe_for(backbone, clock, 2)
    assert backbone.trusted_for(6)


def test_a_probe_of_another_scheduler_proves_nothing_about_ours(clock):
    backbone = recovery.Backbone(probe_interval=1)
    for _ in range(10):
        backbone.probe_received({"instance": "someone-else"})
        clock.now += 1
    assert not backbone.trusted_for(6)


def test_a_transient_failure_suspends_lease_expiry_for_a_full_lease(clock):
    backbone = recovery.Backbone(probe_interval=1)
    probe_for(backbone, clock, 10)
    backbone.suspect("the database does not answer")
    probe_for(backbone, clock, 5)
    assert not backbone.trusted_for(6)
    probe_for(backbone, clock, 1)
    assert backbone.trusted_for(6)


def test_transient_errors_are_outages_and_others_are_not():
    assert is_transient(OperationalError("SELECT 1", {}, Exception("server closed the connection")))
    assert is_transient(ConnectionRefusedError(111, "ECONNREFUSED"))
    assert is_transient(Unavailable("scheduler.heartbeat did not answer within 5s", "rpc"))
    assert not is_transient(IntegrityError("INSERT", {}, Exception("duplicate key")))
    assert not is_transient(ValidationError("must be an integer", "times"))
    assert not is_transient(KeyError("detail_id"))


def database_clock():
    return 1000.0


def detail(runner="r1", lease_expires_at=None):
    return SimpleNamespace(runner=runner, lease_expires_at=lease_expires_at)


def test_a_report_from_a_runner_that_no_longer_holds_the_detail_is_stale():
    report = {"detail_id": "d", "attempt": 1, "runner": "r1"}
    assert not reports._stale(detail("r1"), report, database_clock)
    # folded and put back in the queue for a retry: held by nobody
    assert reports._stale(detail(None), report, database_clock)
    assert reports._stale(detail("r2"), report, database_clock)
    # reports that name no runner are judged as before
    assert not reports._stale(detail(None), {"detail_id": "d", "attempt": 1}, database_clock)


def test_a_runner_is_not_declared_lost_once_its_lease_was_renewed():
    lost = {"detail_id": "d", "attempt": 1, "runner": "r1", "lease_expired": True}
    # judged by the database's clock (``database_clock``), not this host's
    assert not reports._stale(detail("r1", lease_expires_at=1000.0 - 1), lost, database_clock)
    assert reports._stale(detail("r1", lease_expires_at=1000.0 + 30), lost, database_clock)
