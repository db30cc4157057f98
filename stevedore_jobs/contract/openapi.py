"""The OpenAPI 3.1 description of the API, made from the contract's models.

``spec(limits)`` is what the gateway serves at /openapi.json, with the
installation's maxima (``Limits``) in the RUN body's schema.
"""
import copy
import functools
import json

from pydantic.json_schema import models_json_schema

from stevedore_jobs.contract import requests as rq
from stevedore_jobs.contract import responses as rs
from stevedore_jobs.contract import run as runs
from stevedore_jobs.contract import audit, fleet
from stevedore_jobs.contract import principals as pr
from stevedore_jobs.contract import schedule as sc
from stevedore_jobs.contract import secrets as sx
from stevedore_jobs.contract import statuses as st
from stevedore_jobs.contract.change import ResultChange
from stevedore_jobs.contract.checks import NO_CONTROL
from stevedore_jobs.contract.openapi_parts import (  # noqa: F401 -- VERSION, REF are read through here too
    LINK, REF, UNKNOWN_AFTER, VERSION, array, conflict, error, header, json_content, json_value, json_values,
    location, not_found, ok, operation, path_ids, query_parameters, ref)


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


def token_paths():
    """/token/, /token/{token_id}/ (admin) and /whoami/ (stevedore_jobs/contract/principals.py)."""
    return {
        "/token/": {
            "get": operation("API tokens, newest first (never a token itself, nor its hash); admin only",
                             {**ok("a page of tokens", array("Token"), **LINK), **UNKNOWN_AFTER},
                             query_parameters(pr.TokenListQuery)),
            "post": operation("a new token for a principal, made with its team and role if new; admin only",
                              {**ok("the token, shown this once", ref("NewTokenAnswer"), "201",
                                    **location("token")),
                               **conflict("the principal exists with another team, role or kind")},
                              request=ref("NewToken"), changes=True)},
        "/token/{token_id}/": {
            "parameters": path_ids("token_id"),
            "delete": operation("revoke the token: refused on every gateway within a second; admin only",
                                {"204": {"description": "revoked (or revoked already)"}, **not_found("token")},
                                changes=True)},
        "/whoami/": {"get": operation("who the caller is: principal, role, the team it acts for, the teams it "
                                      "may pick", ok("the caller", ref("Whoami")))},
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
                               **conflict("the run already ended (CANCEL); nothing to rerun, still "
                                          "going, or rerun RERUN_MAX times already (RERUN_FAILED)")},
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
        **token_paths(),
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
    """The IANA timezone names a schedule may have (``sc.timezone_keys``)."""
    return sorted(sc.timezone_keys())


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
    models += [(pr.NewToken, "validation"), (pr.Token, "serialization"), (pr.NewTokenAnswer, "serialization"),
               (pr.Whoami, "serialization")]
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
                                f"{runs.size_text(limits.max_memory)}, CONTAINER_MAX_CPUS {limits.max_cpus:g}, CONTAINER_MAX_DISK "
                                f"{runs.size_text(limits.max_disk)}."},
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer",
                           "description": "one of STEVEDORE_TOKENS (an admin), or a principal's token (POST /token/)"},
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
