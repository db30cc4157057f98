"""The HTTP contract (stevedore_jobs/contract/): the one description the gateway, the served spec,
the docs and the client take the API from."""
import json
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import jsonschema_rs
import pytest

from stevedore_jobs.contract import Limits, checks, docs, openapi, requests, responses, run, schedule
from stevedore_jobs.contract.checks import MAX_JSON_DEPTH
from stevedore_jobs.contract import statuses as st

API_MD = Path(__file__).resolve().parents[2] / "docs" / "api.md"


def test_the_contract_and_the_client_import_no_server_dependency():
    code = ("import sys, stevedore_jobs.contract, stevedore_jobs.contract.openapi, stevedore_jobs.client, "
            "stevedore_jobs.cli; print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('nameko', 'eventlet', 'sqlalchemy', 'docker', 'shared', 'services', 'psycopg2')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_run_table_of_docs_api_is_made_from_the_contract():
    text = API_MD.read_text(encoding="utf-8")
    assert docs.with_run_table(text) == text, "run: python -m stevedore_jobs.contract.docs docs/api.md"


def documented_endpoints():
    found = set()
    for method, path in re.findall(r"^\| (GET|POST|PUT|PATCH|DELETE) \| `([^`]+)`", API_MD.read_text(), re.M):
        found.add((method.lower(), path))
    return found


def test_docs_api_lists_every_endpoint_of_the_spec_and_no_other():
    spec = openapi.spec()
    served = {(method, path.replace("{stream}", "stdout"))
              for path, item in spec["paths"].items() for method in item if method != "parameters"}
    assert documented_endpoints() == served


@pytest.mark.parametrize("model, label", [(responses.Task, "Task"), (responses.Result, "Result"),
                                          (responses.Detail, "Detail"), (schedule.Schedule, "Schedule"),
                                          (schedule.ScheduleFire, "Fire")])
def test_docs_api_names_every_field_of_each_object(model, label):
    paragraph = re.search(rf"^\*\*{label}\*\*: (.*?)(?:\n\n)", API_MD.read_text(), re.M | re.S).group(1)
    named = set(re.findall(r"`([a-z_0-9]+)`", paragraph))
    assert set(model.model_fields) <= named, set(model.model_fields) - named


def test_docs_api_names_the_statuses_of_the_contract():
    text = API_MD.read_text()
    assert f"`status` ({', '.join(st.TASK_STATUSES)})" in text


def refs(value):
    if isinstance(value, dict):
        if "$ref" in value:
            yield value["$ref"]
        for item in value.values():
            yield from refs(item)
    elif isinstance(value, list):
        for item in value:
            yield from refs(item)


def test_the_spec_is_openapi_3_1_its_references_resolve_and_every_answer_has_the_error_shape():
    spec = openapi.spec()
    assert spec["openapi"].startswith("3.1")
    schemas = spec["components"]["schemas"]
    for target in refs(spec):
        assert target.removeprefix("#/components/schemas/") in schemas, target
    for path, item in spec["paths"].items():
        for method, op in item.items():
            if method == "parameters":
                continue
            codes = set(op["responses"])
            assert {"400", "408", "413", "414", "429", "431", "503"} <= codes, (method, path)
            assert "Retry-After" in op["responses"]["429"]["headers"], (method, path)  # rate, failed auth
            assert ("401" in codes) == (op.get("security") != []), (method, path)
            for code, answer in op["responses"].items():
                if code >= "400":
                    assert answer["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}
    json.dumps(spec)  # plain JSON


def test_each_model_has_a_json_schema_of_its_own():
    for model in (requests.NewTask, requests.TaskOperation, requests.ResultOperation, requests.DetailOperation,
                  run.RunRequest, requests.TaskListQuery, responses.Task, responses.Result, responses.Logs):
        assert model.model_json_schema()["type"] == "object"


def test_the_spec_says_a_result_may_show_a_command_string_as_a_run_stored_before_the_split_did():
    command = openapi.spec()["components"]["schemas"]["RunParams"]["properties"]["command"]
    assert {"type": "string"} in command["anyOf"] and {"type": "null"} in command["anyOf"]
    assert responses.RunParams.model_validate({"command": "echo hi"}).command == "echo hi"
    with pytest.raises(ValueError):
        responses.RunParams.model_validate({"command": 7})


def test_the_served_maxima_are_the_installations():
    spec = openapi.spec(Limits(max_times=7, max_memory=2 * 1024 ** 3, max_cpus=1.5))
    run = spec["components"]["schemas"]["RunRequest"]
    assert run["required"] == ["operation"] and run["additionalProperties"] is False
    # times, unless items or matrix says how many
    schema = jsonschema_rs.Draft202012Validator({**run, "components": spec["components"]})
    assert not schema.is_valid({"operation": "RUN"}) and not schema.is_valid({"operation": "RUN", "times": None})
    assert schema.is_valid({"operation": "RUN", "items": [{}]}) and schema.is_valid({"operation": "RUN", "times": 2})
    assert schema.is_valid({"operation": "RUN", "matrix": {"A": ["1"]}, "items": None})
    assert not schema.is_valid({"operation": "RUN", "matrix": {"A": ["1"]}, "items": [{}]})
    times = run["properties"]["times"]["anyOf"][0]
    assert times["maximum"] == 7 and times["type"] == "integer"
    assert run["properties"]["items"]["anyOf"][0]["maxItems"] == 7
    assert run["properties"]["cpus"]["anyOf"][0]["maximum"] == 1.5
    assert "2g" in run["properties"]["memory"]["description"]


def test_the_statuses_are_served_with_which_are_active_and_which_ended():
    schemas = openapi.spec()["components"]["schemas"]
    assert schemas["ExecutionStatus"]["enum"] == list(st.EXECUTION_STATUSES)
    assert set(schemas["ExecutionStatus"]["x-active"]) == st.ACTIVE
    assert set(schemas["ExecutionStatus"]["x-terminal"]) == st.TERMINAL
    assert schemas["TaskStatus"]["enum"] == list(st.TASK_STATUSES)


@pytest.mark.parametrize("body, message", [
    ({"operation": "RUN", "times": None}, "times: is required (an integer from 1 to 10)"),
    ({"operation": "RUN", "times": "5"}, "times: must be an integer from 1 to 10"),
    ({"operation": "RUN", "times": 1, "retries": None}, "retries: must not be null; an integer from 0 to 100"),
    ({"operation": "RUN", "times": 1, "timeout": 0}, "timeout: must be a number from 1 to 2678400"),
    ({"operation": "RUN", "times": 1, "cpus": 3}, "cpus: must be a number from 0.01 to 2, this installation's "
                                                  "ceiling (CONTAINER_MAX_CPUS)"),
    ({"operation": "RUN", "times": 1, "memory": "4g"}, "memory: must be at most 2g, this installation's ceiling "
                                                       "(CONTAINER_MAX_MEMORY)"),
    ({"operation": "RUN", "times": 1, "parallelism": True}, "parallelism: must be an integer from 1 to 100000"),
    ({"operation": "RUN", "times": 1, "env": {"A": 1}}, "env: A: value must be a string"),
])
def test_a_broken_rule_is_told_as_field_colon_message(body, message):
    with pytest.raises(requests.Invalid) as caught:
        requests.parse(run.run_request(Limits(10, 2 * 1024 ** 3, 2.0)), body)
    assert str(caught.value) == message


def test_list_queries_take_strings_and_refuse_what_is_not_their_type():
    page = requests.query(requests.ResultListQuery, {"limit": "20", "status": "KILLED", "after": "a" * 32})
    assert page.query() == {"limit": 20, "status": "KILLED", "after": "a" * 32}
    assert requests.query(requests.TaskListQuery, {}).query() == {"limit": 100, "after": None}
    for args, field in (({"limit": "+5"}, "limit"), ({"limit": "1001"}, "limit"), ({"status": "DONE"}, "status"),
                        ({"status": ""}, "status"), ({"after": "no-such-id"}, "after"), ({"task_id": "x"}, "task_id")):
        with pytest.raises(requests.Invalid) as caught:
            requests.query(requests.ResultListQuery, args)
        assert caught.value.field == field
    assert requests.query(requests.LogsQuery, {"follow": "true"}).follow is True
    with pytest.raises(requests.Invalid, match="follow: must be true or false"):
        requests.query(requests.LogsQuery, {"follow": "sometimes"})


def test_the_answers_services_make_are_the_contracts_models():
    from services.registry import tasks
    from services.scheduler import executions

    task = SimpleNamespace(id="t" * 32, name="app", repository="a/b", status="READY", error=None, digest="a/b@x",
                           image_id="sha256:x", created_at=1.0, updated_at=2.0, imported_at=2.0, credentials=None)
    assert set(tasks.as_dict(task)) == set(responses.Task.model_fields)
    responses.Task.model_validate(tasks.as_dict(task))
    counters = dict(n_complete=1, n_error=0, n_killed=0, n_cancelled=0, n_running=0)
    result = SimpleNamespace(id="r" * 32, task_id="t" * 32, task_name="app", status="COMPLETE", submitted_at=1.0,
                             start=1.0, end=2.0, times=1, image="a/b@x", params={"times": 1}, cancel_requested=False,
                             rerun_of=None, reruns=[], ended_by=None, deadline_at=None, parallelism=None,
                             priority=5, waiting_for=None, reason=None, **counters)
    answer = {**executions.result_as_dict(result), "durations": {"p50": 1.0, "p95": 1.0}, "webhook": None}
    assert set(answer) == set(responses.Result.model_fields)
    responses.Result.model_validate(answer)
    detail = SimpleNamespace(id="d" * 32, result_id="r" * 32, task_id="t" * 32, index=0, status="QUEUED",
                             submitted_at=1.0, start=None, end=None, exit_code=None, reason=None, runner=None,
                             attempt=1, attempts=[], params={"env": {"A": "1"}})
    assert set(executions.detail_as_dict(detail)) == set(responses.Detail.model_fields)
    responses.Detail.model_validate(executions.detail_as_dict(detail))


def nested(levels, leaf):
    """``leaf`` inside ``levels`` arrays and objects, alternately."""
    for level in range(levels):
        leaf = [leaf] if level % 2 else {"k": leaf}
    return leaf


@pytest.mark.parametrize("extra", [
    nested(30, "x"), nested(30, {}), nested(31, []), nested(31, "x"), nested(10, "a\x01b"), nested(9, {"a\x01": 1}),
    nested(12, [1.5, True, None, "ok"]),
])
def test_a_bodys_other_fields_are_described_as_the_gateway_checks_them(extra):
    # the spec writes them level by level (no recursion, which openapi-python-client cannot read) down to the
    # gateway's depth limit, every string without control characters
    from services.gateway.inputs import _depth

    spec = openapi.spec()
    schema = jsonschema_rs.Draft202012Validator({**spec["components"]["schemas"]["NewTask"],
                                                 "components": spec["components"]})
    body = {"repository": "alpine", "extra": extra}
    try:
        checks.check_strings(body)
        accepted = not _depth(body, MAX_JSON_DEPTH)
    except checks.Invalid:
        accepted = False
    assert schema.is_valid(body) == accepted
