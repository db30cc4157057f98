"""Schedules: a task RUN on a cron schedule, one concern a module.

- ``cron``: when ticks fall (croniter over zoneinfo; the DST rule);
- ``store``: schedules made, read, listed, changed, deleted, as the API shows them;
- ``fire``: a due tick made a run once, whatever the number of replicas; misfires, concurrency;
- ``entrypoints``: the scheduler service's RPCs and timer for them (a mixin).
"""
