"""Teams, quotas and fair share on the real parts (issue 18): a flood from one team does not starve another.

The floods of teams ``a`` and ``b`` are made here by the scheduler's own ``run_task`` RPC, with the
caller the gateway would pass (shared/principals.py), on the system's broker (2,000 executions at once);
the quota of a team over HTTP is tried with real members' tokens of two teams.
"""
import itertools
import json
import os
import re
import subprocess
import sys
import time
import uuid

import pytest
from nameko.standalone.rpc import ClusterRpcProxy

from shared.errors import TaskUnconfirmed
from tests.support import ADMIN, Api, started_system, wait_until

SLOTS = 4  # two runners of two slots each
QUICK = "1"  # seconds an execution of team a sleeps


@pytest.fixture(scope="module")
def fair(vhost_pipeline, request, test_images):
    with started_system(request, vhost_pipeline, "fairshare", {"RUNNER_SLOTS": "2", "SWEEP_INTERVAL": "1"},
                        runners=2) as system:
        system.sleep_task = system.api.register(test_images["sleep"], name=f"fs-sleep-{uuid.uuid4().hex[:6]}")
        for name, weight in (("a", 1), ("b", 1)):
            created = system.api.post("/team/", {"name": name, "weight": weight})
            assert created.status_code == 201, created.text
        # each team's own sleep task: a run is of its task's team, and a member runs its team's only
        system.team_tasks = {name: system.api.register(test_images["sleep"], name="fs-sleep", team=name)
                             for name in ("a", "b")}
        yield system


def run_as(system, team, times, **params):
    """A RUN of ``team``'s sleep task by a member of ``team``, as the gateway hands it to the scheduler."""
    caller = {"principal": f"{team}-bot", "role": "member", "team": team, "address": "127.0.0.1"}
    task_id = system.team_tasks[team]["task_id"]
    body = {"operation": "RUN", "times": times, **params}
    with ClusterRpcProxy({"AMQP_URI": system.amqp_uri}) as cluster:
        try:
            return cluster.scheduler.run_task(task_id, body, None, caller=caller)
        except TaskUnconfirmed:
            facts = cluster.registry.task_facts(task_id, caller=ADMIN)  # as the gateway asks for an admin
            return cluster.scheduler.run_task(task_id, body, None, facts, caller=caller)


def team(system, name):
    answer = system.api.get(f"/team/{name}/")
    assert answer.status_code == 200, answer.text
    return answer.json()


