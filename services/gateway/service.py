"""Gateway: the HTTP API of the seed spec, fanned out over RabbitMQ RPC."""
import functools
import time

import eventlet
from werkzeug.wrappers import Response

from services.gateway import ui  # the module: `nameko run` would start a class imported here
from services.gateway.follow import CallerBound, FollowersProvider
from services.gateway.limits import RunLimits
from services.gateway.rawlogs import raw_response
from services.gateway.reads import SharedReads
from services.gateway import audit, schedules, secrets, teams, tes, tokens  # the modules, as ui
from services.gateway import access
from services.gateway.auth import admission, caller_of, who
from services.gateway.http import api
from services.gateway.inputs import idempotency_key, json_body, listing
from stevedore_jobs import contract
from stevedore_jobs.contract.change import ResultChange
from shared import validation
from shared.errors import Conflict, TaskUnconfirmed, Unavailable
from shared.extensions import Settings
from shared.metrics import cluster_exposition
from shared.sealing import SealingKey
from shared.rpc import TimeoutRpcProxy

HEALTH_TIMEOUT = 5


class GatewayService(ui.UiRoutes, schedules.ScheduleRoutes, tes.TesRoutes, secrets.SecretRoutes, audit.AuditRoutes,
                     teams.TeamRoutes, tokens.TokenRoutes):
    name = "gateway"

    registry = TimeoutRpcProxy("registry")
    scheduler = TimeoutRpcProxy("scheduler")
    settings = Settings()
    limits = RunLimits()
    reads = SharedReads()
    followers = FollowersProvider()
    sealer = SealingKey()  # seals a secret's value as it arrives (services/gateway/secrets.py)

    # --------------------------------------------------------------- tasks

    @api("GET", "/task/")
    def list_tasks(self, request):
        return listing(request, contract.TaskListQuery, self.registry.list_tasks, "task_id", "created_at")

    @api("POST", "/task/")
    def create_task(self, request):
        body = json_body(request)
        validation.new_task(body)
        task = self.registry.create_task(body, idempotency_key(request), caller=who(request))
        return 201, {"Location": f"/task/{task['task_id']}/"}, task

    @api("GET", "/task/<string:task_id>/")
    def get_task(self, request, task_id):
        return self.registry.get_task(task_id, caller=who(request))

    @api("POST", "/task/<string:task_id>/")
    def operate_task(self, request, task_id):
        body = json_body(request)
        key = idempotency_key(request)
        operation = validation.operation(body, ("RUN", "IMPORT"))
        if body.get("task_id") is not None and body["task_id"] != task_id:
            raise Conflict("is another task than the path's", "task_id")
        caller = caller_of(request)
        if operation == "IMPORT":
            return 202, self.registry.import_task(task_id, caller=caller.as_dict())
        validation.parse(self.limits.run, body)
        # a caller of one team runs only its team's tasks: the registry's facts say so (404 otherwise)
        facts = None if caller.all_teams else self.registry.task_facts(task_id, caller=caller.as_dict())
        try:
            result = self.scheduler.run_task(task_id, body, key, facts, caller=caller.as_dict())
        except TaskUnconfirmed:  # no fresh copy of the task in the scheduler: the registry's word for it
            result = self.scheduler.run_task(task_id, body, key,
                                             self.registry.task_facts(task_id, caller=caller.as_dict()),
                                             caller=caller.as_dict())
        return 202, {"Location": f"/result/{result['result_id']}/"}, result

    @api("DELETE", "/task/<string:task_id>/")
    def delete_task(self, request, task_id):
        # the registry and the scheduler never call each other (services/scheduler/knowntasks.py):
        self.registry.get_task(task_id, caller=who(request))     # 404 for no such task (of the caller's)
        # 409 while it has active runs; else no RUN of it from now on (unless taken after we gave up)
        self.scheduler.close_task(task_id, time.time() + self.settings.rpc_timeout)
        self.registry.delete_task(task_id, caller=who(request))
        return Response(status=204)

    # --------------------------------------------------------------- results

    @api("GET", "/result/")
    def list_results(self, request):
        return listing(request, contract.ResultListQuery, self.scheduler.list_results, "result_id",
                       "submitted_at")

    @api("GET", "/result/<string:result_id>/")
    def get_result(self, request, result_id):
        # the most polled read: concurrent GETs of one result share a fresh RPC (shared/coalesce.py), those
        # of callers that see the same teams
        caller = caller_of(request)
        scope = None if caller.all_teams else caller.team
        return self.reads(("result", result_id, scope),
                          lambda: self.scheduler.get_result(result_id, caller=caller.as_dict()))

    @api("POST", "/result/<string:result_id>/")
    def operate_result(self, request, result_id):
        body = json_body(request)
        operation = validation.operation(body, ("CANCEL", "RERUN_FAILED"))
        validation.parse(contract.ResultOperation, body)
        access.check_operation(caller_of(request), "POST", "/result/<string:result_id>/", operation)
        if operation == "RERUN_FAILED":
            rerun = self.scheduler.rerun_failed(result_id, caller=who(request))
            return 202, {"Location": f"/result/{rerun['result_id']}/"}, rerun
        return 202, self.scheduler.cancel_result(result_id, caller=who(request))

    @api("PATCH", "/result/<string:result_id>/")
    def change_result(self, request, result_id):
        """A running run's parallelism and/or priority, for its executions not yet started."""
        body = json_body(request)
        validation.parse(ResultChange, body)
        return self.scheduler.change_result(result_id, body, caller=who(request))

    @api("DELETE", "/result/<string:result_id>/")
    def delete_result(self, request, result_id):
        self.scheduler.delete_result(result_id, caller=who(request))
        return Response(status=204)

    @api("POST", "/result/<string:result_id>/detail/<string:detail_id>/")
    def operate_detail(self, request, result_id, detail_id):
        body = json_body(request)
        validation.operation(body, ("CANCEL",))
        validation.parse(contract.DetailOperation, body)
        return 202, self.scheduler.cancel_detail(result_id, detail_id, caller=who(request))

    @api("GET", "/result/<string:result_id>/detail/")
    def list_details(self, request, result_id):
        return listing(request, contract.DetailListQuery,
                       functools.partial(self.scheduler.list_details, result_id), "detail_id")

    @api("GET", "/result/<string:result_id>/detail/<string:detail_id>/")
    def get_detail(self, request, result_id, detail_id):
        return self.scheduler.get_detail(result_id, detail_id, caller=who(request))

    @api("GET", "/result/<string:result_id>/detail/<string:detail_id>/logs/")
    def get_logs(self, request, result_id, detail_id):
        """The execution's stdout and stderr as UTF-8 text (at most LOG_LIMIT_BYTES of each: its
        first and last bytes; live while it runs).

        With ``?follow=true``: server-sent events of new output until it ends; at most FOLLOW_MAX
        followers per gateway, one poll of the scheduler per followed execution
        (services/gateway/follow.py).
        """
        if not validation.query(contract.LogsQuery, request.args).follow:
            return self.scheduler.get_logs(result_id, detail_id, caller=who(request))
        place = self.followers.reserve()
        if place is None:
            return self.followers.full_response()
        caller = who(request)
        try:
            logs = self.scheduler.get_log_bytes(result_id, detail_id, caller=caller)
        except BaseException:
            place.release()
            raise
        # the poller reads as the follower who started it (every follower of it was let read it)
        return Response(self.followers.stream((result_id, detail_id), CallerBound(self.scheduler, caller), logs,
                                              place, admission(request)),
                        mimetype="text/event-stream",
                        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    @api("GET", "/result/<string:result_id>/detail/<string:detail_id>/logs/<any(stdout, stderr):stream>/")
    def download_logs(self, request, result_id, detail_id, stream):
        """One stream's kept bytes exactly, as application/octet-stream (services/gateway/rawlogs.py)."""
        return raw_response(self.scheduler.get_log_bytes(result_id, detail_id, [stream], caller=who(request)),
                            stream)

    @api("GET", "/openapi.json", public=True)
    def openapi(self, request):
        return self.limits.spec

    # --------------------------------------------------------------- runners

    @api("GET", "/runner/")
    def list_runners(self, request):
        """The runners the scheduler heard from, by id (services/scheduler/fleet.py)."""
        return listing(request, contract.RunnerListQuery, self.scheduler.list_runners, "runner_id")

    # --------------------------------------------------------------- metrics

    @api("GET", "/metrics", public="METRICS_PUBLIC")
    def metrics(self, request):
        """Cluster-wide figures in the Prometheus text format (docs/metrics.md).

        Behind the API token (Prometheus sends it as a bearer token) unless METRICS_PUBLIC is on.
        """
        body, content_type = cluster_exposition(self.scheduler.execution_figures())
        return Response(body, content_type=content_type)

    # --------------------------------------------------------------- health

    @api("GET", "/health/", public=True, bucket="health")
    def health(self, request):
        """200 when the gateway, registry and scheduler all answer (and reach the database)."""
        checks = {}
        for name, proxy in (("registry", self.registry), ("scheduler", self.scheduler)):
            try:
                with eventlet.Timeout(HEALTH_TIMEOUT):
                    checks[name] = proxy.ping()
            except (Exception, eventlet.Timeout) as exc:  # any failure means not ready
                checks[name] = f"unavailable: {exc.__class__.__name__}"
        healthy = all(value == "ok" for value in checks.values())
        if not healthy:
            raise Unavailable(f"not ready: {checks}", "health")
        return {"status": "ok", **checks}
