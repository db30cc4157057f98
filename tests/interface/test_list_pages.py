"""A list RPC's page bounded in bytes (LIST_PAGE_BYTES), on the real broker and database, in both reply shapes:
this release's gateway asks ``paged=True``, one of before asks ``limit+1`` and gets the plain list."""
import uuid

import pytest
from nameko.exceptions import IncorrectSignature
from nameko.rpc import rpc
from nameko.standalone.rpc import ServiceRpcProxy

from services.scheduler.service import SchedulerService
from tests.support import ADMIN, call

VALUE = 1000  # an env value: two results to a page of LIST_PAGE_BYTES=4096, not three


@pytest.fixture
def scheduler(container_factory, service_config):
    container = container_factory(SchedulerService, {**service_config, "LIST_PAGE_BYTES": 4096})
    container.start()
    return container


def stored_results(container, count):
    task_id = uuid.uuid4().hex
    task = {"task_id": task_id, "name": f"t-{task_id[:6]}", "status": "READY",
            "digest": "reg:5000/x@sha256:" + "a" * 64, "version": 1, "team": "default"}
    made = []
    for n in range(count):
        body = {"operation": "RUN", "times": 1, "env": {"BIG": str(n) * VALUE}}
        made.append(call(container, "run_task", task_id, body, None, task)["result_id"])
    return task_id, made[::-1]


def test_a_paged_list_stops_at_the_bound_and_says_more_exist(scheduler):
    task_id, made = stored_results(scheduler, 5)
    page = call(scheduler, "list_results", task_id=task_id, limit=1000, paged=True)
    assert [r["result_id"] for r in page["items"]] == made[:2] and page["more"] is True
    rest = call(scheduler, "list_results", task_id=task_id, limit=1000, after=made[3], paged=True)
    assert [r["result_id"] for r in rest["items"]] == made[4:] and rest["more"] is False


def test_a_gateway_of_before_gets_the_plain_list_cut_by_items_only(scheduler):
    task_id, made = stored_results(scheduler, 5)
    listed = call(scheduler, "list_results", task_id=task_id, limit=4)  # its limit+1 for a page of 3
    assert [r["result_id"] for r in listed] == made[:4]


class SchedulerOfBefore:
    """A scheduler whose list RPC takes no ``paged`` (a rolling upgrade's older service)."""
    name = "scheduler"

    @rpc
    def list_runners(self, limit=100, after=None, status=None, caller=None):
        return [{"runner_id": f"r{n}"} for n in range(limit)]


def test_a_service_of_before_refuses_paged_over_the_broker_as_the_gateway_expects(container_factory,
                                                                                  service_config):
    from services.gateway.inputs import listing
    from stevedore_jobs.contract import RunnerListQuery
    from tests.unit.test_pages import runners_request

    container_factory(SchedulerOfBefore, service_config).start()
    with ServiceRpcProxy("scheduler", service_config) as proxy:
        with pytest.raises(IncorrectSignature):
            proxy.list_runners(limit=2, caller=ADMIN, paged=True)
        _, headers, items = listing(runners_request("limit=2"), RunnerListQuery, proxy.list_runners, "runner_id")
    assert [r["runner_id"] for r in items] == ["r0", "r1"] and "after=r1" in headers["Link"]
