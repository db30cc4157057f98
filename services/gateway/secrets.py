"""The gateway's routes for secrets (/secret/): a mixin of ``GatewayService``.

A value is sealed here, the moment it arrives, with STEVEDORE_CREDENTIALS_KEY
(shared/sealing.py): what the scheduler is sent, and stores, is the sealed token,
so the value crosses RabbitMQ in the clear only inside the claim of an execution
that needs it (services/scheduler/secrets.py).  Nothing here logs a value: the
request line is logged (its path names the secret), never its body; a value the
contract refuses is refused without being echoed.
"""
from werkzeug.wrappers import Response

from services.gateway.auth import caller_of
from services.gateway.http import api
from services.gateway.inputs import json_body, listing
from shared import validation
from shared.errors import Unavailable
from shared.sealing import Unopenable
from stevedore_jobs.contract import secrets as sx


class SecretRoutes:
    """Needs the service's ``scheduler`` and ``sealer`` (a ``shared.sealing.SealingKey``)."""

    @api("GET", "/secret/")
    def list_secrets(self, request):
        return listing(request, sx.SecretListQuery, self.scheduler.list_secrets, "name", "name")  # passes caller

    @api("PUT", "/secret/<string:name>/")
    def put_secret(self, request, name):
        """Create (201) or rotate (200) the caller's team's secret ``name``."""
        validation.told(sx.check_name)(name)
        value = validation.parse(sx.SecretValue, json_body(request, opaque=("value",))).value
        try:
            sealed = self.sealer.seal(value.encode("utf-8"))
        except Unopenable as exc:
            raise Unavailable(f"secrets are disabled: {exc}", "value") from None
        done = self.scheduler.put_secret(name, sealed, caller=caller_of(request).as_dict())
        return (201 if done["created"] else 200), {"Location": f"/secret/{name}/"}, done["secret"]

    @api("GET", "/secret/<string:name>/")
    def get_secret(self, request, name):
        return self.scheduler.get_secret(name, caller=caller_of(request).as_dict())

    @api("DELETE", "/secret/<string:name>/")
    def delete_secret(self, request, name):
        self.scheduler.delete_secret(name, caller=caller_of(request).as_dict())
        return Response(status=204)
