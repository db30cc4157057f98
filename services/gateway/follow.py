"""``?follow=true`` on an execution's logs: server-sent events until the execution ends.

The events (their format: services/gateway/log_events.py) come from the scheduler's
kept output, polled over RPC (``get_log_bytes``).

Bounded (``Followers``, one per gateway process):

* at most ``FOLLOW_MAX`` followers at once; one more is answered 503 with
  Retry-After.  A follower's place is freed when its stream ends or its client
  goes away (the keep-alive comments make a write, which is how eventlet.wsgi
  learns that a client is gone).
* one ``Poller`` per followed execution, however many follow it: every
  ``POLL_SECONDS`` it asks the scheduler, through the gateway's own RPC proxy
  (``RPC_TIMEOUT``), only for what is kept past the offsets its followers have
  (``get_log_bytes(..., since=...)``), and hands the answer to each of them.
  A follower that joins reads what is kept itself, once, then is fed by the
  poller.  A follower ``BACKLOG`` answers behind (its client stopped reading)
  has them dropped and is left out of the polls until it waits for more; the
  next poll then starts from its own offsets, so it misses nothing that is kept.
* a stream ends when the execution ends, or after ``MAX_FOLLOW_SECONDS``.
* while it streams, the token or sign-in session it was let in with is asked
  again every ``CHECK_SECONDS`` (services/gateway/auth.py ``Admission``: through
  the gateway process's caches, never one registry lookup per chunk); once it
  no longer lets the same caller in (revoked, expired, signed out, its
  principal disabled or moved to another role or team) the stream ends with an
  ``error`` event (log_events.py ``denied_event``) and closes.

Lock order: none; everything here runs in eventlet green threads of one
process and changes state only between its own RPC calls.
"""
import functools
import logging
import time

import eventlet
from eventlet.queue import Empty, LightQueue
from nameko.exceptions import IncorrectSignature
from nameko.extensions import DependencyProvider

from services.gateway.log_events import KEEPALIVE, STREAMS, Follower, attempt_of, denied_event, end_event
from shared.errors import StevedoreError, Unavailable
from shared.settings import GatewaySettings, settings_of
from shared.statuses import TERMINAL

log = logging.getLogger(__name__)

POLL_SECONDS = 0.5
MAX_FOLLOW_SECONDS = 6 * 3600
DEFAULT_MAX = GatewaySettings.model_fields["follow_max"].default  # FOLLOW_MAX's one default
BACKLOG = 20            # answers a follower may have waiting before it is caught up by offsets instead
KEEPALIVE_SECONDS = 15  # a comment at least this often, even while a poll hangs
RETRY_AFTER = 5         # seconds, in the 503 past FOLLOW_MAX
CHECK_SECONDS = 1.0     # how often a stream's token or session is asked again (TOKEN_CACHE_SECONDS at most 1)
DENIED = object()       # what ``FollowStream._fed`` answers once its token or session no longer lets it in


class Place:
    """One follower's place under FOLLOW_MAX; ``release`` is idempotent."""

    def __init__(self, followers):
        self._followers = followers

    def release(self):
        if self._followers is not None:
            self._followers.count -= 1
            self._followers = None


class Subscription:
    """A follower as its poller sees it: a queue of answers, and the offsets it will have read them to."""

    def __init__(self, follower):
        self.follower = follower
        self.queue = LightQueue()
        self.lagging = False  # it fell BACKLOG answers behind; given more once it waits for them
        self.caught_up()

    def ready(self):
        """Whether it takes answers now: not lagging, or lagging but done with all it had."""
        return not self.lagging or self.queue.getting() > 0

    def caught_up(self):
        """Offsets as the follower has them now (after dropping what was waiting for it)."""
        self.attempt = self.follower.attempt
        self.offsets = dict(self.follower.seen)

    def fits(self, answer):
        """Whether ``answer`` leaves nothing out for this follower (it starts at or before its offsets)."""
        attempt = attempt_of(answer)
        if attempt != self.attempt:
            return _order(attempt) > _order(self.attempt)  # a later attempt, read from its start
        return all((answer.get(f"{s}_since") or 0) <= self.offsets[s] for s in STREAMS)

    def give(self, answer):
        if attempt_of(answer) != self.attempt:
            self.attempt, self.offsets = attempt_of(answer), {s: 0 for s in STREAMS}
        for stream in STREAMS:
            self.offsets[stream] = max(self.offsets[stream], answer.get(f"{stream}_total") or 0)
        self.queue.put(("logs", answer))


