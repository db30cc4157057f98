"""Registry and scheduler never call each other: the gateway makes both calls where a request needs both."""
import logging
import sys

import pytest
from nameko.testing.services import worker_factory
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from services.gateway.service import GatewayService
from shared.errors import Conflict, TaskUnconfirmed
from shared.logs import ClientErrors
from shared.settings import GatewaySettings, parse

FACTS = {"task_id": "t1", "name": "app", "status": "READY", "digest": "r/app@sha256:" + "a" * 64, "version": 3}


def request(method, body=None):
    return Request(EnvironBuilder(method=method, path="/task/t1/", json=body).get_environ())


@pytest.fixture
def gateway():
    return worker_factory(GatewayService, settings=parse(GatewaySettings, {"RPC_TIMEOUT": 5}))


def test_a_run_the_scheduler_cannot_confirm_is_sent_again_with_the_registrys_facts(gateway):
    gateway.scheduler.run_task.side_effect = [TaskUnconfirmed("no fresh word", "task_id"), {"result_id": "r1"}]
    gateway.registry.task_facts.return_value = FACTS
    status, headers, result = gateway.operate_task(request("POST", {"operation": "RUN", "times": 1}), "t1")
    assert (status, result) == (202, {"result_id": "r1"})
    gateway.registry.task_facts.assert_called_once()
    # asked for the request's caller: the registry refuses a call naming none (shared/principals.py)
    assert gateway.registry.task_facts.call_args.args == ("t1",)
    assert gateway.registry.task_facts.call_args.kwargs["caller"]["principal"] == "admin"
    assert gateway.scheduler.run_task.call_args.args == ("t1", {"operation": "RUN", "times": 1}, None, FACTS)


def test_a_run_the_scheduler_confirms_never_asks_the_registry(gateway):
    gateway.scheduler.run_task.return_value = {"result_id": "r1"}
    gateway.operate_task(request("POST", {"operation": "RUN", "times": 1}), "t1")
    assert not gateway.registry.task_facts.called and gateway.scheduler.run_task.call_count == 1


def test_delete_closes_the_task_in_the_scheduler_before_the_registry_deletes_it(gateway):
    assert gateway.delete_task(request("DELETE"), "t1").status_code == 204
    assert gateway.scheduler.close_task.call_args.args[0] == "t1"
    gateway.registry.delete_task.assert_called_once()
    assert gateway.registry.delete_task.call_args.args == ("t1",)
    # who deleted it, for the audit log the registry writes with the delete (shared/audit.py)
    assert gateway.registry.delete_task.call_args.kwargs["caller"]["principal"] == "admin"

    gateway.registry.delete_task.reset_mock()
    gateway.scheduler.close_task.side_effect = Conflict("task t1 has 1 active run(s); cancel them first", "task_id")
    with pytest.raises(Conflict):
        gateway.delete_task(request("DELETE"), "t1")
    assert not gateway.registry.delete_task.called  # refused: the registry keeps it


def test_the_schedulers_unconfirmed_answer_is_not_logged():
    class Entrypoint:
        method_name = "run_task"

    class WorkerContext:
        entrypoint, service_name = Entrypoint(), "scheduler"

    try:
        raise TaskUnconfirmed("no fresh word", "task_id")
    except TaskUnconfirmed as exc:
        record = logging.LogRecord("nameko.containers", logging.ERROR, __file__, 1,
                                   "error handling worker %s: %s", (WorkerContext(), exc), sys.exc_info())
    assert not ClientErrors().filter(record)
