"""How much the runners this scheduler hears from can give one execution, to say why one waits.

A runner sends its ceilings (``max_memory``, ``max_cpus``) with each claim and
is given only executions that fit them (``executions.claims.claim``).  An execution
that fits none of them would wait in silence: the sweep asks ``misfit`` about
each active run, and writes the answer as the ``reason`` of its queued
executions (cleared when one starts).  Runners count while they claim or
heartbeat; a runner from before ceilings (it sends none) fits anything.  With
several scheduler processes each knows the runners that talked to it lately,
so the reason is a hint, never a verdict: nothing is refused or ended for it.
"""
import time

from nameko.extensions import DependencyProvider

from shared.settings import settings_of
from shared.validation import memory_bytes, size_text

WAITING = "waiting for a runner that fits"


class RunnerSizes:
    def __init__(self, keep_seconds, clock=time.monotonic):
        self.keep_seconds = keep_seconds
        self.clock = clock
        self.sizes = {}  # runner -> (max memory bytes, max cpus), None: no limit
        self.heard = {}  # runner -> when it last claimed or sent a heartbeat

    def claimed(self, runner, max_memory=None, max_cpus=None):
        self.sizes[runner] = (_number(max_memory), _number(max_cpus))
        self.heard[runner] = self.clock()

    def heartbeat(self, runner):
        if runner in self.sizes:
            self.heard[runner] = self.clock()

    def largest(self):
        """(memory, cpus) the biggest runner heard from lately can give (None: no limit), or None if none was."""
        stamp = self.clock()
        for runner, at in list(self.heard.items()):
            if stamp - at > self.keep_seconds:
                del self.heard[runner], self.sizes[runner]
        if not self.sizes:
            return None
        memories = [size[0] for size in self.sizes.values()]
        cpus = [size[1] for size in self.sizes.values()]
        return (None if None in memories else max(memories)), (None if None in cpus else max(cpus))

    def misfit(self, params):
        """Why no runner heard from lately can run an execution of a run with ``params``, or None."""
        largest = self.largest()
        if largest is None:
            return None
        max_memory, max_cpus = largest
        memory, cpus = memory_bytes((params or {}).get("memory")), (params or {}).get("cpus")
        asks = []
        if memory and max_memory is not None and memory > max_memory:
            asks.append(f"memory {params['memory']} (the largest gives {size_text(max_memory)})")
        if cpus and max_cpus is not None and cpus > max_cpus:
            asks.append(f"cpus {cpus:g} (the largest gives {max_cpus:g})")
        if not asks:
            return None
        return (f"{WAITING}: no runner heard from in the last {self.keep_seconds:g}s can give it "
                f"{' and '.join(asks)}; it runs once one that can asks for work")


def _number(value):
    """A ceiling as a runner sent it, read as the claim reads it (executions.claims._ceiling): not a number, None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        return None
    return max(value, 0)


class RunnerSizesProvider(DependencyProvider):
    """The service's ``RunnerSizes``, one per process, shared by its workers."""

    def setup(self):
        self.sizes = RunnerSizes(keep_seconds=settings_of(self.container).lease_seconds)

    def get_dependency(self, worker_ctx):
        return self.sizes
