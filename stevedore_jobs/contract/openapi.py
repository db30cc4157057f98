"""The OpenAPI 3.1 description of the API, made from the contract's models.

``spec(limits)`` is what the gateway serves at /openapi.json, with the
installation's maxima (``Limits``) in the RUN body's schema.
"""
import copy
import functools
import json
import zoneinfo

from pydantic.json_schema import models_json_schema

from stevedore_jobs.contract import requests as rq
from stevedore_jobs.contract import responses as rs
from stevedore_jobs.contract import run as runs
from stevedore_jobs.contract import audit, fleet
from stevedore_jobs.contract import schedule as sc
from stevedore_jobs.contract import secrets as sx
from stevedore_jobs.contract import statuses as st
from stevedore_jobs.contract.change import ResultChange
from stevedore_jobs.contract.checks import ID_PATTERN, MAX_JSON_DEPTH, NO_CONTROL

VERSION = "0.1.0"
REF = "#/components/schemas/{model}"


def ref(name):
    return {"$ref": REF.format(model=name)}


def json_content(schema):
    return {"application/json": {"schema": schema}}


def error(description, **headers):
    answer = {"description": description, "content": json_content(ref("Error"))}
    if headers:
        answer["headers"] = {name: {"schema": {"type": kind}, "description": text}
                             for name, (kind, text) in headers.items()}
    return answer


def header(kind, description):
    return {"schema": {"type": kind}, "description": description}


# what any request may be answered, before or beside what its endpoint does (docs/api.md "Errors")
DOOR = {
    "400": error("invalid request: the message names the field (a path value or query parameter with "
                 "control characters included)"),
    "408": error("the request's head or body took too long"),
    "413": error("the body is over HTTP_MAX_BODY_BYTES"),
    "414": error("the request line is 8 KiB or more"),
    "429": error("this client address has too many connections open"),
    "431": error("the headers are over HTTP_MAX_HEADER_BYTES"),
    "503": error("the gateway holds HTTP_MAX_CONNECTIONS connections, or a service does not answer"),
}
AUTH = {"401": error("no valid API token (or sign-in session)",
                     **{"WWW-Authenticate": ("string", 'Bearer realm="stevedore"')})}
CROSS_SITE = {"403": error("a cross-site request with the sign-in cookie")}
LINK = {"Link": header("string", 'the next page: </result/?limit=100&after=ID>; rel="next" (only when more exist)')}


def location(what):
    return {"Location": header("string", f"the {what}'s path")}


def not_found(what):
    return {"404": error(f"no such {what}")}


UNKNOWN_AFTER = not_found("item to list after (`after`)")


def conflict(when):
    return {"409": error(when)}


def json_value(depth):
    """The name of the schema of a JSON value at ``depth`` in a body (the body is 1, its fields' values 2)."""
    return "JSONValue" if depth == 2 else f"JSONValueAtDepth{depth}"


def json_values():
    """Any JSON value whose strings (keys too) hold no control character, nested as deep as a body may.

    Written level by level rather than as one recursive schema: openapi-python-client cannot parse
    a union that refers to itself, and the levels also state the gateway's depth limit
    (MAX_JSON_DEPTH): at the last level an array or object must be empty.
    """
    schemas = {}
    for depth in range(2, MAX_JSON_DEPTH + 1):
        deeper = {"$ref": REF.format(model=json_value(depth + 1))} if depth < MAX_JSON_DEPTH else None
        # the items' schema under allOf: openapi-python-client (which reads `items` only) then writes a plain
        # list, not loops nested as deep as the levels (Python allows 20 nested blocks)
        array = {"type": "array", "items": {}, **({"allOf": [{"items": deeper}]} if deeper else {"maxItems": 0})}
        thing = {"title": f"JSONObjectAtDepth{depth}", "type": "object", "propertyNames": {"pattern": NO_CONTROL}}
        thing.update({"additionalProperties": deeper} if deeper else {"maxProperties": 0})
        schemas[json_value(depth)] = {
            "description": f"any JSON value whose strings (keys too) hold no control character, at level {depth} "
                           f"of a body that nests at most {MAX_JSON_DEPTH} levels",
            "anyOf": [{"type": "string", "pattern": NO_CONTROL}, {"type": "number"}, {"type": "boolean"},
                      {"type": "null"}, array, thing]}
    return schemas


