"""Finished containers removed after their end is reported, off the slot's path (services/runner/remover.py):
the backlog is bounded, drained on stop, and no outcome waits for (or is lost to) a removal."""
from types import SimpleNamespace

import eventlet
from eventlet.event import Event
from nameko.testing.services import worker_factory

from services.runner.engine import Engine
from services.runner.remover import Remover
from services.runner.service import RunnerService
from shared import events


class Blocking:
    """A removal that waits until released; records what it removed, in order."""

    def __init__(self):
        self.gate = Event()
        self.removed = []

    def __call__(self, container_id):
        self.gate.wait()
        self.removed.append(container_id)


def started(remover):
    thread = eventlet.spawn(remover.run)
    eventlet.sleep(0)
    return thread


def test_at_most_the_backlog_waits_and_a_full_one_refuses_so_the_slot_removes_its_own():
    remove = Blocking()
    remover = Remover(remove, backlog=3)
    thread = started(remover)
    assert [remover.offer(f"c{i}") for i in range(5)] == [True, True, True, False, False]
    eventlet.sleep(0.01)
    assert len(remover.pending) == 3  # the one being removed counts
    assert remover.has("c0") and remover.has("c2") and not remover.has("c3")
    remove.gate.send(True)
    assert remover.drain(2.0) == 0
    assert remove.removed == ["c0", "c1", "c2"]
    remover.close()
    thread.wait()


def test_a_backlog_of_zero_takes_nothing_each_slot_removes_its_own_as_before():
    remover = Remover(lambda container_id: None, backlog=0)
    assert not remover.offer("c0")


def test_drain_removes_what_waits_then_takes_no_more():
    removed = []
    remover = Remover(removed.append, backlog=4)
    thread = started(remover)
    for i in range(4):
        assert remover.offer(f"c{i}")
    assert remover.drain(2.0) == 0
    assert removed == ["c0", "c1", "c2", "c3"]
    assert not remover.offer("late")  # after a drain the slots have ended; a late one is removed in line
    remover.close()
    thread.wait()


def test_drain_gives_up_at_its_deadline_and_says_how_many_are_left_for_reconcile():
    remove = Blocking()
    remover = Remover(remove, backlog=4)
    thread = started(remover)
    for i in range(3):
        remover.offer(f"c{i}")
    assert remover.drain(0.2) == 3
    remover.close()
    thread.kill()


def test_a_removal_that_fails_does_not_stop_the_next_ones():
    removed = []

    def remove(container_id):
        if container_id == "bad":
            raise RuntimeError("engine said no")
        removed.append(container_id)

    remover = Remover(remove, backlog=4)
    thread = started(remover)
    for cid in ("bad", "c1", "c2"):
        remover.offer(cid)
    assert remover.drain(2.0) == 0
    assert removed == ["c1", "c2"] and not remover.pending
    remover.close()
    thread.wait()


class FakeApi:
    def __init__(self):
        self.removed = []

    def remove_container(self, container_id, force=False, v=False):
        assert force and v
        self.removed.append(container_id)


def executor(remover):
    api = FakeApi()
    return Engine(SimpleNamespace(api=api), {}, remover=remover), api


def test_an_ended_container_is_set_aside_until_its_end_is_reported_then_handed_to_the_remover():
    remover = Remover(lambda container_id: None, backlog=2)
    engine, api = executor(remover)
    engine._set_aside(SimpleNamespace(id="c1"))
    assert engine.removal_pending("c1") and not remover.has("c1") and api.removed == []
    engine.dispose()
    assert remover.has("c1") and api.removed == [] and engine.finished == []


def test_with_the_backlog_full_dispose_removes_in_line_and_without_a_remover_it_is_removed_at_once():
    remover = Remover(lambda container_id: None, backlog=1)
    assert remover.offer("other")
    engine, api = executor(remover)
    engine._set_aside(SimpleNamespace(id="c1"))
    engine.dispose()
    assert api.removed == ["c1"] and not remover.has("c1")

    plain, api = executor(None)  # TES and the bench's raw side: as before
    plain._set_aside(SimpleNamespace(id="c2"))
    assert api.removed == ["c2"] and plain.finished == []


OUTCOME = {"status": "COMPLETE", "reason": None, "exit_code": 0, "start": 1.0, "end": 2.0,
           "container_id": "c1", "logs": None}
WORK = {"detail_id": "d1", "attempt": 1, "result_id": "r1", "index": 0, "task_id": "t1", "image": "i"}


def service_running(order, report=None):
    service = worker_factory(RunnerService)
    service.batches = None  # each report its own event (RUNNER_REPORT_WINDOW 0)
    service.holdings.runner_id = "me"

    def run(work, runner, **kwargs):
        kwargs["timings"].update(begin=0.0, created=0.1, started=0.2, exited=1.0, outcome=1.1)
        return dict(OUTCOME)

    service.docker.run.side_effect = run
    service.docker.dispose.side_effect = lambda: order.append("dispose") or 0.0
    service.report.side_effect = report or (lambda event, payload: order.append(event))
    return service


def test_the_finished_report_goes_out_before_the_container_is_handed_for_removal():
    order = []
    service = service_running(order)
    assert service._execute(0, dict(WORK), None) is True
    assert order == [events.EXECUTION_FINISHED, "dispose"]
    payload = service.report.call_args[0][1]
    assert payload["status"] == "COMPLETE" and payload["detail_id"] == "d1"
    service.holdings.release.assert_called_once_with("d1")
    (timings,), kwargs = service.metrics.observe_phases.call_args
    assert {"exited", "outcome", "reported"} <= set(timings) and kwargs == {"removing": 0.0}


def test_a_report_that_cannot_be_sent_leaves_the_container_on_the_engine_for_reconcile():
    order = []

    def broker_down(event, payload):
        raise ConnectionError("broker away for an hour")

    service = service_running(order, report=broker_down)
    try:
        service._execute(0, dict(WORK), None)
    except ConnectionError:
        pass
    else:
        raise AssertionError("the report's failure was swallowed")
    assert "dispose" not in order  # its container (and so its outcome, for a re-attach) is kept
    service.holdings.release.assert_called_once_with("d1")
