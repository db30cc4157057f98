"""Many followers of one execution's logs, on a system of their own whose gateway takes FOLLOW_MAX=200.

However many follow, the gateway polls the scheduler once per interval for that
execution and hands every follower the same answer: counted by the scheduler's
``stevedore_log_reads_total`` (``whole``: each follower's first read; ``since``:
the polls), against the messages (output or keep-alive) one follower received,
one per poll.  The 201st follower is answered 503; followers that go away free
their places.
"""
import json

import eventlet
import pytest
import requests

from tests.e2e.test_logs import running_detail
from tests.e2e.test_metrics import own, value
from tests.support import started_system, wait_until

pytestmark = pytest.mark.e2e

FOLLOWERS = 200
LEAVERS = 10
# a line a second for five minutes; the test cancels it once every follower has some
JOB = ["sh", "-c", "i=0; while [ $i -lt 300 ]; do i=$((i+1)); echo line-$i; sleep 1; done"]


@pytest.fixture(scope="module")
def follow_system(vhost_pipeline, request, test_images):
    """A system of its own (own vhost and database: its one scheduler answers every read)."""
    # all followers come from 127.0.0.1: the per-client connection cap must admit them
    env = {"FOLLOW_MAX": str(FOLLOWERS), "HTTP_MAX_CONNECTIONS_PER_CLIENT": str(FOLLOWERS + 20)}
    with started_system(request, vhost_pipeline, "follow-many", env) as system:
        system.task = system.api.register(test_images["ok"], name="follow-ok")
        yield system


class Viewer:
    """One client following the logs over its own connection: its lines, messages and end."""

    def __init__(self, url, token):
        self.url, self.headers = url, {"Authorization": f"Bearer {token}"}
        self.status = None
        self.lines, self.messages, self.end = [], 0, None
        self.leave = False

    def run(self):
        with requests.get(self.url, headers=self.headers, stream=True, timeout=120) as response:
            self.status = response.status_code
            event, data = None, []
            for line in response.iter_lines(chunk_size=1, decode_unicode=True):
                if line.startswith(":"):
                    self.messages += 1  # a keep-alive: a poll that brought nothing new
                elif line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: "):
                    data.append(line[6:])
                elif line == "" and event:
                    self.messages += 1
                    if event == "stdout":
                        self.lines.extend(data)
                    elif event == "end":
                        self.end = json.loads(data[0])
                    event, data = None, []
                if self.leave:
                    return  # the connection closes: the gateway learns it at its next write


def log_reads(system):
    samples = own(system, "scheduler")
    return {kind: value(samples, "stevedore_log_reads_total", kind=kind) for kind in ("whole", "since")}


def test_two_hundred_followers_share_one_poller_and_the_next_one_is_refused(follow_system):
    api = follow_system.api
    result_id = api.run(follow_system.task["task_id"], times=1, command=JOB)
    detail = running_detail(api, result_id)
    url = f"{api.base_url}/result/{result_id}/detail/{detail['detail_id']}/logs/?follow=true"
    before = log_reads(follow_system)

    viewers = [Viewer(url, follow_system.token) for _ in range(FOLLOWERS)]
    threads = [eventlet.spawn(viewer.run) for viewer in viewers]
    wait_until(lambda: all(v.status == 200 and len(v.lines) >= 2 for v in viewers), timeout=120,
               what="every follower to have some output")

    refused = requests.get(url, headers={"Authorization": f"Bearer {follow_system.token}"}, timeout=30)
    assert refused.status_code == 503, refused.text
    assert refused.headers["Retry-After"].isdigit()
    assert refused.json()["error"] == "UNAVAILABLE" and refused.json()["message"].startswith("follow: ")

    leavers, stayers = viewers[:LEAVERS], viewers[LEAVERS:]
    for viewer in leavers:
        viewer.leave = True
    for thread in threads[:LEAVERS]:
        thread.wait()

    def a_place_is_free():
        with requests.get(url, headers={"Authorization": f"Bearer {follow_system.token}"}, stream=True,
                          timeout=30) as response:
            return response.status_code == 200

    wait_until(a_place_is_free, timeout=30, interval=0.5, what="a gone follower's place to be freed")

    cancelled = api.post(f"/result/{result_id}/detail/{detail['detail_id']}/", {"operation": "CANCEL"})
    assert cancelled.status_code == 202
    for thread in threads[LEAVERS:]:
        thread.wait()
    after = log_reads(follow_system)

    [first] = {tuple(v.lines) for v in stayers}  # every follower got the same output
    assert list(first) == [f"line-{i}" for i in range(1, len(first) + 1)] and len(first) >= 2
    [end] = {json.dumps(v.end, sort_keys=True) for v in stayers}
    assert json.loads(end)["status"] in ("CANCELLED", "KILLED")

    whole = after["whole"] - before["whole"]
    polls = after["since"] - before["since"]
    assert FOLLOWERS <= whole <= FOLLOWERS + 30  # each follower's first read (and the freed-place probes)
    most = max(v.messages for v in stayers)
    # one poll per interval for all of them: about one message per poll to each follower, not 200 polls
    assert 1 <= polls <= most + 5, (polls, most)
