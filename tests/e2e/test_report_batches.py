"""A runner's reports of several slots go to the scheduler coalesced (``execution_reports``): a run of many
executions over several slots completes with every execution recorded once and the counts right."""
import uuid
from collections import Counter

import pytest
from kombu import Connection, Exchange, Queue
from nameko.events import event_handler
from sqlalchemy import text

from shared import events
from tests.support import own_system, wait_until

pytestmark = pytest.mark.e2e

TIMES = 40
FOLD_QUEUE = f"evt-{events.RUNNER}-{events.EXECUTION_REPORTS}--scheduler.on_execution_reports"


@pytest.fixture(scope="module")
def slots_system(vhost_pipeline, request, test_images, docker_client):
    """Two runners of four slots each, whose slots' reports wait up to 0.3 s for each other."""
    yield from own_system(request, vhost_pipeline, "report-batches",
                          {"RUNNER_SLOTS": "4", "RUNNER_REPORT_WINDOW": "0.3"}, runners=2, docker_client=docker_client)


def tap(container_factory, system, names):
    """Every message of the runners' ``names`` from now on: (event, payload)."""
    seen = []

    def handle(self, payload, name):
        seen.append((name, payload))

    methods = {"name": f"report_tap_{uuid.uuid4().hex[:6]}"}
    for name in names:
        # its queues go with it (auto-delete): a later test's runners find no queue of a tap gone
        methods[f"on_{name}"] = event_handler(events.RUNNER, name, reliable_delivery=False)(
            lambda self, payload, name=name: handle(self, payload, name))
    container = container_factory(type("ReportTap", (), methods), {"AMQP_URI": system.amqp_uri})
    container.start()
    return seen


@pytest.fixture
def reports_seen(container_factory, slots_system):
    """Every report message the runners send from now on: (event, payload)."""
    return tap(container_factory, slots_system,
               (events.EXECUTION_REPORTS, events.EXECUTION_STARTED, events.EXECUTION_FINISHED))


def reports_in(seen, ours):
    """How many times each (event, detail id) of ``ours`` was reported in ``seen``, batched or alone."""
    items = []
    for name, payload in seen:
        items += ([(item["event"], item["report"]["detail_id"]) for item in payload["reports"]]
                  if name == events.EXECUTION_REPORTS else [(name, payload["detail_id"])])
    return Counter(item for item in items if item[1] in ours)


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
        return reports_in(reports_seen, ours)

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


# last in this module: its runners send single events for some minutes after
def test_with_no_queue_for_coalesced_reports_a_scheduler_from_before_gets_them_as_single_events(
        slots_system, container_factory, test_images):
    """A scheduler from before consumes only ``execution_started`` / ``execution_finished``: the queue of
    ``execution_reports`` unbound, RabbitMQ returns the runners' batches (mandatory), and they send each
    report again as its own event: every execution is recorded COMPLETE, none "runner lost"."""
    singles = tap(container_factory, slots_system, (events.EXECUTION_STARTED, events.EXECUTION_FINISHED))
    exchange = Exchange(f"{events.RUNNER}.events", type="topic")
    with Connection(slots_system.amqp_uri) as connection:
        queue = Queue(FOLD_QUEUE, exchange, routing_key=events.EXECUTION_REPORTS)(connection.default_channel)
        queue.unbind_from(exchange, routing_key=events.EXECUTION_REPORTS)
        try:
            api = slots_system.api
            task = api.register(test_images["ok"], name=f"unrouted-{uuid.uuid4().hex[:6]}")
            result_id = api.run(task["task_id"], times=8, command=["sh", "-c", "sleep 1.2; echo hello"])
            result = api.wait_result(result_id, timeout=180)
        finally:
            queue.bind_to(exchange, routing_key=events.EXECUTION_REPORTS)

    assert result["status"] == "COMPLETE", result
    assert result["counts"]["COMPLETE"] == 8, result
    details = api.details(result_id)
    assert {(d["status"], d["attempt"], d["reason"]) for d in details} == {("COMPLETE", 1, None)}, details
    ours = {d["detail_id"] for d in details}
    # each start and end arrived once as a single event: the batches that held them had come back
    wait_until(lambda: len(reports_in(singles, ours)) == 16, timeout=30, what="every report as a single event")
    assert set(reports_in(singles, ours).values()) == {1}
    assert "came back unrouted" in "".join(
        slots_system.log(label) for label in slots_system.plan if label.startswith("runner"))
