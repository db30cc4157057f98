"""DELETE of a task raced by RUNs on the real system: 409 while it has active runs, and no RUN slips in.

Each round fires RUNs and DELETEs of one READY task at once from many clients.
Every RUN's execution sleeps a minute, so a result made at any moment is still
active at the end: were one made after a DELETE's check (the window of a
check-then-act), the task would be gone with a run left on it.
"""
import random
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.support import Api

pytestmark = pytest.mark.e2e

ROUNDS = 10
RUNS = DELETES = 10


def race(api, task_id):
    """(RUN answers, DELETE answers): (status, body) each, every request let go at one barrier."""
    token = api.http.headers["Authorization"][7:]
    requests = ["RUN"] * RUNS + ["DELETE"] * DELETES
    random.shuffle(requests)
    barrier = threading.Barrier(len(requests))

    def send(kind):
        client = Api(api.base_url, token=token)  # a session per client: requests' are not thread-safe
        barrier.wait()
        if kind == "RUN":
            response = client.post(f"/task/{task_id}/", {"operation": "RUN", "times": 1, "env": {"SLEEP": "60"}})
        else:
            response = client.delete(f"/task/{task_id}/")
        return kind, response.status_code, response.json() if response.content else None

    with ThreadPoolExecutor(len(requests)) as pool:
        answers = list(pool.map(send, requests))
    return ([(code, body) for kind, code, body in answers if kind == "RUN"],
            [(code, body) for kind, code, body in answers if kind == "DELETE"])


def test_runs_and_deletes_racing_leave_no_run_on_a_deleted_task_and_no_server_error(api, test_images):
    tasks = [api.register(test_images["sleep"], wait=False) for _ in range(ROUNDS)]
    tasks = [api.wait_task(task["task_id"]) for task in tasks]
    assert all(task["status"] == "READY" for task in tasks)
    outcomes, accepted = [], []
    try:
        for task in tasks:
            task_id = task["task_id"]
            runs, deletes = race(api, task_id)
            accepted += [body["result_id"] for code, body in runs if code == 202]
            assert all(code in (202, 404) for code, _ in runs), runs
            assert all(code in (204, 404, 409) for code, _ in deletes), deletes
            deleted = any(code == 204 for code, _ in deletes)
            results = api.get("/result/", params={"task_id": task_id, "limit": 1000}).json()
            made = sorted(body["result_id"] for code, body in runs if code == 202)
            assert sorted(r["result_id"] for r in results) == made  # every accepted RUN made one result
            if deleted:
                assert api.get(f"/task/{task_id}/").status_code == 404
                assert made == [], f"task {task_id} was deleted with runs made of it: {made}"
            else:
                assert made, "no DELETE succeeded although no RUN was accepted"
                assert all(code == 409 and "active run" in body["message"] for code, body in deletes), deletes
                assert all(code == 202 for code, _ in runs), runs  # no RUN refused while the task stands
            outcomes.append("deleted" if deleted else f"kept with {len(made)} runs")
    finally:
        for result_id in accepted:
            api.post(f"/result/{result_id}/", {"operation": "CANCEL"})
        for task in tasks:
            api.delete(f"/task/{task['task_id']}/")
    print("rounds:", outcomes)
