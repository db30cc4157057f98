"""Concurrent identical reads share one backend call, and every answer is fresh.

Many clients poll the same result at once (a web UI per viewer, the CLI's
``--wait``, scripts): each GET was an RPC to the scheduler and a database read,
all giving the same answer.  ``Coalescer.call(key, fn)`` lets requests for the
same key share one call of ``fn`` -- but only a call that *began after they
arrived*, so no one is answered with a read older than their request (what
nginx's ``proxy_cache_lock`` or Go's ``singleflight`` would give).

Per key: while one call runs, requests arriving meanwhile gather in a batch
that makes its call when the running one ends; all of the batch get that
answer (or its exception).  So at most one call per key runs at a time, a
request waits for at most the call running when it arrived plus its own, and
a lone request makes its call at once.
"""
from eventlet.event import Event


class _Call:
    def __init__(self):
        self.done = Event()
        self.waiting = 1

    def outcome(self):
        return self.done.wait()  # raises the call's exception, as it was raised


class Coalescer:
    def __init__(self):
        self.running = {}   # key -> the call in progress
        self.gathering = {}  # key -> the next call, waiting for the running one to end
        self.calls = 0       # calls made (for tests and metrics)

    def call(self, key, fn):
        batch = self.gathering.get(key)
        if batch is not None:
            batch.waiting += 1
            return batch.outcome()
        running = self.running.get(key)
        if running is None:
            return self._make(key, _Call(), fn)
        batch = self.gathering[key] = _Call()
        try:
            running.done.wait()
        except Exception:  # its outcome is not ours: we only waited for it to end
            pass
        del self.gathering[key]
        return self._make(key, batch, fn)

    def _make(self, key, batch, fn):
        self.running[key] = batch
        self.calls += 1
        try:
            value = fn()
        except Exception as exc:
            batch.done.send_exception(exc)
        else:
            batch.done.send(value)
        finally:
            if self.running.get(key) is batch:
                del self.running[key]
        return batch.outcome()
