"""The operator's ceilings of what one RUN may ask (CONTAINER_MAX_MEMORY, CONTAINER_MAX_CPUS).

Read once at start: a bad value stops the scheduler with a message naming it.
"""
from nameko.extensions import DependencyProvider

from shared import validation


class RunCeilings(DependencyProvider):
    def setup(self):
        self.ceilings = validation.ceilings(self.container.config)

    def get_dependency(self, worker_ctx):
        return self.ceilings  # (max memory bytes, max cpus)
