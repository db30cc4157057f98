"""The gateway's OpenAPI 3.0 description, served at /openapi.json."""
import copy

from nameko.extensions import DependencyProvider

from shared import validation
from shared.settings import settings_of

ID = {"type": "string", "maxLength": 32}
EPOCH = {"type": "number", "nullable": True}
STATUS = {"type": "string", "enum": ["QUEUED", "RUNNING", "COMPLETE", "ERROR", "CANCELLED", "KILLED"]}
TASK_STATUS = {"type": "string", "enum": ["SUBMITTED", "IMPORTING", "READY", "ERROR"]}


def ref(name):
    return {"$ref": f"#/components/schemas/{name}"}


def json_content(schema):
    return {"application/json": {"schema": schema}}


def answer(description, schema=None):
    return {"description": description, "content": json_content(schema or ref("Error"))}


ERRORS = {
    "400": answer("invalid request; the message names the field"),
    "401": answer("no valid API token"),
    "404": answer("no such task, result or detail"),
    # refused at the HTTP edge (services/gateway/edge.py, docs/api.md "Refused at the edge")
    "408": answer("the request's head or body took too long"),
    "413": answer("the body is over HTTP_MAX_BODY_BYTES"),
    "429": answer("this client address has too many connections open"),
    "431": answer("the headers are over HTTP_MAX_HEADER_BYTES"),
}
PAGING = [
    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000}},
    {"name": "after", "in": "query", "schema": {"type": "string"}},
]


def path_id(name):
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


def operation_body(*operations, **extra):
    props = {"operation": {"type": "string", "enum": list(operations)}, **extra}
    return {"required": True, "content": json_content(
        {"type": "object", "required": ["operation"], "properties": props})}


