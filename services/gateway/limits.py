"""The installation's limits of a RUN, read once at start (RUN_MAX_TIMES, CONTAINER_MAX_MEMORY,
CONTAINER_MAX_CPUS): the RUN model the gateway checks bodies with, and the /openapi.json it serves,
both made from the contract (stevedore_jobs/contract/).

A bad ceiling stops the gateway, naming the setting (as it stops the scheduler), instead of a 500
per request.
"""
from nameko.extensions import DependencyProvider

from shared.settings import settings_of
from stevedore_jobs.contract import Limits, openapi, run_request


class RunLimits(DependencyProvider):
    def setup(self):
        settings = settings_of(self.container)
        self.limits = Limits(settings.run_max_times, *settings.ceilings)
        self.run = run_request(self.limits)
        self.spec = openapi.spec(self.limits)

    def get_dependency(self, worker_ctx):
        return self
