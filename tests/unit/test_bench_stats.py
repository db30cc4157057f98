import os
import subprocess
import sys
import time

from bench.backbone import run_queue_wait, waited
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
    between = waited(before, during)
    assert between["spin-1"] > 0.1 and between["spin-2"] > 0.1
    assert 0.1 < between["spin-1"] < 0.7 and 0.1 < between["spin-2"] < 0.7
    after = run_queue_wait(labelled)
    assert not any(label == "spin-1" for label, _, _ in after)  # a group whose processes ended is absent
    # a thread gone between two readings takes its time with it, never a negative figure
    assert "spin-1" not in waited(during, after) and all(v >= 0 for v in waited(during, after).values())


def test_waited_counts_new_threads_from_zero_and_never_goes_negative():
    before = {("shims", 10, 10): 0.5, ("shims", 11, 11): 0.2, ("gateway", 5, 5): 1.0}
    after = {("shims", 11, 11): 0.3, ("shims", 12, 12): 0.05, ("gateway", 5, 5): 1.25}
    got = waited(before, after)
    assert abs(got["shims"] - 0.15) < 1e-9 and abs(got["gateway"] - 0.25) < 1e-9


def test_cpu_list_reads_what_taskset_takes():
    import argparse

    import pytest

    from bench.main import cpu_list

    assert cpu_list("1") == [1] and cpu_list("0,2") == [0, 2] and cpu_list("2-3") == [2, 3]
    with pytest.raises(argparse.ArgumentTypeError, match="not a CPU list"):
        cpu_list("one")


def test_execution_plane_places_every_thread_and_puts_them_back():
    import pytest

    from bench.backbone import ExecutionPlane

    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        pytest.skip("needs two CPUs")
    threaded = "import threading, time\nthreading.Thread(target=time.sleep, args=(30,)).start()\ntime.sleep(30)"
    runner, control = (subprocess.Popen([sys.executable, "-c", threaded]) for _ in range(2))
    try:
        wait = time.time() + 10
        while len(os.listdir(f"/proc/{runner.pid}/task")) < 2 and time.time() < wait:
            time.sleep(0.05)
        plane = ExecutionPlane([runner.pid], [control.pid], nice=7, cpus=[cpus[-1]])
        plane.ENGINE = plane.BACKBONE = ("no-such-process",)  # leave the machine's engine alone
        with plane:
            for tid in map(int, os.listdir(f"/proc/{runner.pid}/task")):
                assert os.getpriority(os.PRIO_PROCESS, tid) == 7
                assert os.sched_getaffinity(tid) == {cpus[-1]}
            for tid in map(int, os.listdir(f"/proc/{control.pid}/task")):
                assert os.getpriority(os.PRIO_PROCESS, tid) == 0
                assert os.sched_getaffinity(tid) == set(cpus[:-1])
        for pid in (runner.pid, control.pid):
            for tid in map(int, os.listdir(f"/proc/{pid}/task")):
                assert os.getpriority(os.PRIO_PROCESS, tid) == 0 and os.sched_getaffinity(tid) == set(cpus)
    finally:
        runner.kill(), control.kill()
        runner.wait(), control.wait()


def test_execution_plane_refuses_to_leave_the_control_plane_no_cpu():
    import pytest

    from bench.backbone import ExecutionPlane

    plane = ExecutionPlane([], [], cpus=sorted(os.sched_getaffinity(0)))
    plane.ENGINE = plane.BACKBONE = ("no-such-process",)
    with pytest.raises(ValueError, match="leaves no CPU"):
        plane.__enter__()


def test_histogram_percentile_interpolates_within_its_bucket():
    from bench.stats import histogram_percentile

    inf = float("inf")
    # 10 observations at most 0.01, 10 more up to 0.02, none beyond
    buckets = [(0.01, 10), (0.02, 20), (0.05, 20), (inf, 20)]
    assert histogram_percentile(buckets, 50) == 0.01
    assert abs(histogram_percentile(buckets, 75) - 0.015) < 1e-12
    assert abs(histogram_percentile(buckets, 25) - 0.005) < 1e-12  # the first bucket from 0
    assert histogram_percentile([(0.01, 0), (inf, 0)], 50) is None
    assert histogram_percentile([(0.01, 1), (inf, 4)], 99) == 0.01  # beyond the last bound: that bound


