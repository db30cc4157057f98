"""The gateway's coalesced reads: one ``Coalescer`` for all of a gateway process's requests."""
from nameko.extensions import DependencyProvider

from shared.coalesce import Coalescer


class SharedReads(DependencyProvider):
    def setup(self):
        self.coalescer = Coalescer()

    def get_dependency(self, worker_ctx):
        return self.coalescer.call