def _drop_null(schema):
    """A query parameter's schema: a value is either given or not, never null."""
    schema = {key: value for key, value in schema.items() if key not in ("default", "title")}
    options = [option for option in schema.pop("anyOf", []) if option.get("type") != "null"]
    if options:
        schema.update(options[0] if len(options) == 1 else {"anyOf": options})
    return schema


def query_parameters(model):
    schema = model.model_json_schema()
    return [{"name": name, "in": "query", "required": False, "schema": _drop_null(prop),
             **({"description": prop["description"]} if "description" in prop else {})}
            for name, prop in schema["properties"].items()]


def path_ids(*names):
    # an id of another shape is a 404 like an unknown one
    return [{"name": name, "in": "path", "required": True, "schema": {"type": "string", "pattern": ID_PATTERN}}
            for name in names]


def body(schema):
    return {"required": True, "content": json_content(schema)}


def operation(summary, responses, parameters=(), request=None, public=False, changes=False):
    op = {"summary": summary, "parameters": list(parameters),
          "responses": {**responses, **DOOR, **({} if public else AUTH),
                        **(CROSS_SITE if changes and not public else {})}}
    if request is not None:
        op["requestBody"] = body(request)
    if public:
        op["security"] = []
    if not op["parameters"]:
        del op["parameters"]
    return op


def ok(description, schema, status="200", **headers):
    answer = {"description": description, "content": json_content(schema)}
    if headers:
        answer["headers"] = headers
    return {status: answer}


def array(name):
    return {"type": "array", "items": ref(name)}


def schedule_paths(idempotency):
    """/schedule/ and /schedule/{schedule_id}/ (stevedore_jobs/contract/schedule.py)."""
    return {
        "/schedule/": {
            "get": operation("schedules, newest first",
                             {**ok("a page of schedules", array("Schedule"), **LINK), **UNKNOWN_AFTER},
                             query_parameters(sc.ScheduleListQuery)),
            "post": operation("run a task on a cron schedule",
                              {**ok("the schedule, with its next_run_at", ref("Schedule"), "201",
                                    **location("schedule")), **not_found("task"),
                               **conflict("the Idempotency-Key was used for a schedule of another task, or the "
                                          "run's `task_id` names another task")},
                              [idempotency], ref("NewSchedule"), changes=True)},
        "/schedule/{schedule_id}/": {
            "parameters": path_ids("schedule_id"),
            "get": operation("the schedule, with its last fires and failed fires",
                             {**ok("the schedule", ref("Schedule")), **not_found("schedule")}),
            "patch": operation("suspend, resume or change the schedule (fields not sent stay)",
                               {**ok("the schedule", ref("Schedule")), **not_found("schedule"),
                                **conflict("the run's `task_id` names another task than the schedule's")},
                               request=ref("ScheduleChange"), changes=True),
            "post": operation("RUN: run now, under the schedule's concurrency policy",
                              {**ok("the new result", ref("Result"), "202", **location("result")),
                               **not_found("schedule"),
                               **conflict("the task is not READY, the RUN is refused, or Forbid holds it back")},
                              request=ref("ScheduleOperation"), changes=True),
            "delete": operation("delete the schedule and its fires (the runs it started stay)",
                                {"204": {"description": "deleted"}, **not_found("schedule")}, changes=True)},
    }


