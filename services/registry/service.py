"""Registry: registers tasks and imports their images (SUBMITTED → IMPORTING → READY | ERROR).

A task never stays IMPORTING: the pull is bounded as a whole (``PULL_TIMEOUT``,
services/registry/dependencies.py), a pull that fails in any way ends ERROR
with the reason, a final write that fails on a passing database outage is
retried (``retrying_event_handler``), and a task IMPORTING for longer than
``PULL_TIMEOUT`` + ``IMPORT_MARGIN`` (its registry was stopped mid-pull) is
ended ERROR by ``sweep_imports``.

The registry calls no other service.  The scheduler learns what a RUN needs of
a task (status, digest, deleted) from the events dispatched here, each carrying
the task's ``version`` (services/scheduler/knowntasks.py).  A task is deleted
only after the scheduler closed it to RUNs: the gateway's DELETE asks the
scheduler first, which answers 409 while the task has active runs.
"""
import logging

from nameko.events import SERVICE_POOL, EventDispatcher
from nameko.timer import timer
from sqlalchemy import func, select

from services.registry import principals, sessions, tasks
from services.registry import tes as tes_images
from services.registry.credentials import CredentialsUnreadable, CredentialVault
from services.registry.dependencies import DockerImages, ImportFailed, RegistryMetrics
from services.registry.models import Base, Task
from shared import events, pages, statuses, validation
from shared import messages as m
from shared.db import Database, ping
from shared.docker_engine import bounded
from shared.errors import Unavailable
from shared.extensions import Settings, config_timer
from shared.handlers import retrying_event_handler
from shared.messages import wire
from shared.principals import ALL_TEAMS_ROLES, Caller, require_role
from shared.rpc import rpc
from shared.timeutil import now

log = logging.getLogger(__name__)

# a task left SUBMITTED this long (its event was lost) is imported again
STALLED_AFTER = 60
# a task IMPORTING for longer than PULL_TIMEOUT plus this was abandoned (its registry stopped mid-pull)
IMPORT_MARGIN = 60
ADMINS = ("admin",)
# seconds between deletions of expired web UI sessions (refused already: this only frees their rows)
SESSION_SWEEP_INTERVAL = 600


