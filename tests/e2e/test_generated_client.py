"""A client generated from the served /openapi.json by a stock generator registers a task, runs it and reads its details.

openapi-python-client writes the client as it would for anyone; the test finds
each endpoint's function by the method and path it calls (not by the names the
generator derives, which follow the spec's operation ids), builds request
bodies with the generated models and reads answers through them, so an answer
the spec does not describe fails here.
"""
import importlib
import inspect
import os
import pkgutil
import re
import subprocess
import sys
import typing
import uuid

import pytest
import requests

from tests.support import wait_until

pytestmark = pytest.mark.e2e

PACKAGE = "stevedore_generated"


@pytest.fixture(scope="module")
def generated(system, tmp_path_factory):
    """The generated package, imported: (its module, a client holding the API token)."""
    work = tmp_path_factory.mktemp("generated")
    spec = work / "openapi.json"
    answer = requests.get(system.url + "/openapi.json", timeout=30)
    assert answer.status_code == 200, answer.text
    spec.write_bytes(answer.content)
    config = work / "config.yml"
    config.write_text(f"package_name_override: {PACKAGE}\npost_hooks: []\n")
    generator = os.path.join(os.path.dirname(sys.executable), "openapi-python-client")
    done = subprocess.run([generator, "generate", "--path", str(spec), "--config", str(config),
                           "--meta", "none", "--output-path", str(work / PACKAGE)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Warning" not in done.stdout + done.stderr, done.stdout + done.stderr
    sys.path.insert(0, str(work))
    try:
        package = importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(work))
    client = package.AuthenticatedClient(base_url=system.url, token=system.token,
                                         raise_on_unexpected_status=True, timeout=30)
    yield package, client
    client.get_httpx_client().close()
    for name in [name for name in sys.modules if name == PACKAGE or name.startswith(PACKAGE + ".")]:
        del sys.modules[name]


def endpoint(package, method, path):
    """The generated module whose request is ``method path`` (path as the spec writes it)."""
    api = importlib.import_module(f"{package.__name__}.api")
    for info in pkgutil.walk_packages(api.__path__, api.__name__ + "."):
        module = importlib.import_module(info.name)
        source = inspect.getsource(module) if hasattr(module, "_get_kwargs") else ""
        if (f'"method": "{method.lower()}"' in source
                and re.search(r'"url": (f?)"' + re.escape(path) + '"', source)):
            return module
    raise AssertionError(f"the generated client has no function for {method} {path}")


def generated_body(annotation, body):
    """``body`` as the generated model the endpoint takes; for a oneOf body (a union of models: RUN or IMPORT),
    the one model that reads it."""
    models = typing.get_args(annotation) or (annotation,)
    read = []
    for model in models:
        try:
            read.append(model.from_dict(body))
        except (KeyError, TypeError, ValueError):
            continue
    assert len(read) == 1, f"{len(read)} of the generated models {models} read {body!r}"
    return read[0]


def call(generated, method, path, body=None, **arguments):
    """Call an endpoint through the generated client; its parsed answer as plain data (to_dict)."""
    package, client = generated
    module = endpoint(package, method, path)
    if body is not None:
        arguments["body"] = generated_body(inspect.signature(module.sync_detailed).parameters["body"].annotation, body)
    response = module.sync_detailed(client=client, **arguments)
    assert 200 <= response.status_code < 300, (response.status_code, response.content)
    parsed = response.parsed
    assert parsed is not None, f"{method} {path}: the generated client could not read {response.content!r}"
    if isinstance(parsed, list):
        return [item.to_dict() for item in parsed]
    return parsed.to_dict()


def test_a_generated_client_registers_a_task_runs_it_and_reads_its_details(generated, test_images):
    task = call(generated, "POST", "/task/",
                body={"repository": test_images["ok"], "name": f"generated-{uuid.uuid4().hex[:8]}"})
    assert task["status"] == "SUBMITTED"

    def ready():
        read = call(generated, "GET", "/task/{task_id}/", task_id=task["task_id"])
        return read if read["status"] in ("READY", "ERROR") else None

    assert wait_until(ready, timeout=60, what="the task to be READY")["status"] == "READY"

    run = call(generated, "POST", "/task/{task_id}/", task_id=task["task_id"],
               body={"operation": "RUN", "times": 2, "command": ["sh", "-c", "echo $GREETING"],
                     "env": {"GREETING": "from a generated client"}})
    assert run["status"] == "QUEUED"

    def finished():
        read = call(generated, "GET", "/result/{result_id}/", result_id=run["result_id"])
        return read if read["status"] not in ("QUEUED", "RUNNING") else None

    result = wait_until(finished, timeout=120, interval=0.5, what="the run to end")
    assert result["status"] == "COMPLETE"
    assert result["counts"]["COMPLETE"] == 2

    details = call(generated, "GET", "/result/{result_id}/detail/", result_id=run["result_id"])
    assert sorted(detail["index"] for detail in details) == [0, 1]
    assert all(detail["status"] == "COMPLETE" and detail["exit_code"] == 0 for detail in details)
    detail = call(generated, "GET", "/result/{result_id}/detail/{detail_id}/",
                  result_id=run["result_id"], detail_id=details[0]["detail_id"])
    assert detail["detail_id"] == details[0]["detail_id"] and detail["duration"] >= 0
    logs = call(generated, "GET", "/result/{result_id}/detail/{detail_id}/logs/",
                result_id=run["result_id"], detail_id=details[0]["detail_id"])
    assert logs["stdout"] == "from a generated client\n"