SPEC = {
    "openapi": "3.0.3",
    "info": {"title": "Stevedore", "version": "0.1.0",
             "description": "Register Docker images as tasks, run them N times, see what happened."},
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "schemas": {
            "Error": {"type": "object", "required": ["error", "message"],
                      "properties": {"error": {"type": "string"}, "message": {"type": "string"}}},
            "Task": {"type": "object", "required": ["task_id", "name", "repository", "status"], "properties": {
                "task_id": ID, "id": ID, "name": {"type": "string"}, "repository": {"type": "string"},
                "status": TASK_STATUS, "error": {"type": "string", "nullable": True},
                "digest": {"type": "string", "nullable": True}, "created_at": {"type": "number"},
                "updated_at": {"type": "number"}, "imported_at": EPOCH}},
            "Result": {"type": "object", "required": ["result_id", "task_id", "status", "submitted_at", "start",
                                                      "end", "duration"], "properties": {
                "result_id": ID, "id": ID, "task_id": ID, "status": STATUS, "submitted_at": {"type": "number"},
                "start": EPOCH, "end": EPOCH, "duration": EPOCH, "times": {"type": "integer"},
                "counts": {"type": "object", "additionalProperties": {"type": "integer"}},
                "params": {"type": "object"}}},
            "Detail": {"type": "object", "required": ["result_id", "detail_id", "task_id", "status",
                                                      "submitted_at", "start", "end", "duration"], "properties": {
                "result_id": ID, "detail_id": ID, "id": ID, "task_id": ID, "status": STATUS,
                "submitted_at": {"type": "number"}, "start": EPOCH, "end": EPOCH, "duration": EPOCH,
                "index": {"type": "integer"}, "attempt": {"type": "integer"},
                "exit_code": {"type": "integer", "nullable": True},
                "reason": {"type": "string", "nullable": True}, "runner": {"type": "string", "nullable": True}}},
            "Logs": {"type": "object", "required": ["stdout", "stderr", "encoding"], "properties": {
                "detail_id": ID, "status": STATUS, "attempt": {"type": "integer"},
                "logs_attempt": {"type": "integer", "description": "the attempt whose output this is"},
                "encoding": {"type": "string", "enum": ["utf-8"],
                             "description": "stdout/stderr are the kept bytes decoded as UTF-8, invalid "
                                            "sequences replaced by U+FFFD; the exact bytes: .../logs/stdout/"},
                **{f"{stream}{suffix}": schema for stream in ("stdout", "stderr") for suffix, schema in (
                    ("", {"type": "string"}),
                    ("_bytes", {"type": "integer", "description": "bytes kept"}),
                    ("_head", {"type": "integer",
                               "description": "of the kept bytes, how many are the stream's first bytes"}),
                    ("_head_chars", {"type": "integer",
                                     "description": "characters of the text those head bytes decode to"}),
                    ("_omitted", {"type": "integer",
                                  "description": "bytes left out after the head (the rest are the last bytes)"}),
                    ("_total", {"type": "integer", "description": "bytes the stream produced"}),
                    ("_truncated", {"type": "boolean", "description": "whether any bytes were omitted"}))}}},
        },
    },
    "security": [{"bearer": []}],
    "paths": {
        "/health/": {"get": {"security": [], "responses": {
            "200": answer("all services answer", {"type": "object"}),
            "503": answer("a service or the database does not answer")}}},
        "/metrics": {"get": {
            "description": "Cluster-wide figures in the Prometheus text format (docs/metrics.md); "
                           "public only when METRICS_PUBLIC is on.",
            "responses": {
                "200": {"description": "stevedore_executions{status} and stevedore_queue_depth gauges",
                        "content": {"text/plain": {"schema": {"type": "string"}}}},
                "401": answer("no valid API token"),
                "503": answer("the scheduler does not answer")}}},
        "/task/": {
            "get": {"parameters": PAGING + [{"name": "status", "in": "query", "schema": TASK_STATUS}],
                    "responses": {"200": answer("tasks, newest first", {"type": "array", "items": ref("Task")}),
                                  **ERRORS}},
            "post": {"parameters": [{"name": "Idempotency-Key", "in": "header", "schema": {"type": "string"}}],
                     "requestBody": {"required": True, "content": json_content({
                         "type": "object", "required": ["repository"], "properties": {
                             "repository": {"type": "string"}, "name": {"type": "string"}}})},
                     "responses": {"201": answer("registered; the image is being pulled", ref("Task")),
                                   "409": answer("the name is taken"), **ERRORS}},
        },
        "/task/{task_id}/": {
            "parameters": [path_id("task_id")],
            "get": {"responses": {"200": answer("the task", ref("Task")), **ERRORS}},
            "post": {"requestBody": operation_body(
                "RUN", "IMPORT", times={"type": "integer", "minimum": 1, "maximum": 100000},
                command={"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
                env={"type": "object", "additionalProperties": {"type": "string"}},
                timeout={"type": "number"}, parallelism={"type": "integer"}, retries={"type": "integer"},
                memory={"type": "string"}, cpus={"type": "number"},
                priority={"type": "integer", "minimum": 0, "maximum": 9}),
                "responses": {"202": answer("a result (RUN) or the task (IMPORT)", {"type": "object"}),
                              "409": answer("the task is not READY"), **ERRORS}},
            "delete": {"responses": {"204": {"description": "deleted"},
                                     "409": answer("the task has active runs"), **ERRORS}},
        },
        "/result/": {"get": {
            "parameters": PAGING + [{"name": "status", "in": "query", "schema": STATUS},
                                    {"name": "task_id", "in": "query", "schema": {"type": "string"}}],
            "responses": {"200": answer("results, newest first", {"type": "array", "items": ref("Result")}),
                          **ERRORS}}},
        "/result/{result_id}/": {
            "parameters": [path_id("result_id")],
            "get": {"responses": {"200": answer("the result", ref("Result")), **ERRORS}},
            "post": {"requestBody": operation_body("CANCEL", "RERUN_FAILED"),
                     "responses": {"202": answer("cancelled, or the new rerun", ref("Result")),
                                   "409": answer("already ended / nothing to rerun"), **ERRORS}},
            "delete": {"responses": {"204": {"description": "deleted, with its executions and their output"},
                                     "409": answer("the run is still QUEUED or RUNNING"), **ERRORS}},
        },
        "/result/{result_id}/detail/": {
            "parameters": [path_id("result_id")],
            "get": {"parameters": PAGING + [{"name": "status", "in": "query", "schema": STATUS}],
                    "responses": {"200": answer("the executions", {"type": "array", "items": ref("Detail")}),
                                  **ERRORS}}},
        "/result/{result_id}/detail/{detail_id}/": {
            "parameters": [path_id("result_id"), path_id("detail_id")],
            "get": {"responses": {"200": answer("the execution", ref("Detail")), **ERRORS}},
            "post": {"requestBody": operation_body("CANCEL"),
                     "responses": {"202": answer("cancelled", ref("Detail")),
                                   "409": answer("already ended"), **ERRORS}},
        },
        "/result/{result_id}/detail/{detail_id}/logs/": {
            "parameters": [path_id("result_id"), path_id("detail_id")],
            "get": {"parameters": [{"name": "follow", "in": "query", "schema": {"type": "boolean"}}],
                    "responses": {"200": {
                        "description": "its output as text; with follow=true, server-sent events "
                                       "(stdout, stderr, skipped, attempt, end) until it ends",
                        "content": {**json_content(ref("Logs")),
                                    "text/event-stream": {"schema": {"type": "string"}}}},
                        "503": answer("with follow=true: FOLLOW_MAX followers already on this gateway "
                                      "(Retry-After says when to try again)"), **ERRORS}}},
        "/result/{result_id}/detail/{detail_id}/logs/{stream}/": {
            "parameters": [path_id("result_id"), path_id("detail_id"),
                           {"name": "stream", "in": "path", "required": True,
                            "schema": {"type": "string", "enum": ["stdout", "stderr"]}}],
            "get": {"responses": {"200": {
                "description": "the stream's kept bytes exactly: the first Stevedore-Head-Bytes are its "
                               "first bytes, then Stevedore-Omitted-Bytes were left out, the rest are its last",
                "headers": {name: {"schema": {"type": schema}} for name, schema in (
                    ("Stevedore-Head-Bytes", "integer"), ("Stevedore-Omitted-Bytes", "integer"),
                    ("Stevedore-Total-Bytes", "integer"), ("Stevedore-Status", "string"),
                    ("Stevedore-Attempt", "integer"))},
                "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}},
                **ERRORS}}},
    },
}


def spec_with_ceilings(max_memory_text, max_cpus):
    """SPEC with the operator's ceilings of a RUN's ``memory`` and ``cpus`` stated."""
    spec = copy.deepcopy(SPEC)
    props = (spec["paths"]["/task/{task_id}/"]["post"]["requestBody"]["content"]["application/json"]
             ["schema"]["properties"])
    props["memory"] = {"type": "string", "pattern": "^[0-9]+[bkmgBKMG]?$",
                       "description": f"memory limit of each execution, e.g. \"256m\"; from 6m to "
                                      f"{max_memory_text} (this installation's ceiling)"}
    props["cpus"] = {"type": "number", "minimum": 0.01, "maximum": max_cpus,
                     "description": "CPUs each execution may use (this installation's ceiling is the maximum)"}
    return spec


class ServedSpec(DependencyProvider):
    """The spec /openapi.json serves, made once at start with the operator's ceilings.

    A bad ``CONTAINER_MAX_MEMORY`` or ``CONTAINER_MAX_CPUS`` stops the gateway,
    naming the setting (as it stops the scheduler), instead of a 500 per request.
    """

    def setup(self):
        max_memory, max_cpus = settings_of(self.container).ceilings
        self.spec = spec_with_ceilings(validation.size_text(max_memory), max_cpus)

    def get_dependency(self, worker_ctx):
        return self.spec
