"""A runner's reconciliation decisions, against fakes of its engine and the scheduler."""
from types import SimpleNamespace

import pytest

from services.runner.reconcile import reconcile
from services.runner.slots import Holdings


class Engine:
    def __init__(self, *containers, removing=()):
        self.containers = list(containers)
        self.removed = []
        self.removing = set(removing)  # ended, reported, waiting for this runner's background remover

    def removal_pending(self, container_id):
        return container_id in self.removing

    def managed_containers(self):
        return [c for c in self.containers if c["id"] not in self.removed]

    def remove(self, container_id):
        self.removed.append(container_id)


class Scheduler:
    def __init__(self, states=None, mine=(), installation="ours"):
        self.states = states or {}
        self.mine = list(mine)
        self.released = []
        self.installation = installation
        self.asked = 0

    def installation_id(self):
        self.asked += 1
        if isinstance(self.installation, Exception):
            raise self.installation
        return self.installation

    def runner_holdings(self, runner):
        return self.mine

    def execution_states(self, detail_ids):
        return {i: self.states[i] for i in detail_ids if i in self.states}

    def release_claim(self, runner, detail_id, attempt):
        self.released.append((runner, detail_id, attempt))
        return True


def container(cid, detail_id, attempt, runner, installation="ours"):
    return {"id": cid, "detail_id": detail_id, "attempt": attempt, "runner": runner,
            "result_id": "r", "state": "running", "installation": installation}


def work(detail_id, attempt, status="RUNNING"):
    return {"detail_id": detail_id, "attempt": attempt, "status": status, "result_id": "r",
            "index": 0, "image": "img", "timeout": None}


@pytest.fixture
def holdings():
    held = Holdings()
    held.container = SimpleNamespace(config={"RUNNER_ID": "me"})
    held.setup()
    return held


def run(holdings, engine, scheduler):
    reports = []
    summary = reconcile(holdings, engine, scheduler, lambda *event: reports.append(event))
    return summary, reports


def test_orphans_are_removed_at_the_first_sighting_and_live_or_foreign_ones_are_left(holdings):
    engine = Engine(container("c-over", "d1", 1, "other"),      # its execution ended
                    container("c-replaced", "d2", 1, "gone"),   # attempt 2 replaced it
                    container("c-lost", "d5", 1, "gone"),       # its runner was declared lost
                    container("c-live", "d3", 1, "other"),      # another runner's, running
                    container("c-deleted", "d6", 1, "gone"),    # ours; its result was deleted
                    container("c-alien", "d4", 1, "x", installation="theirs"),
                    container("c-alien-known", "d1", 1, "x", installation="theirs"),
                    container("c-old", "d7", 1, "x", installation=None))  # made before the label
    scheduler = Scheduler(states={
        "d1": {"status": "COMPLETE", "attempt": 1, "runner": "other"},
        "d2": {"status": "RUNNING", "attempt": 2, "runner": "other"},
        "d3": {"status": "RUNNING", "attempt": 1, "runner": "other"},
        "d5": {"status": "ERROR", "attempt": 1, "runner": "gone"},
    })
    assert run(holdings, engine, scheduler)[0]["removed"] == 4
    assert sorted(engine.removed) == ["c-deleted", "c-lost", "c-over", "c-replaced"]
    assert run(holdings, engine, scheduler)[0]["removed"] == 0
    assert scheduler.asked == 1  # the installation's id is asked once, then kept


def test_an_unlabelled_container_of_a_known_execution_is_still_judged(holdings):
    engine = Engine(container("c-old-over", "d1", 1, "other", installation=None))
    scheduler = Scheduler(states={"d1": {"status": "COMPLETE", "attempt": 1, "runner": "other"}})
    assert run(holdings, engine, scheduler)[0]["removed"] == 1


