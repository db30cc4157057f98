"""The gateway's routes for schedules (/schedule/): a mixin of ``GatewayService``.

The registry and the scheduler never call each other: a new schedule's task is
looked up here (``task_facts``: 404 for no such task) and its facts handed to
the scheduler, which keeps schedules and fires them (services/scheduler/schedules/).
"""
from werkzeug.wrappers import Response

from services.gateway.auth import caller_of, who
from services.gateway.http import api
from services.gateway.inputs import idempotency_key, json_body, listing
from shared import validation
from stevedore_jobs import contract


class ScheduleRoutes:
    @api("GET", "/schedule/")
    def list_schedules(self, request):
        return listing(request, contract.ScheduleListQuery, self.scheduler.list_schedules, "schedule_id",
                       "created_at")

    @api("POST", "/schedule/")
    def create_schedule(self, request):
        body = json_body(request)
        new = validation.parse(contract.NewSchedule, body)  # its shape; the scheduler checks the rest
        key = idempotency_key(request)
        caller = caller_of(request).as_dict()  # its task must be one the caller sees (else 404)
        schedule = self.scheduler.create_schedule(body, self.registry.task_facts(new.task_id, caller=caller), key,
                                                  caller=caller)
        return 201, {"Location": f"/schedule/{schedule['schedule_id']}/"}, schedule

    @api("GET", "/schedule/<string:schedule_id>/")
    def get_schedule(self, request, schedule_id):
        return self.scheduler.get_schedule(schedule_id, caller=caller_of(request).as_dict())

    @api("PATCH", "/schedule/<string:schedule_id>/")
    def update_schedule(self, request, schedule_id):
        body = json_body(request)
        validation.parse(contract.ScheduleChange, body)
        return self.scheduler.update_schedule(schedule_id, body, caller=who(request))

    @api("POST", "/schedule/<string:schedule_id>/")
    def operate_schedule(self, request, schedule_id):
        body = json_body(request)
        validation.operation(body, ("RUN",))
        validation.parse(contract.ScheduleOperation, body)
        result = self.scheduler.run_schedule(schedule_id, caller=who(request))
        return 202, {"Location": f"/result/{result['result_id']}/"}, result

    @api("DELETE", "/schedule/<string:schedule_id>/")
    def delete_schedule(self, request, schedule_id):
        self.scheduler.delete_schedule(schedule_id, caller=who(request))
        return Response(status=204)