def _order(attempt):
    return -1 if attempt is None else attempt


class CallerBound:
    """A service's RPCs, each made as ``caller`` (a service refuses a call that names none)."""

    def __init__(self, service, caller):
        self._service = service
        self._caller = caller

    def __getattr__(self, name):
        return functools.partial(getattr(self._service, name), caller=self._caller)


class Poller:
    """Polls one execution for all of its followers (``Followers.pollers``)."""

    def __init__(self, followers, key, rpc):
        self.followers = followers
        self.key = key
        self.rpc = rpc
        self.subs = []
        self.offsets_supported = True

    def since(self, subs):
        """Where the next read starts: the lowest offsets ``subs`` have (all on one attempt)."""
        attempts = {sub.attempt for sub in subs}
        if len(attempts) != 1:
            return {"attempt": None, **{s: 0 for s in STREAMS}}
        return {"attempt": attempts.pop(), **{s: min(sub.offsets[s] for sub in subs) for s in STREAMS}}

    def run(self):
        try:
            while self.subs:
                self.followers.sleep(self.followers.poll_seconds)
                if self.subs:
                    self.poll()
        except Exception:  # noqa: BLE001 -- a poller's end must end its followers, never the gateway
            log.exception("following %s/%s failed", *self.key)
            self.end_all("the gateway could not read the output (see its log)")
        finally:
            if self.followers.pollers.get(self.key) is self:
                del self.followers.pollers[self.key]

    def read(self, ready):
        self.followers.polls += 1
        if self.offsets_supported:
            try:
                return self.rpc.get_log_bytes(*self.key, since=self.since(ready))
            except IncorrectSignature:  # a scheduler from before ``since`` (a rolling upgrade): whole reads
                self.offsets_supported = False
        return self.rpc.get_log_bytes(*self.key)

    def poll(self):
        # a client that stopped reading (its writes blocked) neither drags the offsets read from
        # back to its own nor gets answers; once it waits for more, the next read includes it
        ready = [sub for sub in self.subs if sub.ready()]
        if not ready:
            return
        try:
            answer = self.read(ready)
        except Unavailable as exc:  # the scheduler did not answer in RPC_TIMEOUT: ask again next interval
            log.warning("following %s/%s: %s", *self.key, exc)
            return
        except StevedoreError as exc:  # the execution is gone (result deleted)
            self.end_all(str(exc))
            return
        given = []
        for sub in list(self.subs):
            if sub.queue.qsize() >= BACKLOG:  # a slow client: drop what waits; it is read for again
                while sub.queue.qsize():
                    sub.queue.get_nowait()
                sub.caught_up()
                sub.lagging = True
            elif sub.ready() and sub.fits(answer):
                sub.give(answer)
                sub.lagging = False
                given.append(sub)
        if answer["status"] in TERMINAL and given:
            detail = self._detail(answer)
            for sub in given:  # those still missing some of the end are read for again
                sub.queue.put(("end", detail))
                self._drop(sub)

    def _detail(self, answer):
        try:
            return self.rpc.get_detail(*self.key)
        except StevedoreError:
            return {"status": answer["status"], "exit_code": None, "reason": None}

    def end_all(self, why):
        """Every follower's end, when this execution's output can no longer be read."""
        detail = {"status": None, "exit_code": None, "reason": f"follow: {why}"[:500]}
        for sub in list(self.subs):
            sub.queue.put(("end", detail))
            self._drop(sub)

    def _drop(self, sub):
        if sub in self.subs:
            self.subs.remove(sub)


