"""An execution's output, live while it runs and kept after it ends."""
import json
import time

import pytest

from tests.support import wait_until

pytestmark = pytest.mark.e2e

TICKS = ["sh", "-c", "for i in 1 2 3 4 5 6; do echo tick-$i; sleep 0.7; done; echo bye >&2"]


def read_events(response):
    """(event, data, received_at) from a text/event-stream response."""
    event, data = None, []
    for line in response.iter_lines(chunk_size=1, decode_unicode=True):
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: "):
            data.append(line[6:])
        elif line == "" and event:
            yield event, "\n".join(data), time.time()
            event, data = None, []


def running_detail(api, result_id):
    def check():
        details = api.details(result_id)
        return details[0] if details and details[0]["status"] == "RUNNING" else None

    return wait_until(check, timeout=30, what="the execution to run")


def test_follow_streams_output_live_until_the_execution_ends(api, ready_tasks):
    result_id = api.run(ready_tasks["ok"]["task_id"], times=1, command=TICKS)
    detail = running_detail(api, result_id)
    path = f"/result/{result_id}/detail/{detail['detail_id']}/logs/"
    with api.http.get(api.base_url + path, params={"follow": "true"}, stream=True, timeout=60) as response:
        assert response.status_code == 200
        assert response.headers["Content-Type"].startswith("text/event-stream")
        events = list(read_events(response))
    stdout = "".join(data + "\n" for event, data, _ in events if event == "stdout")
    assert stdout == "".join(f"tick-{i}\n" for i in range(1, 7))
    assert [data for event, data, _ in events if event == "stderr"] == ["bye"]
    end = [json.loads(data) for event, data, _ in events if event == "end"]
    assert end == [{"status": "COMPLETE", "exit_code": 0, "reason": None}]
    finished = api.get(f"/result/{result_id}/detail/{detail['detail_id']}/").json()
    first_tick_at = next(at for event, data, at in events if event == "stdout")
    assert first_tick_at < finished["end"] - 1, "output arrived only after the execution ended"


def test_logs_are_readable_while_running(api, ready_tasks):
    result_id = api.run(ready_tasks["ok"]["task_id"], times=1, command=TICKS)
    detail = running_detail(api, result_id)
    path = f"/result/{result_id}/detail/{detail['detail_id']}/logs/"
    partial = wait_until(lambda: (logs := api.get(path).json())["stdout"] and logs, timeout=20,
                         what="some output")
    assert partial["status"] == "RUNNING"
    assert partial["stdout"].startswith("tick-1\n")
    api.wait_result(result_id)
    final = api.get(path).json()
    assert final["stdout"].count("tick-") == 6 and final["stdout_total"] == len(final["stdout"])


def test_follow_of_a_finished_execution_replays_and_ends(api, ready_tasks):
    result_id = api.run(ready_tasks["ok"]["task_id"], times=1)
    api.wait_result(result_id)
    [detail] = api.details(result_id)
    path = f"/result/{result_id}/detail/{detail['detail_id']}/logs/?follow=true"
    with api.http.get(api.base_url + path, stream=True, timeout=30) as response:
        events = [(e, d) for e, d, _ in read_events(response)]
    assert events[0] == ("stdout", "hello from stevedore")
    assert events[-1][0] == "end" and json.loads(events[-1][1])["status"] == "COMPLETE"


def test_interleaved_streams_of_a_short_execution_are_kept_apart(api, ready_tasks):
    # read from the engine in one call and split by the stream of each frame
    big = "x" * 70000  # longer than one frame of the engine's log stream
    script = ("echo one; echo two >&2; echo three; head -c 70000 /dev/zero | tr '\\0' x >&2; "
              "echo >&2; printf 'no newline'")
    result_id = api.run(ready_tasks["ok"]["task_id"], times=1, command=["sh", "-c", script])
    api.wait_result(result_id)
    [detail] = api.details(result_id)
    assert detail["status"] == "COMPLETE"
    assert detail["start"] is not None and detail["end"] >= detail["start"]
    logs = api.get(f"/result/{result_id}/detail/{detail['detail_id']}/logs/").json()
    assert logs["stdout"] == "one\nthree\nno newline"
    assert logs["stderr"] == f"two\n{big}\n"
    assert logs["stdout_total"] == len(logs["stdout"]) and logs["stderr_total"] == len(logs["stderr"])
