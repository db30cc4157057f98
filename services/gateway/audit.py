"""The gateway's route for the audit log (/audit/): a mixin of ``GatewayService``.

Admins and operators only (issue 18): anyone else is answered 403 ``FORBIDDEN``.  The
scheduler keeps the reading (services/scheduler/auditing.py); every service appends its own
changes (shared/audit.py).
"""
from services.gateway.auth import caller_of
from services.gateway.http import api
from services.gateway.inputs import listing
from shared.errors import Forbidden
from shared.principals import ALL_TEAMS_ROLES
from stevedore_jobs import contract


def require_all_teams(request, what):
    """403 unless the request's caller is an admin or an operator."""
    caller = caller_of(request)
    if caller.role not in ALL_TEAMS_ROLES:
        raise Forbidden(f"only an admin or an operator may read {what}; you are {caller.role}", "role")


class AuditRoutes:
    @api("GET", "/audit/")
    def list_audit(self, request):
        """The audit log, newest first, filtered (``contract.AuditListQuery``) and paged."""
        require_all_teams(request, "the audit log")
        return listing(request, contract.AuditListQuery, self.scheduler.list_audit, "audit_id", "at")