def paths(idempotency):
    task, result, detail = path_ids("task_id"), path_ids("result_id"), path_ids("result_id", "detail_id")
    stream = {"name": "stream", "in": "path", "required": True, "schema": {"type": "string", "enum": ["stdout", "stderr"]}}
    deleted = {"204": {"description": "deleted"}}
    return {
        "/health/": {"get": operation(
            "200 when the gateway, registry and scheduler all answer (and reach the database)",
            ok("all services answer", ref("Health")), public=True)},
        "/openapi.json": {"get": operation(
            "this description, with the installation's maxima", ok("OpenAPI 3.1", {"type": "object"}), public=True)},
        "/metrics": {"get": operation(
            "cluster-wide figures in the Prometheus text format (public only when METRICS_PUBLIC is on)",
            {"200": {"description": "stevedore_executions{status}, stevedore_queue_depth, ...",
                     "content": {"text/plain": {"schema": {"type": "string"}}}}})},
        "/task/": {
            "get": operation("tasks, newest first",
                             {**ok("a page of tasks", array("Task"), **LINK), **UNKNOWN_AFTER},
                             query_parameters(rq.TaskListQuery)),
            "post": operation("register an image as a task: it is pulled and pinned to its digest",
                              {**ok("registered (or the same Idempotency-Key's task)", ref("Task"), "201",
                                    **location("task")),
                               **conflict("the name is taken, or the Idempotency-Key was used for another request")},
                              [idempotency], ref("NewTask"), changes=True)},
        "/task/{task_id}/": {
            "parameters": task,
            "get": operation("the task", {**ok("the task", ref("Task")), **not_found("task")}),
            "post": operation(
                "RUN the task's image `times` times, or IMPORT it again",
                {**ok("the new result (RUN, with Location) or the task, SUBMITTED again (IMPORT)",
                      {"anyOf": [ref("Result"), ref("Task")]}, "202", **location("result")),
                 **not_found("task"),
                 **conflict("the task is not READY (RUN), is being imported (IMPORT), the body's task_id "
                            "is another task, or the Idempotency-Key was used for another request")},
                [idempotency], {"oneOf": [ref("RunRequest"), ref("TaskOperation")],
                                "discriminator": {"propertyName": "operation", "mapping": {
                                    "RUN": REF.format(model="RunRequest"),
                                    "IMPORT": REF.format(model="TaskOperation")}}}, changes=True),
            "delete": operation("delete a task with no active runs (its results stay)",
                                {**deleted, **not_found("task"), **conflict("the task has QUEUED or RUNNING runs")},
                                changes=True)},
        "/result/": {"get": operation("results, newest first",
                                      {**ok("a page of results", array("Result"), **LINK), **UNKNOWN_AFTER},
                                      query_parameters(rq.ResultListQuery))},
        "/result/{result_id}/": {
            "parameters": result,
            "get": operation("the result, with durations and webhook",
                             {**ok("the result", ref("Result")), **not_found("result")}),
            "post": operation("CANCEL the run, or RERUN_FAILED: a new result running the executions that "
                              "ended ERROR or KILLED",
                              {**ok("the result (CANCEL) or the new one (RERUN_FAILED, with Location)",
                                    ref("Result"), "202", **location("rerun")),
                               **not_found("result"),
                               **conflict("the run already ended (CANCEL); nothing to rerun or still "
                                          "going (RERUN_FAILED)")},
                              request=ref("ResultOperation"), changes=True),
            "patch": operation("change a running run's parallelism and/or priority: its executions not yet "
                               "started are held to the new values (running ones go on)",
                               {**ok("the result, changed", ref("Result")), **not_found("result"),
                                **conflict("the run already ended, or is being cancelled")},
                               request=ref("ResultChange"), changes=True),
            "delete": operation("delete a run that ended, with its executions and their output",
                                {**deleted, **not_found("result"), **conflict("the run is QUEUED or RUNNING")},
                                changes=True)},
        "/result/{result_id}/detail/": {
            "parameters": result,
            "get": operation("the run's executions, by index",
                             {**ok("a page of executions", array("Detail"), **LINK),
                              **not_found("result, or no such item to list after")},
                             query_parameters(rq.DetailListQuery))},
        "/result/{result_id}/detail/{detail_id}/": {
            "parameters": detail,
            "get": operation("the execution", {**ok("the execution", ref("Detail")), **not_found("result or detail")}),
            "post": operation("CANCEL one execution",
                              {**ok("the execution", ref("Detail"), "202"), **not_found("result or detail"),
                               **conflict("the execution already ended")},
                              request=ref("DetailOperation"), changes=True)},
        "/result/{result_id}/detail/{detail_id}/logs/": {
            "parameters": detail,
            "get": operation(
                "the execution's output as text; with follow=true, server-sent events (stdout, stderr, "
                "skipped, attempt, end) until it ends",
                {"200": {"description": "the output (JSON), or its events (follow=true)",
                         "content": {**json_content(ref("Logs")),
                                     "text/event-stream": {"schema": ref("LogEvent")}}},
                 **not_found("result or detail"),
                 "503": error("with follow=true: FOLLOW_MAX followers already on this gateway, or a "
                              "service does not answer", **{"Retry-After": ("integer", "seconds")})},
                query_parameters(rq.LogsQuery))},
        "/result/{result_id}/detail/{detail_id}/logs/{stream}/": {
            "parameters": detail + [stream],
            "get": operation(
                "one stream's kept bytes exactly",
                {"200": {"description": "the first Stevedore-Head-Bytes are the stream's first bytes, then "
                                        "Stevedore-Omitted-Bytes were left out, the rest are its last",
                         "headers": {
                             "Stevedore-Head-Bytes": header("integer", "bytes from the stream's start"),
                             "Stevedore-Omitted-Bytes": header("integer", "bytes left out after them"),
                             "Stevedore-Total-Bytes": header("integer", "bytes the stream produced"),
                             "Stevedore-Status": header("string", "the execution's status"),
                             "Stevedore-Attempt": header("string", "the attempt whose output this is")},
                         "content": {"application/octet-stream": {"schema": {"type": "string",
                                                                             "format": "binary"}}}},
                 **not_found("result or detail")})},
        **schedule_paths(idempotency),
        "/runner/": {"get": operation(
            "the runners the scheduler heard from, by id: labels, slots busy and free, GPUs, last heartbeat",
            {**ok("a page of runners", array("Runner"), **LINK), **UNKNOWN_AFTER},
            query_parameters(fleet.RunnerListQuery))},
        "/audit/": {"get": operation(
            "the audit log, newest first: every change, who made it, from where and when (admins and "
            "operators only)",
            {**ok("a page of the audit log", array("AuditEntry"), **LINK), **UNKNOWN_AFTER,
             "403": error("the caller is neither an admin nor an operator")},
            query_parameters(audit.AuditListQuery))},
    }


