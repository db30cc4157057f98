"""RUN parameters, proven on the real runners: env, timeout, retries, parallelism, priority, limits, logs."""
import pytest

from tests.support import wait_until

pytestmark = pytest.mark.e2e


def logs_of(api, result_id, detail):
    return api.get(f"/result/{result_id}/detail/{detail['detail_id']}/logs/").json()


def test_every_container_gets_its_stevedore_variables(api, ready_tasks):
    result_id = api.run(ready_tasks["env"]["task_id"], times=3)
    assert api.wait_result(result_id)["status"] == "COMPLETE"
    indices = set()
    for detail in api.details(result_id):
        lines = dict(line.split("=", 1) for line in logs_of(api, result_id, detail)["stdout"].split())
        assert lines["STEVEDORE_RESULT_ID"] == result_id
        assert lines["STEVEDORE_DETAIL_ID"] == detail["detail_id"]
        assert lines["STEVEDORE_ATTEMPT"] == "1"
        assert lines["STEVEDORE_EXECUTION_INDEX"] == str(detail["index"])
        indices.add(lines["STEVEDORE_EXECUTION_INDEX"])
    assert indices == {"0", "1", "2"}


def test_an_execution_over_its_timeout_ends_killed(api, ready_tasks):
    result_id = api.run(ready_tasks["sleep"]["task_id"], times=1, timeout=2, env={"SLEEP": "60"})
    result = api.wait_result(result_id, timeout=40)
    assert result["status"] == "ERROR"
    [detail] = api.details(result_id)
    assert detail["status"] == "KILLED"
    assert detail["reason"].startswith("timeout")
    assert 2 <= detail["duration"] < 15


def test_a_failed_attempt_is_retried_and_its_history_kept(api, ready_tasks):
    result_id = api.run(ready_tasks["flaky"]["task_id"], times=2, retries=2)
    result = api.wait_result(result_id, timeout=60)
    assert result["status"] == "COMPLETE"
    for detail in api.details(result_id):
        assert detail["attempt"] == 2
        assert [a["status"] for a in detail["attempts"]] == ["ERROR", "COMPLETE"]
        assert detail["attempts"][0]["exit_code"] == 1
        assert detail["attempts"][0]["end"] <= detail["attempts"][1]["start"]  # backoff, then again
        assert "attempt 2 ok" in logs_of(api, result_id, detail)["stdout"]


def test_without_retries_a_failure_is_final(api, ready_tasks):
    result_id = api.run(ready_tasks["flaky"]["task_id"], times=1)
    assert api.wait_result(result_id)["status"] == "ERROR"
    [detail] = api.details(result_id)
    assert detail["attempt"] == 1 and len(detail["attempts"]) == 1


def test_parallelism_is_never_exceeded(api, ready_tasks):
    result_id = api.run(ready_tasks["sleep"]["task_id"], times=4, parallelism=1, env={"SLEEP": "1"})
    assert api.wait_result(result_id, timeout=60)["status"] == "COMPLETE"
    spans = sorted((d["start"], d["end"]) for d in api.details(result_id))
    for (_, end), (start, _) in zip(spans, spans[1:]):
        assert start >= end, f"executions overlapped: {spans}"


def test_higher_priority_starts_before_lower_priority_still_queued(api, ready_tasks):
    blocker = api.run(ready_tasks["sleep"]["task_id"], times=2, env={"SLEEP": "3"})
    wait_until(lambda: api.get(f"/result/{blocker}/").json()["counts"]["RUNNING"] == 2, timeout=30,
               what="both runners busy")
    low = api.run(ready_tasks["ok"]["task_id"], times=2, priority=1)
    high = api.run(ready_tasks["ok"]["task_id"], times=2, priority=9)
    api.wait_result(low, timeout=60), api.wait_result(high, timeout=60)
    last_high = max(d["start"] for d in api.details(high))
    first_low = min(d["start"] for d in api.details(low))
    assert last_high <= first_low


def test_memory_and_cpu_limits_are_applied(api, ready_tasks):
    result_id = api.run(ready_tasks["ok"]["task_id"], times=1, memory="64m", cpus=0.5,
                        command=["sh", "-c", "cat /sys/fs/cgroup/memory/memory.limit_in_bytes "
                                 "/sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu/cpu.cfs_period_us "
                                 "2>/dev/null || cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/cpu.max"])
    assert api.wait_result(result_id)["status"] == "COMPLETE"
    [detail] = api.details(result_id)
    out = logs_of(api, result_id, detail)["stdout"].split()
    assert str(64 * 1024 * 1024) in out
    assert ("50000" in out and "100000" in out)


def test_chatty_output_keeps_the_last_mebibyte_and_says_it_was_cut(api, ready_tasks):
    # 1.5 MiB of numbered lines on stdout, a little on stderr
    command = ["sh", "-c", "i=0; while [ $i -lt 150000 ]; do echo line-$i-xxxx; i=$((i+1)); done | "
               "head -c 1572864; echo done >&2"]
    result_id = api.run(ready_tasks["ok"]["task_id"], times=1, command=command)
    assert api.wait_result(result_id, timeout=60)["status"] == "COMPLETE"
    [detail] = api.details(result_id)
    logs = logs_of(api, result_id, detail)
    assert logs["stdout_truncated"] is True
    assert len(logs["stdout"].encode()) == 1024 * 1024
    assert logs["stderr"] == "done\n" and logs["stderr_truncated"] is False


def test_a_result_echoes_its_parameters_and_duration_percentiles(api, ready_tasks):
    result_id = api.run(ready_tasks["ok"]["task_id"], times=3, env={"K": "v"}, priority=7, retries=1)
    result = api.wait_result(result_id)
    assert result["params"]["env"] == {"K": "v"}
    assert result["params"]["priority"] == 7 and result["params"]["retries"] == 1
    result = api.get(f"/result/{result_id}/").json()
    durations = sorted(d["duration"] for d in api.details(result_id))
    assert result["durations"]["p50"] == pytest.approx(durations[1], abs=1e-4)
    assert durations[1] <= result["durations"]["p95"] <= durations[2]


def test_a_job_over_its_memory_limit_ends_error_out_of_memory(api, ready_tasks):
    # busybox tail keeps the last line whole, and no newline comes: 200 MB against a 32 MB limit
    result_id = api.run(ready_tasks["ok"]["task_id"], times=1, memory="32m",
                        command=["sh", "-c", "head -c 200000000 /dev/zero | tail -n 1 >/dev/null"])
    assert api.wait_result(result_id, timeout=120)["status"] == "ERROR"
    [detail] = api.details(result_id)
    assert detail["reason"] == "out of memory: killed at its memory limit" \
        or "killed by signal 9" in detail["reason"], detail["reason"]


def test_every_execution_runs_under_the_process_limit(api, ready_tasks):
    result_id = api.run(ready_tasks["ok"]["task_id"], times=1, command=[
        "sh", "-c", "cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max"])
    assert api.wait_result(result_id)["status"] == "COMPLETE"
    [detail] = api.details(result_id)
    assert logs_of(api, result_id, detail)["stdout"].strip() == "1024"  # CONTAINER_PIDS_LIMIT
