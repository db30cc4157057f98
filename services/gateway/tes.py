"""The gateway's GA4GH TES v1.1 routes under ``/ga4gh/tes/v1/`` (docs/tes.md): a mixin of ``GatewayService``.

A TES task is a Stevedore run of one execution.  ``POST /tasks`` checks the task
at the door (stevedore_jobs/contract/tes.py), has the registry make (or find) the
task importing each executor's image (``tes_image``: imported on demand, pinned to
its digest), and hands both to the scheduler, which holds the execution until
every image is imported.  Auth is the rest of the API's (a bearer token); errors
are Stevedore's ``{"error", "message"}`` with TES's statuses (TES 1.1 declares the
statuses, not an error body).  A TES task belongs to the caller's team, as a run: another team's
is 404, lists hold only the covered teams'.  TES's own OpenAPI is served beside ours, at
``/ga4gh/tes/v1/openapi.json``.
"""
from nameko.exceptions import IncorrectSignature
from pydantic import ValidationError as PydanticError

from services.gateway.auth import caller_of
from services.gateway.http import api
from services.gateway.inputs import json_body
from shared.errors import ValidationError
from shared.validation import told
from stevedore_jobs.contract import tes, tes_views

PREFIX = tes_views.PREFIX
VERSION = "1.1.0"


def list_query(args):
    """``GET /tasks``'s query parameters, or a 400 naming the first that is wrong."""
    given = {name: args[name] for name in ("view", "name_prefix", "state", "page_size", "page_token")
             if name in args}
    for name in ("tag_key", "tag_value"):
        if name in args:
            given[name] = args.getlist(name)
    return _query(tes_views.ListQuery, given)


def _query(model, given):
    try:
        return model.model_validate(given)
    except PydanticError as exc:
        error = exc.errors(include_url=False)[0]
        field = str(error["loc"][0]) if error["loc"] else "query"
        says = {"view": "must be MINIMAL, BASIC or FULL", "state": f"must be one of {', '.join(tes.STATES)}",
                "page_size": f"must be an integer from 1 to {tes_views.PAGE_MAX}",
                "page_token": "is not a token this service gave"}.get(field, "is not valid")
        raise ValidationError(says, field) from None


def tag_filters(query):
    """TES's ``tag_key``/``tag_value`` pairs (by position) as label filters: ``key=value``, or ``key``."""
    keys, values = query.tag_key or [], query.tag_value or []
    return [f"{key}={values[i]}" if i < len(values) and values[i] != "" else key for i, key in enumerate(keys)]


class TesRoutes:
    @api("GET", f"{PREFIX}/service-info")
    def tes_service_info(self, request):
        return {"id": "org.stevedore.tes", "name": "Stevedore TES",
                "type": {"group": "org.ga4gh", "artifact": "tes", "version": VERSION},
                "description": "GA4GH TES v1.1 on Stevedore: each task is a run of one execution (docs/tes.md)",
                "organization": {"name": "Stevedore", "url": "https://github.com/stevedore-jobs"},
                "version": VERSION, "storage": ["file://"],
                "tesResources_backend_parameters": sorted(tes.BACKEND_PARAMETERS)}

    @api("GET", f"{PREFIX}/openapi.json", public=True)
    def tes_openapi(self, request):
        return tes_views.spec()

    @api("POST", f"{PREFIX}/tasks")
    def tes_create_task(self, request):
        task = told(tes.parse_task)(json_body(request, free_text=True))
        caller = caller_of(request).as_dict()
        references = [executor.image for executor in task.executors]
        facts = {}
        for reference in dict.fromkeys(references):
            try:
                facts[reference] = self.registry.tes_image(reference, caller=caller)
            except ValidationError as exc:
                if exc.field != "image":
                    raise
                # its registry is not one images are pulled from (IMAGE_REGISTRIES): named as TES spells it
                raise ValidationError(exc.message, f"executors[{references.index(reference)}].image") from None
        return self.scheduler.create_tes_task(task.model_dump(exclude_none=True),
                                              [facts[reference] for reference in references], caller=caller)

    @api("GET", f"{PREFIX}/tasks")
    def tes_list_tasks(self, request):
        query = list_query(request.args)
        asked = dict(view=query.view, name_prefix=query.name_prefix, state=query.state, tags=tag_filters(query),
                     page_size=query.page_size, page_token=query.page_token, caller=caller_of(request).as_dict())
        try:  # tokens that hold the last task's place (a page goes on even once it is deleted)
            return self.scheduler.list_tes_tasks(**asked, placed=True)
        except IncorrectSignature:  # a scheduler of before: tokens of ids
            return self.scheduler.list_tes_tasks(**asked)

    @api("GET", f"{PREFIX}/tasks/<string:task_id>")
    def tes_get_task(self, request, task_id):
        view = _query(tes_views.TaskQuery, {k: request.args[k] for k in ("view",) if k in request.args}).view
        return self.scheduler.get_tes_task(task_id, view, caller=caller_of(request).as_dict())

    @api("POST", f"{PREFIX}/tasks/<string:task_id>:cancel")
    def tes_cancel_task(self, request, task_id):
        return self.scheduler.cancel_tes_task(task_id, caller=caller_of(request).as_dict())
