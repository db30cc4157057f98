"""The registry's task events and its ``task_facts`` reply (part of ``shared/messages.py``, which
re-exports them; docs/events.md)."""
from shared.wire import Message


class TaskSubmitted(Message):
    """``task_submitted``: a task was registered, or asked to import again (the registry imports it)."""

    task_id: str
    version: int  # rises with every change of the task's status: the higher, the newer
    team: str | None = None          # the team it belongs to (absent from an older service)
    submitted_by: str | None = None  # the principal that made it (None: made before principals)


class TaskImported(Message):
    """``task_imported``: the image was pulled; the task is READY."""

    task_id: str
    name: str
    repository: str
    digest: str
    version: int
    labels: dict[str, str] = {}  # the task's labels (absent from an older registry)
    team: str | None = None          # the team it belongs to (absent from an older service)
    submitted_by: str | None = None  # the principal that made it (None: made before principals)


class TaskImportFailed(Message):
    """``task_import_failed``: the pull failed; the task is ERROR."""

    task_id: str
    name: str
    repository: str
    error: str
    version: int
    labels: dict[str, str] = {}  # the task's labels (absent from an older registry)
    team: str | None = None          # the team it belongs to (absent from an older service)
    submitted_by: str | None = None  # the principal that made it (None: made before principals)


class TaskFacts(Message):
    """What a RUN needs of a task, versioned (the registry's ``task_facts`` reply; the scheduler's copy)."""

    task_id: str
    name: str
    status: str
    digest: str | None
    version: int
    team: str | None = None  # the task's team: a RUN's or a schedule's is of its task's team (None: an older registry)


class TaskDeleted(Message):
    """``task_deleted``: the task was deleted (its results stay)."""

    task_id: str
    name: str
    team: str | None = None          # the team it belongs to (absent from an older service)
    submitted_by: str | None = None  # the principal that made it (None: made before principals)


class TokenRevoked(Message):
    """``token_revoked``: an API token was revoked; every gateway refuses it from now on (each gateway
    process gets the event: a BROADCAST handler)."""

    token_id: str
    principal: str


class SessionEnded(Message):
    """``session_ended``: a web UI session was signed out; every gateway refuses its cookie from now on
    (a BROADCAST handler).  ``secret_hash``: the sha256 of the cookie's secret, the registry's key for it
    (neither is nor leads to the secret)."""

    secret_hash: str
