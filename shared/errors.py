"""One root error type with a shallow tree.

Every error crosses RPC as itself (``deserialize_to_instance``) and the gateway
maps it to HTTP in one table (``services.gateway.http``).  Errors carry the
field they are about, so a client is told exactly what to fix.
"""
from nameko.exceptions import deserialize_to_instance


class StevedoreError(Exception):
    """Root of every error Stevedore raises on purpose."""

    code = "ERROR"

    def __init__(self, message="", field=None):
        super().__init__(message, field)
        self.message = message
        self.field = field

    def __str__(self):
        if self.field:
            return f"{self.field}: {self.message}"
        return self.message


@deserialize_to_instance
class ValidationError(StevedoreError):
    """The request is malformed; ``field`` names what is wrong."""

    code = "VALIDATION_ERROR"


@deserialize_to_instance
class Forbidden(StevedoreError):
    """The caller's role does not allow this (shared/principals.py), or it named a team it may not act for
    (services/gateway/access.py)."""

    code = "FORBIDDEN"


@deserialize_to_instance
class NotFound(StevedoreError):
    code = "NOT_FOUND"


@deserialize_to_instance
class Conflict(StevedoreError):
    """The request is well-formed but clashes with the current state."""

    code = "CONFLICT"


@deserialize_to_instance
class Unavailable(StevedoreError):
    """A backing system (database, Docker engine, registry) cannot be reached."""

    code = "UNAVAILABLE"


@deserialize_to_instance
class TaskUnconfirmed(Conflict):
    """The scheduler has no fresh word from the registry on a task: the caller (the gateway) asks the
    registry for its ``task_facts`` and sends the RUN again with them (services/scheduler/knowntasks.py).

    Part of a RUN's normal course, not the client's mistake: not logged (shared/logs.py).
    """

    logged = False


@deserialize_to_instance
class TooManyRequests(StevedoreError):
    """Over a quota for now (a team's ``max_queued``): try again after ``retry_after`` seconds
    (the gateway's ``Retry-After``)."""

    code = "TOO_MANY_REQUESTS"

    def __init__(self, message="", field=None, retry_after=None):
        super().__init__(message, field)
        self.args = (message, field, retry_after)  # so it crosses RPC whole
        self.retry_after = retry_after