REQUESTS = ("NewTask", "TaskOperation", "ResultOperation", "DetailOperation")
ANSWERS = ("Error", "Task", "Result", "Detail", "Logs", "LogEvent", "Health")
SCHEDULE_REQUESTS = ("NewSchedule", "ScheduleChange", "ScheduleOperation")


def timezones():
    """The IANA timezone names of this host's zone database (the image's tzdata), or [] without one."""
    zones = zoneinfo.available_timezones()
    return sorted(zones | {"UTC"}) if zones else []


def schedule_run_schema(run):
    """The RUN body's schema as a schedule's ``run``: ``operation`` may be left out, and what a fire cannot
    carry (``sc.NOT_IN_A_SCHEDULE``) is left out, so that it is an unknown field; ``times`` is then required."""
    schema = copy.deepcopy(run)
    schema["title"] = "ScheduleRunBody"
    schema["description"] = "a schedule's run: a RUN body; `operation` may be left out"
    for name in sc.NOT_IN_A_SCHEDULE:
        schema["properties"].pop(name, None)
    schema["required"] = [name for name in schema.get("required", []) if name != "operation"]
    rules = [rule for rule in schema.get("allOf", [])
             if not any(f'"{name}"' in json.dumps(rule) for name in sc.NOT_IN_A_SCHEDULE)]
    if not any(name in schema["properties"] for name in sc.PER_EXECUTION):  # then times says how many
        times = schema["properties"]["times"]
        options = [option for option in times.pop("anyOf", []) if option.get("type") != "null"]
        times.update(options[0] if options else {})
        times.pop("default", None)
        schema["required"].append("times")
    if rules:
        schema["allOf"] = rules
    else:
        schema.pop("allOf", None)
    return schema


