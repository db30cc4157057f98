"""GA4GH TES tasks in the scheduler: a TES task is a run of one execution (docs/tes.md).

``create_tes_task`` makes the run as a RUN does (its labels are the task's tags and
``ga4gh.org/tes=task``; its memory and CPUs from ``resources``), with ``results.tes``
holding the TES document and the registry task of each executor's image.  While an
image is not yet imported the execution is held (``details.waiting``, out of the
claim: TES INITIALIZING); when the registry's ``task_imported`` events (or the sweep
here) find every image READY, each executor is pinned to its digest and the
execution released; an import that failed ends the task ERROR (SYSTEM_ERROR) naming
the image.  The claim gives the runner the document and the pinned images
(services/runner/tes.py runs the executors); its report's ``tes_log`` is stored on
the execution.

A TES task is a run of the caller's team (``caller``, as every RPC a route calls on behalf of a
request: shared/principals.py), made by it (``submitted_by``), within the team's ``max_queued``,
in the audit log as ``result.run`` / ``result.cancel`` with ``{"tes": true}``; another team's is 404
to get or cancel and absent from lists, as runs are.  The images' tasks are the registry's own
(``tes: <image>``, imported as before), shared by every team.

Lock order, as every writer of executions keeps: the detail, then its result.
"""
import logging

from sqlalchemy import select, text
from sqlalchemy.orm import undefer

from services.scheduler import executions as ex
from services.scheduler import knowntasks
from services.scheduler.executions.state import derive_status
from services.scheduler.models import Detail, KnownTask, Result
from services.scheduler.tes_views import task_view
from shared import events, pages, validation
from shared import statuses as st
from shared.db import labelled, team_scoped
from shared.errors import NotFound, ValidationError
from shared.principals import Caller
from shared.extensions import config_timer
from shared.rpc import rpc
from shared.timeutil import now
from stevedore_jobs.contract import tes as contract

log = logging.getLogger(__name__)

WAITING_REASON = "waiting for its executors' images to be imported"
SCAN_MAX = 2000  # rows a listing filtered by state looks at per page


def page_token_of(result_id, submitted_at, placed=True):
    """The token of the page after a task: its id and submitted_at, so that the page goes on from where the
    task was even when it was deleted since (a token of before, its id alone, is still taken; and given to
    a gateway of before, whose door takes no other: not ``placed``)."""
    return f"{result_id}_{submitted_at!r}" if placed else result_id
WAITING_SQL = text("SELECT id FROM results WHERE tes IS NOT NULL AND status = 'QUEUED' "
                   "AND NOT cancel_requested AND jsonb_array_length(tes->'waiting') > 0 LIMIT 500")


def run_body(task):
    """The RUN a TES task is: one execution, its tags as labels, ``resources`` as memory and CPUs (its mark,
    ``TES_LABEL``, a label no RUN may carry, is added once checked: ``marked``)."""
    body = {"times": 1, **({"labels": task["tags"]} if task.get("tags") else {})}
    resources = task.get("resources") or {}
    if resources.get("ram_gb"):
        body["memory"] = f"{max(6, int(resources['ram_gb'] * 1024))}m"
    if resources.get("cpu_cores"):
        body["cpus"] = resources["cpu_cores"]
    return body