def test_slot_turnaround_is_each_lanes_exit_to_its_next_start_split_at_the_engines_create():
    from bench.turnaround import turnarounds
    runner = {"stevedore.managed": "true", "stevedore.runner": "r1"}
    other = {"stevedore.managed": "true", "stevedore.runner": "r2"}
    events = [(1.0, "create", "a", runner), (1.1, "start", "a", runner), (2.0, "die", "a", runner),
              (2.3, "destroy", "a", runner), (2.1, "create", "b", runner), (2.25, "start", "b", runner),
              (2.2, "create", "x", other), (2.3, "start", "x", other),      # another lane: not a's next
              (3.0, "die", "b", runner), (9.5, "create", "c", runner), (9.6, "start", "c", runner),  # idle
              (1.5, "create", "s", {"stevedore.managed": "true", "stevedore.bench": "swarm"})]
    gaps = turnarounds(events, max_gap=5.0)
    assert [round(g, 3) for g in gaps["total"]] == [0.25]
    assert [round(g, 3) for g in gaps["exit_to_create"]] == [0.1]
    assert [round(g, 3) for g in gaps["create_to_start"]] == [0.15]
    assert [round(g, 3) for g in gaps["exit_to_destroy"]] == [0.3]


def test_a_container_created_ahead_of_the_exit_is_the_lanes_next_with_a_negative_exit_to_create():
    from bench.turnaround import turnarounds
    runner = {"stevedore.managed": "true", "stevedore.runner": "r1"}
    events = [(1.0, "create", "a", runner), (1.1, "start", "a", runner), (1.5, "create", "b", runner),
              (2.0, "die", "a", runner), (2.05, "start", "b", runner),
              (2.6, "create", "h", runner), (4.0, "destroy", "h", runner),  # prepared, handed back: never started
              (3.0, "die", "b", runner), (3.2, "create", "c", runner), (3.3, "start", "c", runner)]
    gaps = turnarounds(events)
    assert [round(g, 3) for g in gaps["total"]] == [0.05, 0.3]
    assert [round(g, 3) for g in gaps["exit_to_create"]] == [-0.5, 0.2]


def test_raw_threads_are_lanes_of_their_own():
    from bench.turnaround import LANE_LABEL, turnarounds
    t1 = {"stevedore.bench": "raw", LANE_LABEL: "t1"}
    t2 = {"stevedore.bench": "raw", LANE_LABEL: "t2"}
    events = [(1.0, "die", "a", t1), (1.05, "create", "b", t2), (1.1, "start", "b", t2),
              (1.2, "create", "c", t1), (1.3, "start", "c", t1)]
    assert [round(g, 3) for g in turnarounds(events)["total"]] == [0.3]


def test_runner_phase_means_come_from_the_histograms_sums_and_counts_between_scrapes():
    from bench.turnaround import phase_means
    phase, claim = "stevedore_runner_phase_seconds", "stevedore_runner_claim_seconds"
    before = {(phase, "report"): (1.0, 10), (claim, "work"): (0.5, 10)}
    after = {(phase, "report"): (1.5, 20), (phase, "remove"): (0.02, 10), (claim, "work"): (1.0, 20),
             (claim, "none"): (3.0, 4)}
    assert phase_means(before, after) == {"report": 50.0, "remove": 2.0, "claim": 50.0}
    prepared = "stevedore_runner_prepared"
    assert phase_means({(prepared, "started"): (5.0, 0.0)},
                       {(prepared, "started"): (12.0, 0.0), (prepared, "handed_back"): (1.0, 0.0)}) == {
        "prepared_started": 7.0, "prepared_handed_back": 1.0}


def test_a_containers_first_event_is_found_by_its_id_or_by_its_executions_label():
    from bench.turnaround import first_seen
    execution = {"stevedore.detail_id": "d1"}
    events = [(1.0, "create", "a", {}), (1.2, "start", "a", {}), (2.0, "create", "b", execution),
              (2.5, "create", "b", execution)]
    assert first_seen(events, "create", container_id="a") == 1.0
    assert first_seen(events, "start", container_id="a") == 1.2
    assert first_seen(events, "create", detail_id="d1") == 2.0
    assert first_seen(events, "create", detail_id="d2") is None
    assert first_seen(events, "die", container_id="a") is None