def patch_team(system, name, body):
    answer = system.api.http.patch(f"{system.url}/team/{name}/", json=body, timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.json()


def started(system, result_id):
    return [d for d in system.api.details(result_id) if d["start"] is not None]


def cancel(system, result_id):
    system.api.post(f"/result/{result_id}/", {"operation": "CANCEL"})
    system.api.wait_result(result_id, timeout=60)


def test_a_run_is_its_callers_teams_and_names_who_made_it(fair):
    result = run_as(fair, "b", 1, env={"SLEEP": "0"})
    assert (result["team"], result["submitted_by"]) == ("b", "b-bot")
    mine = fair.api.run(fair.sleep_task["task_id"], times=1, env={"SLEEP": "0"})
    shown = fair.api.get(f"/result/{mine}/").json()
    assert (shown["team"], shown["submitted_by"]) == ("default", "admin")
    fair.api.wait_result(result["result_id"])
    fair.api.wait_result(mine)


def test_team_b_s_single_execution_starts_at_the_next_free_slot_behind_2000_of_team_a(fair):
    flood = run_as(fair, "a", 2000, env={"SLEEP": QUICK})["result_id"]
    try:
        wait_until(lambda: team(fair, "a")["running"] == SLOTS and len(started(fair, flood)) >= SLOTS,
                   timeout=60, what="every runner slot busy with team a")
        assert team(fair, "a")["queued"] > 1900
        submitted = time.time()
        alone = run_as(fair, "b", 1, env={"SLEEP": "0"})["result_id"]
        [mine] = wait_until(lambda: started(fair, alone) or None, timeout=30, what="team b's execution to start")
        waited = mine["start"] - submitted
        # the first slot that came free took it: at most the claims already in flight when it was queued
        # (one a slot) started team a's executions in between, and it waited at most one execution of a
        overtaken = [d for d in started(fair, flood) if submitted < d["start"] < mine["start"]]
        assert len(overtaken) <= SLOTS, (waited, overtaken)
        assert waited < float(QUICK) + 4, waited
        assert team(fair, "a")["running"] <= SLOTS
    finally:
        cancel(fair, flood)
    wait_until(lambda: team(fair, "a")["running"] == 0, timeout=60, what="team a's executions to end")


def test_max_running_is_never_passed_and_frees_as_executions_end(fair):
    patch_team(fair, "b", {"max_running": 1})
    try:
        result_id = run_as(fair, "b", 5, env={"SLEEP": "1"})["result_id"]
        seen = []
        deadline = time.time() + 60
        while time.time() < deadline:
            seen.append(team(fair, "b")["running"])
            if fair.api.get(f"/result/{result_id}/").json()["status"] == "COMPLETE":
                break
            time.sleep(0.2)
        assert fair.api.wait_result(result_id)["status"] == "COMPLETE"
        assert max(seen) == 1
        spans = sorted((d["start"], d["end"]) for d in fair.api.details(result_id))
        assert all(later[0] >= earlier[1] - 0.05 for earlier, later in itertools.pairwise(spans)), spans
    finally:
        patch_team(fair, "b", {"max_running": None})


def test_a_run_over_the_teams_max_queued_is_429_with_retry_after(fair):
    task_id = fair.sleep_task["task_id"]
    patch_team(fair, "default", {"max_running": 0})  # nothing of default starts: its queue holds still
    try:
        queued = team(fair, "default")["queued"]
        patch_team(fair, "default", {"max_queued": queued + 5})
        first = fair.api.post(f"/task/{task_id}/", {"operation": "RUN", "times": 3, "env": {"SLEEP": "0"}})
        assert first.status_code == 202, first.text
        held = f"/result/{first.json()['result_id']}/"  # says why it waits (within a sweep)
        wait_until(lambda: "team default has max_running 0" in (fair.api.get(held).json()["unschedulable"] or ""),
                   timeout=30, what="the run's unschedulable naming max_running 0")
        refused = fair.api.post(f"/task/{task_id}/", {"operation": "RUN", "times": 3, "env": {"SLEEP": "0"}})
        assert refused.status_code == 429, refused.text
        assert refused.json()["error"] == "TOO_MANY_REQUESTS"
        assert refused.json()["message"].startswith("max_queued: team default has")
        assert 1 <= int(refused.headers["Retry-After"]) <= 3600
        never = fair.api.post(f"/task/{task_id}/", {"operation": "RUN", "times": queued + 6})
        assert never.status_code == 409 and never.json()["message"].startswith("times:"), never.text
        assert team(fair, "default")["queued"] == queued + 3  # the refused runs left nothing behind
        up_to = fair.api.post(f"/task/{task_id}/", {"operation": "RUN", "times": 2, "env": {"SLEEP": "0"}})
        assert up_to.status_code == 202, up_to.text  # exactly up to the quota
        patch_team(fair, "default", {"max_queued": None})
        assert fair.api.post(f"/task/{task_id}/", {"operation": "RUN", "times": 3,
                                                   "env": {"SLEEP": "0"}}).status_code == 202
    finally:
        patch_team(fair, "default", {"max_running": None, "max_queued": None})
    wait_until(lambda: team(fair, "default")["queued"] == 0, timeout=90, what="default's runs to drain")


def test_concurrent_runs_never_pass_max_queued_together(fair):
    from concurrent.futures import ThreadPoolExecutor

    task_id = fair.sleep_task["task_id"]
    patch_team(fair, "default", {"max_running": 0, "max_queued": 10})
    try:
        with ThreadPoolExecutor(12) as pool:
            answers = list(pool.map(lambda _: fair.api.post(
                f"/task/{task_id}/", {"operation": "RUN", "times": 2, "env": {"SLEEP": "0"}}), range(12)))
        codes = sorted(answer.status_code for answer in answers)
        assert codes == [202] * 5 + [429] * 7, [a.text for a in answers]
        assert team(fair, "default")["queued"] == 10
    finally:
        patch_team(fair, "default", {"max_running": None, "max_queued": None})
    wait_until(lambda: team(fair, "default")["queued"] == 0, timeout=90, what="default's runs to drain")


def test_teams_are_managed_over_http_and_a_team_with_runs_is_not_deleted(fair):
    api = fair.api
    assert api.post("/team/", {"name": "a"}).status_code == 409
    bad = api.post("/team/", {"name": "Not_A_Label"})
    assert bad.status_code == 400 and bad.json()["message"].startswith("name:")
    assert api.post("/team/", {"name": "c", "weight": 0}).json()["message"].startswith("weight:")
    listed = api.get("/team/", params={"limit": 2})
    assert [t["name"] for t in listed.json()] == ["a", "b"] and 'rel="next"' in listed.headers["Link"]
    assert api.get("/team/nobody/").status_code == 404
    assert api.delete("/team/default/").status_code == 409
    assert api.delete("/team/a/").status_code == 409  # it has runs
    assert api.post("/team/", {"name": "empty", "max_queued": 7}).status_code == 201
    assert api.delete("/team/empty/").status_code == 204
    assert api.get("/team/empty/").status_code == 404


def field(stdout, label):
    match = re.search(rf"^{label} +(.*)$", stdout, re.MULTILINE)
    assert match, f"no {label!r} line in:\n{stdout}"
    return match.group(1)


def test_stevedore_team_add_ls_show_set_rm(fair):
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

    def cli(*args):
        environ = {key: value for key, value in os.environ.items() if not key.startswith("STEVEDORE_")}
        environ.update({"STEVEDORE_URL": fair.url, "STEVEDORE_TOKEN": fair.token})
        return subprocess.run([sys.executable, "-m", "stevedore_jobs.cli", *args], env=environ, cwd=root,
                              capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL, check=False)

    added = cli("team", "add", "cli-team", "--weight", "2.5", "--max-queued", "40")
    assert added.returncode == 0, added.stderr
    assert field(added.stdout, "weight") == "2.5" and field(added.stdout, "queued") == "0 (max 40)"
    listed = cli("team", "ls")
    row = next(line.split() for line in listed.stdout.splitlines() if line.startswith("cli-team"))
    assert row == ["cli-team", "2.5", "0", "none", "0", "40"]
    changed = cli("--json", "team", "set", "cli-team", "--max-running", "3", "--max-queued", "none")
    assert changed.returncode == 0, changed.stderr
    shown = json.loads(changed.stdout)
    assert (shown["max_running"], shown["max_queued"]) == (3, None)
    assert field(cli("team", "show", "cli-team").stdout, "running") == "0 (max 3)"
    refused = cli("team", "set", "cli-team", "--weight", "0")
    assert refused.returncode == 2 and "weight: must be a number from 0.01 to 1000" in refused.stderr
    assert cli("team", "set", "cli-team").returncode == 2  # nothing to change
    assert cli("team", "rm", "cli-team").returncode == 0
    gone = cli("team", "show", "cli-team")
    assert gone.returncode == 2 and "no team 'cli-team'" in gone.stderr


def test_a_member_over_its_teams_max_queued_is_429_and_another_team_is_not_affected(fair, test_images):
    """Quotas over HTTP with real principals' tokens: a member of team qa hits its team's max_queued (429,
    Retry-After); a member of team qb runs all the same."""
    suffix = uuid.uuid4().hex[:6]
    members = {}
    for name, quota in ((f"qa-{suffix}", {"max_running": 0, "max_queued": 3}), (f"qb-{suffix}", {})):
        assert fair.api.post("/team/", {"name": name, **quota}).status_code == 201
        made = fair.api.post("/token/", {"name": f"{name}-bot", "team": name, "role": "member"})
        assert made.status_code == 201, made.text
        member = Api(fair.url, token=made.json()["token"])
        members[name] = (member, member.register(test_images["sleep"], name="sleeper")["task_id"])
    (qa, qa_task), (qb, qb_task) = members.values()
    body = {"operation": "RUN", "times": 3, "env": {"SLEEP": "0"}}
    first = qa.post(f"/task/{qa_task}/", body)
    assert first.status_code == 202, first.text
    refused = qa.post(f"/task/{qa_task}/", {**body, "times": 1})
    assert refused.status_code == 429, refused.text
    assert refused.json()["message"].startswith(f"max_queued: team qa-{suffix} has"), refused.text
    assert 1 <= int(refused.headers["Retry-After"]) <= 3600
    other = qb.post(f"/task/{qb_task}/", body)
    assert other.status_code == 202, other.text
    assert qb.wait_result(other.json()["result_id"])["status"] == "COMPLETE"
    assert team(fair, f"qa-{suffix}")["queued"] == 3  # the refused run left nothing behind
    assert qa.post(f"/result/{first.json()['result_id']}/", {"operation": "CANCEL"}).status_code == 202