def test_without_the_installation_id_no_container_of_an_unknown_execution_is_removed(holdings):
    engine = Engine(container("c-unknown", "d6", 1, "gone"),
                    container("c-over", "d1", 1, "other", installation=None),
                    container("c-labelled-over", "d2", 1, "other"),
                    container("c-mine", "d3", 3, "me"))
    scheduler = Scheduler(states={"d1": {"status": "COMPLETE", "attempt": 1, "runner": "other"},
                                  "d2": {"status": "ERROR", "attempt": 1, "runner": "other"},
                                  "d3": {"status": "RUNNING", "attempt": 3, "runner": "me"}},
                          mine=[work("d3", 3)], installation=RuntimeError("no such RPC"))
    summary, _ = run(holdings, engine, scheduler)
    # known executions are judged as ever (orphans removed, our own re-attached)
    assert (summary["removed"], summary["adopted"]) == (2, 1)
    assert sorted(engine.removed) == ["c-labelled-over", "c-over"]
    scheduler.installation = "ours"  # asked again next time, until it answers
    assert run(holdings, engine, scheduler)[0]["removed"] == 1
    assert engine.removed[-1] == "c-unknown"


def test_own_container_left_by_a_previous_process_is_re_attached(holdings):
    engine = Engine(container("c-mine", "d1", 3, "me"))
    scheduler = Scheduler(states={"d1": {"status": "RUNNING", "attempt": 3, "runner": "me"}},
                          mine=[work("d1", 3)])
    summary, _ = run(holdings, engine, scheduler)
    assert summary["adopted"] == 1
    assert holdings.holds("d1", 3)
    adopted, container_id = holdings.next_adoption()
    assert adopted["detail_id"] == "d1" and container_id == "c-mine"
    # held now: a second pass neither adopts it again nor removes it
    assert run(holdings, engine, scheduler)[0] == {"adopted": 0, "removed": 0, "released": 0, "lost": 0}


def test_claim_never_received_is_handed_back_unless_a_claim_is_in_flight(holdings):
    scheduler = Scheduler(mine=[work("d1", 1, status="QUEUED")])
    with holdings.claiming():
        assert run(holdings, Engine(), scheduler)[0]["released"] == 0
    assert run(holdings, Engine(), scheduler)[0]["released"] == 1
    assert scheduler.released == [("me", "d1", 1)]


def test_claim_received_by_this_process_is_never_handed_back(holdings):
    holdings.note_received(work("d1", 1))   # finished here; its report is on its way
    scheduler = Scheduler(mine=[work("d1", 1, status="QUEUED")])
    assert run(holdings, Engine(), scheduler)[0]["released"] == 0


def test_started_execution_whose_container_is_gone_is_reported_with_an_unknown_outcome(holdings):
    scheduler = Scheduler(mine=[work("d1", 2, status="RUNNING")])
    summary, reports = run(holdings, Engine(), scheduler)
    assert summary["lost"] == 1
    [(event, report)] = reports
    assert event == "execution_finished"
    assert report["status"] == "ERROR" and report["attempt"] == 2 and report["runner"] == "me"
    assert "outcome is unknown" in report["reason"]
    # and only once
    assert run(holdings, Engine(), scheduler)[0]["lost"] == 0


@pytest.mark.parametrize("status", ["RUNNING", "QUEUED"])  # QUEUED: its start not yet heard of, never handed back
def test_started_tes_task_still_on_the_engine_is_reported_lost_saying_why_with_its_executors_logs(holdings, status):
    scheduler = Scheduler(mine=[work("d1", 1, status=status)])
    executors = [{"start_time": 1.0, "end_time": 2.0, "exit_code": 0, "stdout": "first\n", "stderr": ""}]
    reports = []
    summary = reconcile(holdings, Engine(), scheduler, lambda *event: reports.append(event),
                        recover=lambda detail_id, attempt: executors if (detail_id, attempt) == ("d1", 1) else None)
    assert summary["lost"] == 1
    [(_, report)] = reports
    assert report["status"] == "ERROR" and "restarted in the middle of this TES task" in report["reason"]
    assert report["tes_log"] == {"failure": "SYSTEM_ERROR", "executors": executors, "outputs": [],
                                 "system_logs": [report["reason"]]}
    assert scheduler.released == []


def test_a_reported_container_waiting_for_this_runners_remover_is_left_to_it(holdings):
    engine = Engine(container("c-waiting", "d1", 1, "me"), container("c-over", "d2", 1, "me"),
                    removing={"c-waiting"})
    scheduler = Scheduler(states={"d1": {"status": "COMPLETE", "attempt": 1, "runner": "me"},
                                  "d2": {"status": "COMPLETE", "attempt": 1, "runner": "me"}})
    summary, _ = run(holdings, engine, scheduler)
    assert engine.removed == ["c-over"] and summary["removed"] == 1
