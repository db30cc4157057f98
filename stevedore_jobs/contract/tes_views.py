"""GA4GH TES v1.1 responses and query parameters, and the OpenAPI description of the TES routes.

``spec()`` is served at ``/ga4gh/tes/v1/openapi.json``, beside Stevedore's own
``/openapi.json``: the paths of TES 1.1 with the models of
stevedore_jobs/contract/tes.py (requests) and this module (responses).
"""
import functools
from typing import Annotated, Optional

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import models_json_schema

from stevedore_jobs.contract import tes
from stevedore_jobs.contract.labels import FILTERS_MAX

PAGE_DEFAULT = 256
PAGE_MAX = 2048
PREFIX = "/ga4gh/tes/v1"


class Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ExecutorLog(Out):
    start_time: Optional[str] = None
    end_time: Optional[str] = None
    stdout: Optional[str] = Field(None, description="the executor's last output (at most TES_LOG_BYTES), "
                                                    "empty when it was sent to a file (stdout)")
    stderr: Optional[str] = None
    exit_code: int


class OutputFileLog(Out):
    url: str
    path: str
    size_bytes: str = Field(description="as TES 1.1 has it: an integer in a string")


class TaskLog(Out):
    logs: list[ExecutorLog]
    metadata: Optional[dict[str, str]] = None
    start_time: Optional[str] = None
    end_time: Optional[str] = None
    outputs: list[OutputFileLog]
    system_logs: Optional[list[str]] = None


class Task(Out):
    """A TES task as ``GET /tasks/{id}`` shows it; MINIMAL has ``id`` and ``state`` only, BASIC leaves out
    the executors' output, the inputs' content and the system logs."""

    id: Optional[str] = None
    state: Optional[tes.State] = None
    name: Optional[str] = None
    description: Optional[str] = None
    inputs: Optional[list[tes.Input]] = None
    outputs: Optional[list[tes.Output]] = None
    resources: Optional[tes.Resources] = None
    executors: Optional[list[tes.Executor]] = None
    volumes: Optional[list[str]] = None
    tags: Optional[dict[str, str]] = None
    logs: Optional[list[TaskLog]] = None
    creation_time: Optional[str] = None


class CreateTaskResponse(Out):
    id: str


class ListTasksResponse(Out):
    tasks: list[Task]
    next_page_token: Optional[str] = None


class ServiceType(Out):
    group: str
    artifact: str
    version: str


class Organization(Out):
    name: str
    url: str


class ServiceInfo(Out):
    id: str
    name: str
    type: ServiceType
    description: Optional[str] = None
    organization: Organization
    version: str
    storage: Optional[list[str]] = None
    tesResources_backend_parameters: Optional[list[str]] = None


class TaskQuery(BaseModel):
    """``?view=`` of ``GET /tasks/{id}``."""

    model_config = ConfigDict(strict=True, extra="ignore")
    view: tes.View = "MINIMAL"


# a task's id, and its submitted_at: the next page goes on from where it was, should it be deleted meanwhile
PAGE_TOKEN_PATTERN = r"^[0-9a-f]{1,32}(_[0-9]{1,12}\.[0-9]{1,20})?$"


class ListQuery(TaskQuery):
    """The query parameters of ``GET /tasks``; ``tag_key``/``tag_value`` pair by position (TES 1.1): a key
    without a value asks only that the tag be set."""

    name_prefix: Optional[Annotated[str, Field(max_length=tes.TEXT_MAX)]] = None
    state: Optional[tes.State] = None
    tag_key: Optional[Annotated[list[Annotated[str, Field(max_length=317)]], Field(max_length=FILTERS_MAX)]] = None
    tag_value: Optional[Annotated[list[Annotated[str, Field(max_length=63)]], Field(max_length=FILTERS_MAX)]] = None
    page_size: Annotated[int, Field(ge=1, le=PAGE_MAX, strict=False)] = PAGE_DEFAULT
    page_token: Optional[Annotated[str, Field(max_length=64, pattern=PAGE_TOKEN_PATTERN)]] = None


def _parameters(model, where="query"):
    schema = model.model_json_schema()
    return [{"name": name, "in": where, "required": False, "schema": prop,
             **({"style": "form", "explode": True} if prop.get("type") == "array" else {})}
            for name, prop in schema["properties"].items()]


def _json(name):
    return {"application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}}


def _answer(description, name=None):
    return {"description": description, **({"content": _json(name)} if name else {})}


ERRORS = {"400": _answer("The request is malformed: the message names the field", "Error"),
          "401": _answer("The request is unauthorized (no valid bearer token)", "Error"),
          "404": _answer("The requested resource was not found", "Error")}


@functools.cache
def spec():
    """TES 1.1's paths under ``/ga4gh/tes/v1`` as Stevedore serves them (OpenAPI 3.1)."""
    _, defs = models_json_schema(
        [(m, "serialization") for m in (Task, CreateTaskResponse, ListTasksResponse, ServiceInfo)]
        + [(tes.NewTask, "validation")], ref_template="#/components/schemas/{model}")
    schemas = defs["$defs"]
    schemas["Error"] = {"type": "object", "required": ["error", "message"],
                        "properties": {"error": {"type": "string"}, "message": {"type": "string"}}}
    task_id = {"name": "id", "in": "path", "required": True, "schema": {"type": "string", "maxLength": 32}}
    paths = {
        "/service-info": {"get": {"operationId": "GetServiceInfo", "summary": "about this TES service",
                                  "responses": {"200": _answer("service info", "ServiceInfo"), **ERRORS}}},
        "/tasks": {
            "get": {"operationId": "ListTasks", "summary": "list tasks, newest first",
                    "parameters": _parameters(ListQuery),
                    "responses": {"200": _answer("a page of tasks", "ListTasksResponse"), **ERRORS}},
            "post": {"operationId": "CreateTask", "summary": "create a task (a Stevedore run of one execution)",
                     "requestBody": {"required": True, "content": _json("NewTask")},
                     "responses": {"200": _answer("the new task's id", "CreateTaskResponse"), **ERRORS}}},
        "/tasks/{id}": {"get": {"operationId": "GetTask", "summary": "one task, in a view",
                                "parameters": [task_id, *_parameters(TaskQuery)],
                                "responses": {"200": _answer("the task", "Task"), **ERRORS}}},
        "/tasks/{id}:cancel": {"post": {"operationId": "CancelTask",
                                        "summary": "cancel a task (200 also for one that ended)",
                                        "parameters": [task_id],
                                        "responses": {"200": _answer("cancelled, or ended already"),
                                                      **ERRORS}}},
    }
    return {"openapi": "3.1.0",
            "info": {"title": "Task Execution Service (GA4GH TES v1.1) on Stevedore", "version": "1.1.0",
                     "description": "See docs/tes.md for how TES maps onto Stevedore's runs."},
            "servers": [{"url": PREFIX}],
            "security": [{"bearer": []}],
            "paths": paths,
            "components": {"schemas": schemas,
                           "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}}}