class TesMixin:

    @rpc
    def create_tes_task(self, task, images, caller=None):
        """Make the run of a TES ``task`` (``NewTask``, checked by the gateway) for ``caller``'s team;
        ``images``: the registry's ``task_facts`` of each executor's image task, in the executors' order.
        Returns ``{"id": ...}``."""
        caller = Caller.from_dict(caller)
        task = validation.told(contract.parse_task)(task).model_dump(exclude_none=True)
        if not isinstance(images, list) or len(images) != len(task["executors"]):
            raise ValidationError("must hold one image task per executor", "images")
        session = self.db.session
        for facts in {f["task_id"]: f for f in images}.values():
            knowntasks.learn_facts(session, facts["task_id"], facts)
        session.commit()
        try:
            params = validation.run_params(run_body(task), self.settings.run_max_times, *self.settings.ceilings)
        except ValidationError as exc:
            field = {"memory": "resources.ram_gb", "cpus": "resources.cpu_cores"}.get(exc.field, exc.field)
            raise ValidationError(exc.message, field) from None
        params["labels"] = {**(params.get("labels") or {}), contract.TES_LABEL: "task"}  # Stevedore's own mark
        waiting = sorted({f["task_id"] for f in images if f.get("status") != st.READY or not f.get("digest")})
        tes = {"task": task, "name": task.get("name"), "image_tasks": [f["task_id"] for f in images],
               "images": [None if waiting else f["digest"] for f in images], "waiting": waiting}

        def prepare(session, result):
            result.tes = tes
            if waiting:
                session.execute(Detail.__table__.update().where(Detail.result_id == result.id)
                                .values(waiting=True, reason=WAITING_REASON))

        first = images[0]
        result, _ = ex.create_result(session, first["task_id"], first.get("name") or first["task_id"],
                                     first.get("digest") or task["executors"][0]["image"], params,
                                     with_details=True, prepare=prepare,
                                     record=ex.audited(caller, "result.run", tes=True),
                                     team=caller.team, submitted_by=caller.principal)
        self.dispatch(events.RESULT_SUBMITTED, ex.submitted(result, True))
        if waiting:
            self._tes_settle(result.id)  # imported meanwhile?
        else:
            self._wake(result.id, 1, sized=True, whose=ex.owner(result))
        return {"id": result.id}

    @rpc
    def get_tes_task(self, task_id, view="MINIMAL", caller=None):
        session = self.db.session
        result = session.scalars(select(Result).options(undefer(Result.tes)).where(
            Result.id == str(task_id)[:32], Result.tes.is_not(None))).first()
        if result is None or not Caller.from_dict(caller).covers(result.team):
            session.rollback()
            raise NotFound(f"no TES task {str(task_id)[:100]!r}", "id")
        detail = self._tes_details(session, [result.id]).get(result.id)
        session.commit()
        return task_view(result, detail, view)

    @rpc
    def cancel_tes_task(self, task_id, caller=None):
        """Cancel a TES task; one that already ended is left as it is (TES: 200 all the same)."""
        self.get_tes_task(task_id, caller=caller)  # 404 for no such TES task, or another team's
        if ex.get_result(self.db.session, task_id).status in st.TERMINAL:
            self.db.session.rollback()
            return {}
        try:
            self._cancel(task_id, caller, summary={"tes": True})
        except Exception as exc:  # noqa: BLE001 -- it ended meanwhile: nothing left to cancel
            if getattr(exc, "code", None) != "CONFLICT":
                raise
        return {}

    @rpc
    def list_tes_tasks(self, view="MINIMAL", name_prefix=None, state=None, tags=(), page_size=256,
                       page_token=None, caller=None, placed=False):
        """A page of the TES tasks of the teams ``caller`` covers, newest first, and the token of the next
        (None: none).  ``tags``: label filters (``key=value`` or ``key``); a tag that is no label matches
        nothing.  ``placed``: the caller (this release's gateway) takes tokens holding the last task's place
        (``page_token_of``); without, the token is its id alone, as a gateway of before takes."""
        session = self.db.session
        caller = Caller.from_dict(caller)
        stmt = team_scoped(select(Result).options(undefer(Result.tes)).where(Result.tes.is_not(None)),
                           Result.team, caller)
        if name_prefix:
            stmt = stmt.where(Result.tes["name"].astext.startswith(name_prefix, autoescape=True))
        try:
            stmt = labelled(stmt, Result.labels, list(tags))
        except ValidationError:
            return {"tasks": []}
        stmt = stmt.order_by(Result.submitted_at.desc(), Result.id.desc())
        if page_token:
            anchor_id, stamp = self._tes_after(session, caller, str(page_token))
            stmt = stmt.where((Result.submitted_at < stamp) | (
                (Result.submitted_at == stamp) & (Result.id < anchor_id)))
        # read as the page fills, a few rows at a time: a FULL view holds up to 20 executors' logs each
        rows = session.scalars(stmt.limit(SCAN_MAX if state else page_size + 1), execution_options={
            "yield_per": pages.ROWS_AT_ONCE})
        scanned = []  # the last row read, for a page that the state filter left short
        stamps = {}  # each listed task's submitted_at, for the token of the page after it
        tasks, more = pages.cut(self._tes_views(session, rows, view, state, scanned, stamps), page_size,
                                self.settings.list_page_bytes)
        token = None
        if more:  # fewer than page_size when the page's bytes reached LIST_PAGE_BYTES (TES allows it)
            token = page_token_of(tasks[-1]["id"], stamps[tasks[-1]["id"]], placed)  # the next page starts after it
        elif state and scanned and scanned[0] >= SCAN_MAX:
            token = page_token_of(scanned[1], scanned[2], placed)
        session.commit()
        return {"tasks": tasks, **({"next_page_token": token} if token else {})}

    @staticmethod
    def _tes_after(session, caller, page_token):
        """(id, submitted_at) the page of ``page_token`` starts after: the token's own, or (a token of before:
        an id alone) its task's, looked up."""
        anchor_id, _, stamp = page_token.partition("_")
        if stamp:
            return anchor_id, float(stamp)  # digits and a dot (the contract's pattern): a finite number
        anchor = session.get(Result, anchor_id[:32])
        if anchor is None or not caller.covers(anchor.team):
            session.rollback()
            raise ValidationError("is not a token this service gave", "page_token")
        return anchor.id, anchor.submitted_at

    def _tes_views(self, session, rows, view, state, scanned, stamps):
        """The tasks of ``rows`` as ``view`` shows them, those in ``state`` only (if given), read
        ``pages.ROWS_AT_ONCE`` at a time with their executions; ``scanned``: [rows read, last id, its
        submitted_at]; ``stamps``: each task's submitted_at by id."""
        chunk = []
        for count, result in enumerate(rows, 1):
            scanned[:] = [count, result.id, result.submitted_at]
            chunk.append(result)
            if len(chunk) < pages.ROWS_AT_ONCE:
                continue
            yield from self._tes_chunk(session, chunk, view, state, stamps)
            chunk = []
        yield from self._tes_chunk(session, chunk, view, state, stamps)

    def _tes_chunk(self, session, chunk, view, state, stamps):
        details = self._tes_details(session, [r.id for r in chunk])
        for result in chunk:
            shown = task_view(result, details.get(result.id), view)
            if not state or shown["state"] == state:
                stamps[result.id] = result.submitted_at
                yield shown

    @staticmethod
    def _tes_details(session, result_ids):
        if not result_ids:
            return {}
        rows = session.scalars(select(Detail).options(undefer(Detail.tes_log)).where(
            Detail.result_id.in_(result_ids), Detail.index == 0))
        return {row.result_id: row for row in rows}

    # ------------------------------------------------------------ imports

    @config_timer("sweep_interval")
    def sweep_tes_imports(self):
        """Settle every TES task still waiting for its images: what an event lost or a stop left undone."""
        self._tes_images_heard()

    def _tes_images_heard(self):
        try:
            waiting = [row.id for row in self.db.session.execute(WAITING_SQL)]
            self.db.session.commit()
        except Exception as exc:  # noqa: BLE001 -- the sweep looks again
            self.db.session.rollback()
            log.warning("could not look for TES tasks waiting for images: %s", exc)
            return
        for result_id in waiting:
            self._tes_settle(result_id)

    def _tes_settle(self, result_id):
        """Release (or end) one TES task waiting for its images, by what the scheduler knows of them."""
        session = self.db.session
        detail = session.scalars(select(Detail).where(Detail.result_id == result_id, Detail.index == 0)
                                 .with_for_update()).first()
        result = session.scalars(select(Result).options(undefer(Result.tes)).where(Result.id == result_id)
                                 .with_for_update().execution_options(populate_existing=True)).first()
        if detail is None or result is None or not (result.tes or {}).get("waiting") \
                or result.status != st.QUEUED or result.cancel_requested:
            session.rollback()
            return
        tes = dict(result.tes)
        known = {row.task_id: row for row in session.scalars(
            select(KnownTask).where(KnownTask.task_id.in_(tes["image_tasks"])))}
        failed = [task_id for task_id in tes["waiting"] if task_id in known and (
            known[task_id].deleted or known[task_id].status == st.ERROR)]
        if failed:
            images = [e["image"] for e, t in zip(tes["task"]["executors"], tes["image_tasks"]) if t == failed[0]]
            reason = (f"the image {images[0]} could not be imported (task {failed[0]}: GET /task/{failed[0]}/ "
                      "says why)")
            stamp = now()
            detail.status, detail.reason, detail.end, detail.waiting = st.ERROR, reason, stamp, False
            result.n_error += 1
            result.end = stamp
            result.status = derive_status(result)
            result.tes = {**tes, "waiting": []}
            session.commit()
            log.info("TES task %s ended: %s", result_id, reason)
            self._notify_finished(result)
            return
        still = [t for t in tes["waiting"] if t not in known or known[t].status != st.READY
                 or not known[t].digest]
        if still:
            if still != tes["waiting"]:
                result.tes = {**tes, "waiting": still}
                session.commit()
            else:
                session.rollback()
            return
        images = [known[task_id].digest for task_id in tes["image_tasks"]]
        result.tes = {**tes, "images": images, "waiting": []}
        result.image = images[0]
        detail.waiting, detail.reason = False, None
        session.commit()
        self._wake(result_id, 1, sized=True)
