from services.scheduler.runnersizes import WAITING, RunnerSizes

GIB = 1024 ** 3


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_a_run_no_runner_heard_from_fits_is_said_to_wait_and_why():
    sizes = RunnerSizes(keep_seconds=30, clock=Clock())
    sizes.claimed("small", 1 * GIB, 1.0)
    sizes.claimed("big", 4 * GIB, 2.0)
    assert sizes.largest() == (4 * GIB, 2.0)
    reason = sizes.misfit({"memory": "8g", "cpus": 3})
    assert reason.startswith(WAITING)
    assert "memory 8g (the largest gives 4g)" in reason and "cpus 3 (the largest gives 2)" in reason
    assert sizes.misfit({"memory": "4g", "cpus": 2}) is None
    assert sizes.misfit({"memory": None, "cpus": None}) is None


def test_nothing_is_said_before_any_runner_is_heard_from_or_when_one_takes_anything():
    sizes = RunnerSizes(keep_seconds=30, clock=Clock())
    assert sizes.largest() is None and sizes.misfit({"memory": "8g"}) is None
    sizes.claimed("small", 1 * GIB, 1.0)
    sizes.claimed("old-runner")  # sent no ceilings: takes anything
    assert sizes.largest() == (None, None) and sizes.misfit({"memory": "8g", "cpus": 64}) is None


def test_runners_count_while_they_claim_or_send_heartbeats():
    clock = Clock()
    sizes = RunnerSizes(keep_seconds=30, clock=clock)
    sizes.claimed("big", 8 * GIB, 4.0)
    sizes.claimed("small", 1 * GIB, 1.0)
    clock.now += 20
    sizes.heartbeat("big")       # busy with a long execution
    sizes.heartbeat("unknown")   # never claimed here: its size is not known
    clock.now += 20
    assert sizes.largest() == (8 * GIB, 4.0)  # small went silent
    clock.now += 31
    assert sizes.largest() is None


def test_a_ceiling_that_is_not_a_number_counts_as_none():
    sizes = RunnerSizes(keep_seconds=30, clock=Clock())
    sizes.claimed("odd", "lots", float("nan"))
    sizes.claimed("small", 1 * GIB, 1.0)
    assert sizes.largest() == (None, None)
