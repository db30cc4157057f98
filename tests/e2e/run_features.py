"""Helpers of the e2e tests of the run features together (test_run_features_together.py,
test_run_features_hostile.py): RUN, PATCH, CANCEL, RERUN_FAILED and schedules over HTTP, and an events watcher."""
from nameko.events import event_handler

ENDED = ("COMPLETE", "ERROR", "CANCELLED", "KILLED")
NEVER = "0 0 1 1 *"  # a schedule that does not tick during a test: its runs are "run now"s


def after(*result_ids, when="COMPLETE"):
    return [{"result_id": result_id, "when": when} for result_id in result_ids]


def result(api, result_id):
    answer = api.get(f"/result/{result_id}/")
    assert answer.status_code == 200, answer.text
    return answer.json()


def run(api, task, **body):
    answer = api.post(f"/task/{task['task_id']}/", {"operation": "RUN", **body})
    assert answer.status_code == 202, answer.text
    return answer.json()


def patch(api, result_id, body):
    return api.http.patch(f"{api.base_url}/result/{result_id}/", json=body, timeout=30)


def cancel(api, result_id):
    return api.post(f"/result/{result_id}/", {"operation": "CANCEL"})


def rerun(api, result_id):
    return api.post(f"/result/{result_id}/", {"operation": "RERUN_FAILED"})


def refused(answer, field, status=400):
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert body["error"] in ("VALIDATION_ERROR", "CONFLICT", "NOT_FOUND"), body
    assert body["message"].startswith(f"{field}:") or body.get("field") == field, body
    return body


def schedule(api, task, run_body, **fields):
    answer = api.post("/schedule/", {"task_id": task["task_id"], "cron": NEVER, "run": run_body, **fields})
    assert answer.status_code == 201, answer.text
    return answer.json()


def run_now(api, schedule_id):
    return api.post(f"/schedule/{schedule_id}/", {"operation": "RUN"})


class Watcher:
    name = "together_watcher"
    seen = []

    @event_handler("scheduler", "result_finished")
    def on_result_finished(self, payload):
        self.seen.append(("result_finished", payload["result_id"], payload.get("status"), payload.get("reason")))

    @event_handler("scheduler", "result_cancelled")
    def on_result_cancelled(self, payload):
        self.seen.append(("result_cancelled", payload["result_id"], None, payload.get("reason")))

    @event_handler("scheduler", "result_released")
    def on_result_released(self, payload):
        self.seen.append(("result_released", payload["result_id"], None, None))


def said(result_id, event):
    return [entry for entry in Watcher.seen if entry[0] == event and entry[1] == result_id]
