"""A runner squares its Docker engine and its memory with what the scheduler knows.

Run when the runner starts and every ``RECONCILE_INTERVAL`` seconds after:

1. Containers.  Every container Stevedore started carries the labels
   ``stevedore.managed=true``, ``stevedore.detail_id``, ``stevedore.attempt``,
   ``stevedore.runner`` and ``stevedore.installation`` (this installation's
   id, from the scheduler's ``installation`` table; the claim's reply carries
   it, and ``installation_id`` tells it to reconcile, asked once).  For each on
   this engine (whichever runner started it: several may share an engine, and
   its runner may be gone for good) the scheduler says who holds that execution
   now:

   * another installation's (its ``stevedore.installation`` is not ours):
     left alone, whatever it is;
   * held by the runner and attempt on the labels, and that runner is us but
     we do not know it: we were restarted (a SIGKILL, a crash) while it ran,
     and our lease has not run out yet: *re-attach*: a slot follows it to its
     end and reports its real exit code;
   * held by the runner and attempt on the labels otherwise: a live execution,
     left alone;
   * one this runner's background remover holds (reported, waiting for its
     removal: services/runner/remover.py): left to it;
   * anything else (the execution is over, another attempt replaced it, its
     runner was declared lost): an *orphan*, removed at once.  A runner
     reports an attempt's end only once it has read the container's output,
     so nothing still needs it; if its runner is removing it too (its
     background remover, or a runner stopped before it drained), one of the
     two removals finds it gone, which is fine;
   * an execution the scheduler does not know, in a container labelled with
     our installation: its result was deleted; an orphan, removed;
   * an execution the scheduler does not know, in a container with no
     installation label (started before runners put it there, or by a
     scheduler that could not say), or while the scheduler cannot tell our
     id: left alone, since another installation may share this engine.  The operator removes those by hand (see
     docs/guarantees.md).

2. Claims.  The scheduler may believe we hold an execution we never heard of:
   a claim whose reply was lost (RabbitMQ restarting while the scheduler
   answered; a call that timed out), or one our previous process claimed just
   before it died.  When no claim of ours is in flight, and no container of
   ours runs it, such an execution is handed back (``release_claim``) if it
   never started; if it did start, its container is gone and its outcome
   unknown, which is reported as an ERROR saying so.  A GA4GH TES task's
   executors (``stevedore.tes`` containers, never adopted: services/runner/tes.py)
   are not resumed either: if the engine still holds them (``recover``), the
   ERROR says the runner restarted mid-task and records what they had done
   (SYSTEM_ERROR); the TES sweep then removes them.
"""
import logging

import docker
import requests

from shared import events, statuses as st
from shared.messages import finished_report, owned
from shared.timeutil import now

log = logging.getLogger(__name__)


def installation_of(holdings, scheduler):
    """This installation's id, asked of the scheduler once and kept; None while it cannot say."""
    if holdings.installation is None:
        try:
            holdings.installation = scheduler.installation_id()
        except Exception as exc:  # an older scheduler without the RPC, or one that is away
            log.warning("cannot learn this installation's id (%s): containers of unknown "
                        "executions are left alone", exc)
    return holdings.installation


def reconcile(holdings, executor, scheduler, report, recover=lambda detail_id, attempt: None):
    """One pass; returns a summary {adopted, removed, released, lost} for logs and tests.

    ``recover(detail_id, attempt)``: the executors' logs the engine still holds of a TES attempt, or None.
    """
    me = holdings.runner_id
    summary = {"adopted": 0, "removed": 0, "released": 0, "lost": 0}
    try:
        containers = executor.managed_containers()
    except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
        log.warning("cannot list containers to reconcile (%s); trying again later", exc)
        containers = None

    installation = installation_of(holdings, scheduler) if containers else None
    before = holdings.claim_snapshot()
    mine = {work["detail_id"]: work for work in scheduler.runner_holdings(me)}
    states = scheduler.execution_states(sorted({c["detail_id"] for c in containers or ()
                                                if c["detail_id"]})) if containers else {}
    # no claim was in flight, and none began, while the scheduler was asked
    quiet = before[0] == 0 and holdings.claim_snapshot() == before

    for container in containers or ():
        detail_id, attempt, owner = container["detail_id"], container["attempt"], container["runner"]
        if not detail_id or holdings.holds(detail_id, attempt) or executor.removal_pending(container["id"]):
            continue  # ours and running, or ended, reported and waiting for our remover (remover.py)
        labelled = container.get("installation")
        if labelled and installation and labelled != installation:
            continue  # another installation's
        state = states.get(detail_id)
        if state is None:
            if not labelled or labelled != installation:
                continue  # may be another installation's (unlabelled, or ours unknown yet)
            why = "its execution is no longer known (its result was deleted)"
        else:
            live = (state["status"] in st.ACTIVE and state["attempt"] == attempt
                    and state["runner"] == owner)
            if live:
                work = mine.get(detail_id)
                if owner == me and not holdings.was_received(detail_id, attempt) \
                        and work is not None and work["attempt"] == attempt:
                    log.warning("re-attaching to container %s of execution %s (attempt %s), "
                                "left running by this runner's previous process",
                                container["id"][:12], detail_id, attempt)
                    holdings.adopt(work, container["id"])
                    summary["adopted"] += 1
                continue
            why = f"it is now {state['status']}, attempt {state['attempt']}, held by {state['runner']}"
        log.warning("removing orphaned container %s of execution %s (attempt %s, runner %s): %s",
                    container["id"][:12], detail_id, attempt, owner, why)
        try:
            executor.remove(container["id"])
            summary["removed"] += 1
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            log.warning("could not remove container %s: %s", container["id"][:12], exc)

    if containers is None:
        return summary
    if not quiet:
        return summary
    on_engine = {(c["detail_id"], c["attempt"]) for c in containers}
    for detail_id, work in mine.items():
        attempt = work["attempt"]
        if detail_id in holdings.held or holdings.was_received(detail_id, attempt) \
                or (detail_id, attempt) in on_engine:
            continue
        try:  # a TES task's executors that started are its containers: then it did start
            executors = recover(detail_id, attempt)
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            log.warning("cannot read the TES executors of %s: %s", detail_id, exc)
            executors = None
        if work["status"] == st.QUEUED and not executors:
            if scheduler.release_claim(me, detail_id, attempt):
                log.warning("execution %s (attempt %s) was claimed for this runner but never "
                            "reached it; handed back", detail_id, attempt)
                summary["released"] += 1
        else:
            if executors is None:
                reason, tes_log = (f"runner {me} restarted and found no container for this execution on "
                                   "its Docker engine: its outcome is unknown"), None
            else:
                reason = (f"runner {me} restarted in the middle of this TES task, which is not resumed: "
                          "its executors were stopped and removed")
                tes_log = {"failure": "SYSTEM_ERROR", "executors": executors, "outputs": [],
                           "system_logs": [reason]}
            log.warning("execution %s (attempt %s) started under this runner before a restart "
                        "and %s", detail_id, attempt, "is a TES task" if tes_log else "its container is gone")
            holdings.note_received(work)
            report(events.EXECUTION_FINISHED, finished_report(
                detail_id=detail_id, attempt=attempt, runner=me, status=st.ERROR, exit_code=None,
                start=None, end=now(), **owned(work), reason=reason, tes_log=tes_log))
            summary["lost"] += 1
    return summary
