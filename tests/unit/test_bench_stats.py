import os
import subprocess
import sys
import time

from bench.backbone import run_queue_wait
from bench.stats import percentile, rate, ratio, summary


def test_percentile_interpolates_like_numpy():
    assert percentile([1, 2, 3, 4], 50) == 2.5
    assert percentile([10], 95) == 10
    assert percentile(range(101), 95) == 95
    assert abs(percentile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 95) - 9.55) < 1e-9


def test_percentile_of_nothing_is_none():
    assert percentile([], 50) is None


def test_summary_scales_seconds_to_milliseconds():
    s = summary([0.010, 0.020, 0.030], scale=1000)
    assert s["n"] == 3 and s["p50"] == 20 and s["max"] == 30
    assert abs(s["mean"] - 20) < 1e-9


def test_rate_and_ratio_without_time_are_none():
    assert rate(200, 0) is None and rate(200, 4) == 50
    assert ratio(1, 0) is None and ratio(9, 10) == 0.9


def test_run_queue_wait_counts_a_busy_process_waiting_for_its_cpu():
    # two CPU-bound processes pinned to one CPU: each waits while the other runs
    spin = [sys.executable, "-c", "import time\nend = time.time() + 1.0\nwhile time.time() < end: pass"]
    cpu = str(min(os.sched_getaffinity(0)))
    procs = [subprocess.Popen(["taskset", "-c", cpu, *spin]) for _ in range(2)]
    labelled = {"spin-1": procs[0].pid, "spin-2": procs[1].pid}
    before = run_queue_wait(labelled)
    time.sleep(0.7)
    during = run_queue_wait(labelled)
    procs[0].wait(), procs[1].wait()
    # sharing one CPU, each spent about half of those 0.7 s waiting for it
    assert during["spin-1"] - before["spin-1"] > 0.1 and during["spin-2"] - before["spin-2"] > 0.1
    assert "spin-1" not in run_queue_wait(labelled)  # a group whose processes ended is absent