class Followers:
    """A gateway process's log followers: at most ``limit`` at once, one ``Poller`` per followed execution.

    ``sleep`` and ``clock`` are injectable (unit tests); ``spawn`` starts a poller.
    """

    def __init__(self, limit=DEFAULT_MAX, poll_seconds=POLL_SECONDS, max_seconds=MAX_FOLLOW_SECONDS,
                 sleep=eventlet.sleep, clock=time.monotonic, spawn=eventlet.spawn,
                 keepalive_seconds=KEEPALIVE_SECONDS, check_seconds=CHECK_SECONDS):
        self.limit = limit
        self.poll_seconds = poll_seconds
        self.max_seconds = max_seconds
        self.keepalive_seconds = keepalive_seconds
        self.check_seconds = check_seconds
        self.sleep = sleep
        self.clock = clock
        self.spawn = spawn
        self.count = 0       # followers holding a place
        self.pollers = {}    # (result_id, detail_id) -> Poller
        self.polls = 0       # reads made by pollers (tests)

    def reserve(self):
        """A ``Place``, or None when ``limit`` followers already follow."""
        if self.count >= self.limit:
            return None
        self.count += 1
        return Place(self)

    def full_response(self):
        """(status, headers, payload) of the 503 past the limit."""
        return 503, {"Retry-After": str(RETRY_AFTER)}, {
            "error": "UNAVAILABLE",
            "message": f"follow: this gateway already streams {self.limit} followers (FOLLOW_MAX); "
                       f"retry later, or read the logs without follow"}

    def stream(self, key, rpc, first, place, admission=None):
        """The body of one follower's response: an iterable of SSE text whose ``close`` frees its place;
        ``admission`` (auth.py ``Admission``): asked again while it streams (None: never)."""
        return FollowStream(self, key, rpc, first, place, admission)

    def subscribe(self, key, rpc, follower):
        sub = Subscription(follower)
        poller = self.pollers.get(key)
        if poller is None:
            poller = self.pollers[key] = Poller(self, key, rpc)
            poller.subs.append(sub)
            self.spawn(poller.run)
        else:
            poller.subs.append(sub)
        return sub

    def unsubscribe(self, key, sub):
        poller = self.pollers.get(key)
        if poller is not None and sub in poller.subs:
            poller.subs.remove(sub)


class FollowStream:
    """One follower's SSE body.  eventlet.wsgi calls ``close`` when the response ends, however it
    ends (a client gone, an error, even before the first byte); ``close`` frees its place."""

    def __init__(self, followers, key, rpc, first, place, admission=None):
        self.followers = followers
        self.admission = admission
        self.key = key
        self.rpc = rpc
        self.first = first
        self.place = place
        self.sub = None

    def __iter__(self):
        try:
            yield from self._events()
        finally:
            self.close()

    def close(self):
        if self.sub is not None:
            self.followers.unsubscribe(self.key, self.sub)
            self.sub = None
        self.place.release()

    def _events(self):
        follower = Follower()
        yield from follower.new_events(self.first)
        detail = None
        if self.first["status"] not in TERMINAL:
            self.sub = self.followers.subscribe(self.key, self.rpc, follower)
            detail = yield from self._fed(follower)
        if detail is DENIED:  # nothing more for this reader, not even the end's status
            yield denied_event()
            return
        if detail is None:  # it had ended already, or MAX_FOLLOW_SECONDS passed
            try:
                detail = self.rpc.get_detail(*self.key)
            except StevedoreError as exc:  # deleted meanwhile, or the scheduler away: still an end
                detail = {"status": None, "exit_code": None, "reason": f"follow: {exc}"[:500]}
        yield from follower.flush()
        yield end_event(detail)

    def _fed(self, follower):
        """Events from the poller's answers until the end (its detail), the deadline (None), or the
        request's token or session no longer letting it in (DENIED)."""
        followers = self.followers
        deadline = followers.clock() + followers.max_seconds
        checks = self.admission is not None
        wait = min(followers.keepalive_seconds, followers.check_seconds) if checks else followers.keepalive_seconds
        next_check = deadline if not checks else followers.clock() + followers.check_seconds
        quiet = 0.0  # seconds waited in vain since the last write (a keep-alive is due at keepalive_seconds)
        while followers.clock() < deadline:
            if checks and followers.clock() >= next_check:
                if not self.admission.holds():
                    return DENIED
                next_check = followers.clock() + followers.check_seconds
            try:
                kind, value = self.sub.queue.get(timeout=wait)
            except Empty:
                quiet += wait
                if quiet >= followers.keepalive_seconds:
                    quiet = 0.0
                    yield KEEPALIVE
                continue
            quiet = 0.0
            if kind == "end":
                return value
            sent = False
            for event in follower.new_events(value):
                sent = True
                yield event
            if not sent:
                yield KEEPALIVE
        return None


class FollowersProvider(DependencyProvider):
    """The gateway process's ``Followers``, with ``FOLLOW_MAX`` from config.yml."""

    def setup(self):
        self.followers = Followers(limit=settings_of(self.container).follow_max,
                                   spawn=self.container.spawn_managed_thread)

    def get_dependency(self, worker_ctx):
        return self.followers
