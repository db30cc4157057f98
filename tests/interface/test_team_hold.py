"""A team given max_running 0 says so on each of its active runs, set and cleared by the scheduler's sweep
one UPDATE a team (services/scheduler/fleet.py ``hold_teams``), never by the team's PATCH: a team of many
queued runs answers at once."""
import time

import pytest

from services.scheduler.service import SchedulerService
from tests.support import call, wait_until

RUNS = 5000  # one UPDATE a run inside the RPC took 2.7 s for 2,000 here: this many fails the bound


@pytest.fixture
def scheduler(container_factory, service_config):
    container = container_factory(SchedulerService, {**service_config, "SWEEP_INTERVAL": "0.5"})
    container.start()
    return container


def noted(sql):
    return dict(sql("SELECT coalesce(unschedulable, '-') AS note, count(*) AS n FROM results"
                    " WHERE team = 'held' GROUP BY 1").all())


def test_max_running_0_answers_at_once_and_its_runs_say_so_until_it_is_raised(scheduler, sql):
    sql("INSERT INTO teams (name, weight, max_running, created_at) VALUES ('held', 1, 5, 0)")
    call(scheduler, "run_task", "a" * 32, {"operation": "RUN", "times": 1}, None, {
        "task_id": "a" * 32, "name": "t", "status": "READY", "digest": "reg:5000/x@sha256:" + "a" * 64,
        "version": 1, "team": "held"})
    # the one run copied under new ids: RUNS queued runs of the team, made in one statement
    sql("INSERT INTO results SELECT (jsonb_populate_record(r, jsonb_build_object('id', md5(g::text)))).*"
        " FROM results r, generate_series(2, :n) g WHERE r.team = 'held'", n=RUNS)
    assert noted(sql) == {"-": RUNS}

    began = time.monotonic()
    assert call(scheduler, "update_team", "held", {"max_running": 0})["max_running"] == 0
    assert time.monotonic() - began < 5
    why = ("its team held has max_running 0: no execution of the team starts until an admin raises it "
           "(PATCH /team/held/)")
    wait_until(lambda: noted(sql) == {why: RUNS}, timeout=10, what="every run of the team saying why it waits")

    began = time.monotonic()
    call(scheduler, "update_team", "held", {"max_running": 3})
    assert time.monotonic() - began < 5
    wait_until(lambda: noted(sql) == {"-": RUNS}, timeout=10, what="the note gone once the quota is raised")
