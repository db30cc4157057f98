"""The scheduler's sweep goes on past an item it cannot fold (shared.handlers.swept): one bad row must not
hold back the lost leases, cancels and end notices behind it, pass after pass."""
from types import SimpleNamespace

import pytest
from sqlalchemy import exc as sa_exc

from services.scheduler import service
from services.scheduler.service import SchedulerService
from shared.handlers import swept


class Session:
    def __init__(self):
        self.rollbacks = 0

    def rollback(self):
        self.rollbacks += 1


def test_a_failing_item_is_rolled_back_and_logged_and_the_pass_goes_on(caplog):
    session, done = Session(), []

    def step(item):
        if item == "bad":
            raise ValueError("cannot fold\nsecond line")
        done.append(item)

    assert [swept(session, "the thing", item, step, item) for item in ["a", "bad", "b"]] == [True, False, True]
    assert done == ["a", "b"] and session.rollbacks == 1
    assert "sweep: the thing bad failed, the pass goes on without it: ValueError: cannot fold" in caplog.text
    assert "second line" not in caplog.text


@pytest.mark.parametrize("error", [
    sa_exc.OperationalError("SELECT 1", {}, Exception("server closed the connection")),
    ConnectionResetError("broker went away"),
])
def test_a_transient_failure_ends_the_pass(error):
    session = Session()

    def step():
        raise error

    with pytest.raises(type(error)):
        swept(session, "the thing", 1, step)
    assert session.rollbacks == 0


def test_the_sweep_finishes_every_lost_lease_cancel_and_notice_past_one_that_fails(monkeypatch):
    session, finished, cancels, notified = Session(), [], [], []
    monkeypatch.setattr(service.ex, "unfinished_fan_outs", lambda s, older_than: [])
    monkeypatch.setattr(service.ex, "expired_leases", lambda s: [(1, 1, "r1"), (2, 1, "r1"), (3, 1, "r2")])
    monkeypatch.setattr(service.ex, "sized_active_results", lambda s: [])
    monkeypatch.setattr(service.ex, "unfinished_cancels", lambda s: ["c1", "c2"])
    monkeypatch.setattr(service.ex, "unnotified_finished", lambda s: [SimpleNamespace(id="n1"), SimpleNamespace(id="n2")])

    def finish(report):
        if report["detail_id"] == 2:
            raise KeyError("a row the fold cannot read")
        finished.append(report["detail_id"])

    def finish_cancel(result_id):
        if result_id == "c1":
            raise RuntimeError("bug")
        cancels.append(result_id)

    def notify(result):
        if result.id == "n1":
            raise TypeError("not serialisable")
        notified.append(result.id)

    scheduler = SimpleNamespace(
        db=SimpleNamespace(session=session), backbone=SimpleNamespace(trusted_for=lambda lease: True),
        _lease=lambda: 30, _finish=finish, _sweep_fleet=lambda: None, _finish_cancel=finish_cancel,
        finish_stops=lambda: None, _notify_finished=notify)
    SchedulerService.sweep(scheduler)
    assert finished == [1, 3] and cancels == ["c2"] and notified == ["n2"]
    assert session.rollbacks == 3