@functools.lru_cache(maxsize=4)
def _spec(limits):
    from stevedore_jobs.contract import openapi_teams  # it builds on this module's parts

    models = [(getattr(rq, name), "validation") for name in REQUESTS] + [(runs.run_request(limits), "validation"),
                                                                          (ResultChange, "validation")]
    models += [(getattr(rs, name), "serialization") for name in ANSWERS]
    models += [(getattr(sc, name), "validation") for name in SCHEDULE_REQUESTS]
    models += [(sc.Schedule, "serialization"), (fleet.Runner, "serialization"), (audit.AuditEntry, "serialization")]
    models += [(sx.SecretValue, "validation"), (sx.Secret, "serialization"), *openapi_teams.MODELS]
    _, schemas = models_json_schema(models, ref_template=REF)
    components = dict(schemas.get("$defs", {}))
    # any JSON whose strings (keys too) hold no control character: what a body may carry besides its fields
    for name in REQUESTS + ("ScheduleOperation",):  # their other fields are ignored
        components[name].update(propertyNames={"pattern": NO_CONTROL}, additionalProperties=ref(json_value(2)))
    components.update(json_values())
    components["ScheduleRunBody"] = schedule_run_schema(components["RunRequest"])
    zones = timezones()
    for name in ("NewSchedule", "ScheduleChange"):
        if zones:  # the names the scheduler takes, as the schedulers of one installation have these: as a
            # pattern, not an enum (a generated client would make ~600 enum members, some of one name)
            components[name]["properties"]["timezone"]["pattern"] = (
                "^(?:" + "|".join(zone.replace("+", "\\+").replace(".", "\\.") for zone in zones) + ")$")
    components["NewSchedule"]["properties"]["run"] = {
        **ref("ScheduleRunBody"), "description": components["NewSchedule"]["properties"]["run"].get("description", "")}
    components["ScheduleChange"]["properties"]["run"] = ref("ScheduleRunBody")
    components["TaskStatus"] = {"type": "string", "enum": list(st.TASK_STATUSES),
                                "x-busy": sorted(st.TASK_BUSY)}
    components["ExecutionStatus"] = {"type": "string", "enum": list(st.EXECUTION_STATUSES),
                                     "x-active": [s for s in st.EXECUTION_STATUSES if s in st.ACTIVE],
                                     "x-terminal": [s for s in st.EXECUTION_STATUSES if s in st.TERMINAL]}
    idempotency = {"name": "Idempotency-Key", "in": "header", "required": False,
                   "description": "makes a retried request safe: the same key and request answer the first "
                                  "one's task or result; the same key for another request is 409",
                   "schema": {"type": "string", "minLength": 1, "maxLength": rq.IDEMPOTENCY_KEY_MAX,
                              "pattern": rq.IDEMPOTENCY_KEY_PATTERN}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "Stevedore", "version": VERSION,
                 "description": "Register Docker images as tasks, run them N times, see what happened. "
                                f"This installation: RUN_MAX_TIMES {limits.max_times}, CONTAINER_MAX_MEMORY "
                                f"{runs.size_text(limits.max_memory)}, CONTAINER_MAX_CPUS {limits.max_cpus:g}."},
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "one of STEVEDORE_TOKENS"},
                "session": {"type": "apiKey", "in": "cookie", "name": "stevedore_session",
                            "description": "the web UI's sign-in session (same-site requests only)"}},
            "schemas": components,
        },
        "security": [{"bearer": []}, {"session": []}],
        "paths": {**openapi_teams.quota_answers(paths(idempotency)), **sx.paths(), **openapi_teams.team_paths()},
    }


def spec(limits=rq.Limits()):
    """The OpenAPI document for an installation with ``limits`` (a copy: the caller may change it)."""
    return copy.deepcopy(_spec(limits))