class RegistryService:
    name = "registry"

    db = Database(Base)
    images = DockerImages()
    vault = CredentialVault()
    dispatch = EventDispatcher()
    metrics = RegistryMetrics()
    settings = Settings()

    @rpc
    def create_task(self, body, idempotency_key=None, caller=None):
        name, repository = validation.new_task(body)
        credentials = validation.registry_credentials(body)
        self.images.check_source(repository, "repository")  # IMAGE_REGISTRIES (shared/image_sources.py)
        sealed = self.vault.seal(credentials) if credentials else None
        task, created = tasks.create(self.db.session, name, repository, idempotency_key,
                                     credentials=sealed, labels=validation.task_labels(body),
                                     caller=Caller.from_dict(caller))
        if created:
            self.dispatch(events.TASK_SUBMITTED, wire(m.TaskSubmitted(task_id=task.id, version=task.version,
                                                                      **tasks.owner(task))))
        return tasks.as_dict(task)

    @rpc
    def import_task(self, task_id, caller=None):
        """Pull the task's image again (a moved tag gives a new digest; running executions keep theirs)."""
        task = tasks.reimport(self.db.session, task_id, Caller.from_dict(caller))
        self.dispatch(events.TASK_SUBMITTED, wire(m.TaskSubmitted(task_id=task.id, version=task.version,
                                                                  **tasks.owner(task))))
        return tasks.as_dict(task)

    @rpc
    def delete_task(self, task_id, caller=None):
        """Remove a task; its results stay as history.

        Only once the scheduler closed it to RUNs (``close_task``, which refuses
        while it has active runs): the gateway's DELETE makes both calls, in
        that order.
        """
        gone = tasks.delete(self.db.session, task_id, Caller.from_dict(caller))
        self.dispatch(events.TASK_DELETED, wire(m.TaskDeleted(task_id=task_id, **gone)))

    @rpc
    def ping(self):
        return ping(self.db.session)

    @rpc
    def get_task(self, task_id, caller=None):
        return tasks.as_dict(tasks.get(self.db.session, task_id, caller=Caller.from_dict(caller)))

    @rpc
    def task_facts(self, task_id, caller=None):
        """What a RUN needs of the task, versioned: the gateway hands it to a scheduler that has no fresh copy."""
        return tasks.facts(tasks.get(self.db.session, task_id, caller=Caller.from_dict(caller)))

    @rpc
    def list_tasks(self, status=None, limit=100, after=None, label=None, team=None, caller=None, paged=False,
                   after_key=None):
        rows = tasks.listing(self.db.session, status, pages.fetch_limit(limit, paged),
                             pages.cursor(after, after_key), label, team, Caller.from_dict(caller))
        return pages.reply((tasks.as_dict(t) for t in rows), limit, self.settings.list_page_bytes, paged)

    @rpc
    def tes_image(self, reference, caller=None):
        """The facts of the task of ``caller``'s team that imports ``reference`` for GA4GH TES executors
        (services/registry/tes.py), made, or imported again after an ERROR, now (by ``caller``); a
        ValidationError naming ``image`` for an image of a registry it may not be pulled from."""
        self.images.check_source(reference, "image")
        task, submit = tes_images.image_task(self.db.session, reference, Caller.from_dict(caller))
        if submit:
            self.dispatch(events.TASK_SUBMITTED, wire(m.TaskSubmitted(task_id=task.id, version=task.version,
                                                                      **tasks.owner(task))))
        return tasks.facts(task)

    @rpc
    def count_team_tasks(self, team):
        """How many tasks ``team`` has (a team's DELETE is refused while it has any: the scheduler's
        services/scheduler/teams.py)."""
        session = self.db.session
        count = session.scalar(select(func.count()).select_from(Task).where(Task.team == str(team)[:63]))
        session.commit()
        return count

    @rpc
    def pull_credentials(self, task_id):
        """The registry login a runner needs to pull this task's image, or None (public image).

        For services on the broker only; the gateway has no route to it.
        """
        task = tasks.get(self.db.session, task_id)
        if task.credentials is None:
            return None
        try:
            return self.vault.open(task.credentials)
        except CredentialsUnreadable as exc:
            raise Unavailable(str(exc), "credentials") from exc

    # ------------------------------------------------ principals and tokens (services/registry/principals.py)

    # principals and tokens are an admin's alone: checked here too, whatever the gateway let through

    @rpc
    def create_token(self, token_hash, body, caller=None):
        """A token for a principal (made if new): only the sha256 of the token the gateway made comes here."""
        return principals.create(self.db.session, token_hash, body, require_role(caller, ADMINS, "making a token"))

    @rpc
    def resolve_token(self, token_hash):
        """The principal of a live token (``principals.resolve``), or None: the gateway's question."""
        return principals.resolve(self.db.session, token_hash)

    @rpc
    def list_tokens(self, limit=100, after=None, team=None, caller=None, paged=False, after_key=None):
        require_role(caller, ADMINS, "the token list")
        rows = principals.listing(self.db.session, pages.fetch_limit(limit, paged), pages.cursor(after, after_key),
                                  team)
        return pages.reply(rows, limit, self.settings.list_page_bytes, paged)

    @rpc
    def revoke_token(self, token_id, caller=None):
        """Revoke a token; every gateway is told at once (``token_revoked``, a broadcast)."""
        token = principals.revoke(self.db.session, token_id, require_role(caller, ADMINS, "revoking a token"))
        self.dispatch(events.TOKEN_REVOKED, wire(m.TokenRevoked(token_id=token["token_id"],
                                                                principal=token["principal"])))
        return token

    @rpc
    def count_team_principals(self, team):
        """How many principals of ``team`` have a live token (a team's DELETE is refused while any has)."""
        return principals.live_in_team(self.db.session, team)

    @rpc
    def team_names(self, caller=None):
        """Every team's name: what an admin or an operator may pick (``GET /whoami/``)."""
        require_role(caller, ALL_TEAMS_ROLES, "the list of every team")
        return principals.team_names(self.db.session)

    # ------------------------------------------------ web UI sessions (services/registry/sessions.py)

    @rpc
    def create_session(self, secret_hash, token_fingerprint, seconds, caller=None):
        """A new session for the gateway: sha256 of its cookie's secret, the hash of its API token."""
        return sessions.create(self.db.session, secret_hash, token_fingerprint, seconds, Caller.from_dict(caller))

    @rpc
    def check_session(self, secret_hash):
        """The live session ``{"token_fingerprint", "expires_at", "seconds_left"}``, or None."""
        return sessions.check(self.db.session, secret_hash)

    @rpc
    def revoke_session(self, secret_hash, caller=None):
        """End a session (sign-out); every gateway is told at once (``session_ended``, a broadcast)."""
        ended = sessions.revoke(self.db.session, secret_hash, Caller.from_dict(caller))
        if ended:
            self.dispatch(events.SESSION_ENDED, wire(m.SessionEnded(secret_hash=secret_hash)))
        return ended

    @timer(interval=SESSION_SWEEP_INTERVAL)
    def sweep_sessions(self):
        deleted = sessions.sweep(self.db.session)
        if deleted:
            log.info("deleted %d expired web UI session(s)", deleted)

    @config_timer("image_gc_interval")
    def collect_images(self):
        """Remove the least recently used images the registry pulled past their bounds (shared/image_gc.py)."""
        self.metrics.images_removed(self.images.collect())

    # retried while the database is away: an import whose last write failed is done again
    @retrying_event_handler(events.REGISTRY, events.TASK_SUBMITTED, handler_type=SERVICE_POOL)
    def on_task_submitted(self, payload):
        self._import(payload["task_id"])

    @timer(interval=STALLED_AFTER / 2)
    def resubmit_stalled(self):
        session = self.db.session
        stalled = session.execute(select(Task.id, Task.version, Task.team, Task.submitted_by).where(
            Task.status == statuses.SUBMITTED, Task.updated_at < now() - STALLED_AFTER)).all()
        for task_id, version, team, submitted_by in stalled:
            log.warning("task %s stalled in SUBMITTED; importing it again", task_id)
            self.dispatch(events.TASK_SUBMITTED, wire(m.TaskSubmitted(task_id=task_id, version=version, team=team,
                                                                      submitted_by=submitted_by)))

    @timer(interval=STALLED_AFTER / 2)
    def sweep_imports(self):
        """End ERROR the tasks IMPORTING for longer than any pull may take (the puller was stopped)."""
        bound = self.images.pull_timeout + IMPORT_MARGIN
        error = (f"import interrupted: still IMPORTING after {bound:g}s (PULL_TIMEOUT + {IMPORT_MARGIN}s), "
                 "so the registry service doing it was stopped mid-pull; import it again")
        for task in tasks.end_stuck_imports(self.db.session, now() - bound, error):
            log.warning("task %s (%s) was stuck IMPORTING; ended ERROR", task.id, task.repository)
            self.dispatch(events.TASK_IMPORT_FAILED, wire(m.TaskImportFailed(
                task_id=task.id, name=task.name, repository=task.repository, error=error,
                version=task.version, labels=task.labels or {}, team=task.team, submitted_by=task.submitted_by)))

    def _import(self, task_id):
        session = self.db.session
        task = session.get(Task, task_id)
        if task is None:
            return
        if not tasks.set_status(session, task, statuses.IMPORTING, error=None):
            return  # deleted meanwhile
        try:
            auth = self.vault.open(task.credentials) if task.credentials else None
            with self.metrics.timed_pull():
                digest, image_id = self.images.pull(task.repository, auth=auth)
        except (ImportFailed, CredentialsUnreadable) as exc:
            error = bounded(exc, tasks.ERROR_MAX)
            log.info("import of task %s (%s) failed: %s", task.id, task.repository, error)
            if tasks.set_status(session, task, statuses.ERROR, error=error):
                self.dispatch(events.TASK_IMPORT_FAILED, wire(m.TaskImportFailed(
                    task_id=task.id, name=task.name, repository=task.repository,
                    error=error, version=task.version, labels=task.labels or {}, **tasks.owner(task))))
            return
        if not tasks.set_status(session, task, statuses.READY, digest=digest, image_id=image_id,
                                imported_at=now()):
            log.info("task %s was deleted while its image was pulled", task.id)
            return
        log.info("task %s (%s) is READY as %s", task.id, task.repository, digest)
        self.dispatch(events.TASK_IMPORTED, wire(m.TaskImported(
            task_id=task.id, name=task.name, repository=task.repository,
            digest=digest, version=task.version, labels=task.labels or {}, **tasks.owner(task))))
