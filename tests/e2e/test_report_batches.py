"""A runner's reports of several slots go to the scheduler coalesced (``execution_reports``): a run of many
executions over several slots completes with every execution recorded once and the counts right."""
import uuid
from collections import Counter

import pytest
from nameko.events import event_handler
from sqlalchemy import text

from shared import events
from tests.support import own_system, wait_until

pytestmark = pytest.mark.e2e

TIMES = 40


@pytest.fixture(scope="module")
def slots_system(vhost_pipeline, request, test_images, docker_client):
    """Two runners of four slots each, whose slots' reports wait up to 0.3 s for each other."""
    yield from own_system(request, vhost_pipeline, "report-batches",
                          {"RUNNER_SLOTS": "4", "RUNNER_REPORT_WINDOW": "0.3"}, runners=2, docker_client=docker_client)


@pytest.fixture
def reports_seen(container_factory, slots_system):
    """Every report message the runners send from now on: (event, payload)."""
    seen = []

    def handle(self, payload, name):
        seen.append((name, payload))

    methods = {"name": f"report_tap_{uuid.uuid4().hex[:6]}"}
    for name in (events.EXECUTION_REPORTS, events.EXECUTION_STARTED, events.EXECUTION_FINISHED):
        methods[f"on_{name}"] = event_handler(events.RUNNER, name)(
            lambda self, payload, name=name: handle(self, payload, name))
    container = container_factory(type("ReportTap", (), methods), {"AMQP_URI": slots_system.amqp_uri})
    container.start()
    return seen


def test_a_run_over_many_slots_is_recorded_once_per_execution_from_coalesced_reports(
        slots_system, reports_seen, test_images):
    api = slots_system.api
    task = api.register(test_images["ok"], name=f"batches-{uuid.uuid4().hex[:6]}")
    assert task["status"] == "READY", task
    # running past a second: its start is reported apart from its end (a shorter one's comes with its end)
    result_id = api.run(task["task_id"], times=TIMES, command=["sh", "-c", "sleep 1.2; echo hello from stevedore"])
    result = api.wait_result(result_id, timeout=180)

    assert result["status"] == "COMPLETE", result
    assert result["counts"] == {"QUEUED": 0, "RUNNING": 0, "COMPLETE": TIMES, "ERROR": 0, "CANCELLED": 0,
                                "KILLED": 0}
    details = api.details(result_id)
    assert sorted(d["index"] for d in details) == list(range(TIMES))
    for detail in details:
        assert (detail["status"], detail["exit_code"], detail["attempt"]) == ("COMPLETE", 0, 1), detail
        assert [(a["attempt"], a["status"]) for a in detail["attempts"]] == [(1, "COMPLETE")], detail
        assert detail["submitted_at"] <= detail["start"] <= detail["end"]
    assert result["start"] == pytest.approx(min(d["start"] for d in details))
    assert result["end"] == pytest.approx(max(d["end"] for d in details))
    ours = {d["detail_id"] for d in details}
    for detail_id in list(ours)[:5]:
        logs = api.get(f"/result/{result_id}/detail/{detail_id}/logs/").json()
        assert logs["stdout"] == "hello from stevedore\n"

    # what the runners sent: each start and end once, and in messages holding several
    def reports():
        items = []
        for name, payload in reports_seen:
            items += ([(item["event"], item["report"]["detail_id"]) for item in payload["reports"]]
                      if name == events.EXECUTION_REPORTS else [(name, payload["detail_id"])])
        return Counter(item for item in items if item[1] in ours)

    wait_until(lambda: len(reports()) == 2 * TIMES, timeout=30, what="every start and end report seen")
    assert set(reports().values()) == {1}
    batches = [payload for name, payload in reports_seen if name == events.EXECUTION_REPORTS]
    assert batches and all(name == events.EXECUTION_REPORTS for name, _ in reports_seen)
    assert max(len(payload["reports"]) for payload in batches) > 1
    assert len(batches) < 2 * TIMES

    # the team's claims were all given back, once each (a fold twice would take one too many)
    with slots_system.engine.connect() as conn:
        held = conn.execute(text("SELECT coalesce(sum(active), 0) FROM teams")).scalar()
        active = conn.execute(text("SELECT active FROM results WHERE id = :id"), {"id": result_id}).scalar()
    assert (held, active) == (0, 0)
