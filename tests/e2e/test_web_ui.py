"""The web UI, in a real browser, against the whole running system.

Debian's Chromium is driven by Playwright in a process of its own (see
tests/browser: Playwright's sync API does not run under eventlet), one browser
for the module; each test plays a scenario there and asserts on what it saw.
Screenshots of the pages land in artifacts/screenshots/.
"""
import os
import re
import uuid

import pytest
import requests

from tests.browser import Browser
from tests.support import ARTIFACTS, wait_until

pytestmark = pytest.mark.e2e

SCREENSHOTS = os.path.join(ARTIFACTS, "screenshots")
PAGES = ("/ui/tasks", "/ui/tasks/some-task", "/ui/results", "/ui/results/some-result",
         "/ui/results/some-result/executions/some-execution", "/ui/signin")
ASSETS = {"app.js": "text/javascript", "app.css": "text/css", "favicon.svg": "image/svg+xml"}
SVG_NAMESPACE = "http://www.w3.org/2000/svg"  # a name in SVG markup, not something fetched
URL = re.compile(r"(?:https?:)?//[\w.-]+\.[a-z]{2,}[^\s\"')]*")


@pytest.fixture(scope="module")
def browser(system):
    running = Browser(system.url, os.path.join(system.log_dir, "browser.log"), SCREENSHOTS).start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def ui(browser, system):
    """Play a scenario of tests/browser/scenarios.py with the system's API token."""
    return lambda scenario, **args: browser.run(scenario, token=system.token, **args)


def unique(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def running(api, result_id):
    """Wait for an execution of the result to be RUNNING; answer it."""
    last = {}

    def check():
        last["details"] = api.details(result_id)
        return next((d for d in last["details"] if d["status"] == "RUNNING"), None)

    try:
        return wait_until(check, timeout=60, what=f"an execution of {result_id} RUNNING")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; its executions: {last.get('details')}") from None


# ---------------------------------------------------------------- served as it should be

def test_pages_and_assets_are_public_and_load_nothing_from_elsewhere(system):
    home = requests.get(system.url + "/", allow_redirects=False, timeout=10)
    assert home.status_code == 302 and home.headers["Location"].endswith("/ui/tasks")
    texts = []
    for path in PAGES:
        page = requests.get(system.url + path, timeout=10)
        assert page.status_code == 200, path
        assert page.headers["Content-Type"].startswith("text/html")
        assert "default-src 'self'" in page.headers["Content-Security-Policy"]
        assert re.search(r'src="/static/app\.js\?v=[0-9a-f]+"', page.text)
        texts.append(page.text)
    for name, mimetype in ASSETS.items():
        asset = requests.get(f"{system.url}/static/{name}", timeout=10)
        assert asset.status_code == 200 and asset.headers["Content-Type"].startswith(mimetype), name
        assert requests.get(f"{system.url}/static/{name}", headers={"If-None-Match": asset.headers["ETag"]},
                            timeout=10).status_code == 304
        texts.append(asset.text)
    outside = {url for text in texts for url in URL.findall(text)}
    assert outside <= {SVG_NAMESPACE}, outside


def test_ui_paths_do_not_shadow_the_api(system):
    assert requests.get(system.url + "/ui/nowhere", timeout=10).status_code == 404
    assert requests.get(system.url + "/static/nothing.js", timeout=10).status_code == 404
    assert requests.get(system.url + "/static/..%2Fui.py", timeout=10).status_code == 404
    api_answer = requests.get(system.url + "/task/", timeout=10)
    assert api_answer.status_code == 401 and api_answer.json()["error"] == "UNAUTHORIZED"
    slash = requests.get(system.url + "/ui/tasks/", allow_redirects=False, timeout=10)
    assert slash.status_code == 301 and slash.headers["Location"].endswith("/ui/tasks")


def test_sign_in_from_another_site_is_refused(system):
    response = requests.post(system.url + "/ui/signin", data={"token": system.token, "next": "/ui/tasks"},
                             headers={"Origin": "http://evil.example"}, allow_redirects=False, timeout=10)
    assert response.status_code == 403
    assert "stevedore_session" not in response.headers.get("Set-Cookie", "")


# ---------------------------------------------------------------- in the browser

def test_sign_in_keeps_the_token_in_a_cookie_until_sign_out(ui, system):
    seen = ui("sign_in_and_out")
    assert seen["asked_to_sign_in_at"] == "/ui/signin?next=%2Fui%2Ftasks"
    assert seen["wrong_token_error"] == "the gateway does not accept this token"
    assert seen["still_at_signin"]
    cookie = seen["cookie"]
    assert {k: cookie[k] for k in ("httpOnly", "sameSite", "path")} == {"httpOnly": True, "sameSite": "Strict",
                                                                         "path": "/"}
    assert system.token not in cookie["value"] and len(cookie["value"]) >= 43  # a session's secret
    assert seen["old_cookie_refused"] == 401
    assert seen["signed_in_at"] == "/ui/tasks" and seen["tasks_listed"]
    assert seen["cookie_after_sign_out"] is False
    assert seen["asked_again_at"] == "/ui/signin?next=%2Fui%2Fresults%3Fstatus%3DCOMPLETE"


def test_a_registered_task_is_in_progress_then_ready_without_a_reload(ui, test_images, image_registry):
    good = {"repository": test_images["ok"], "name": unique("ui-ok")}
    missing = {"repository": f"{image_registry.address}/stevedore-test/not-there:1",
               "name": unique("ui-missing")}
    seen = ui("register_tasks", good=good, missing=missing)

    first, last = seen["good"]["seen"][0], seen["good"]["seen"][-1]
    assert first["status"] in ("SUBMITTED", "IMPORTING") and first["label"] == "In progress"
    assert last["status"] == "READY" and last["label"] == "Ready"
    assert seen["missing"]["seen"][-1]["status"] == "ERROR"
    [reason] = seen["missing"]["reason"]
    assert "not found" in reason
    assert seen["same_document"], "the task list was reloaded"


def test_validation_errors_show_next_to_their_field(ui, api, ready_tasks, test_images):
    task = ready_tasks["ok"]
    before = len(api.get("/result/", params={"task_id": task["task_id"], "limit": 1000}).json())
    seen = ui("validation_errors", repository=test_images["ok"], taken_name=task["name"],
              task_id=task["task_id"])

    expected = {
        "repository": "not a valid Docker image reference",
        "name": f"a task named '{task['name']}' already exists",
        "times": "must be an integer from 1 to",
        "env": "line 1 is not KEY=value",
        "priority": "must be an integer from 0 to 9",
        "memory": "must be a size",
    }
    for field, words in expected.items():
        assert list(seen[field]["messages"]) == [field], seen[field]  # next to that field, and only there
        assert words in seen[field]["messages"][field]
        assert seen[field]["invalid"] == "true" and seen[field]["focused"] == field
    assert seen["repository_cleared"]
    assert seen["url_after"] == f"/ui/tasks/{task['task_id']}"  # no run was started
    assert len(api.get("/result/", params={"task_id": task["task_id"], "limit": 1000}).json()) == before


def test_a_run_started_in_the_ui_fills_its_progress_bar_without_a_reload(ui, api, ready_tasks):
    task = ready_tasks["sleep"]
    seen = ui("run_and_watch", task_id=task["task_id"], times=6, sleep=2)

    steps = seen["progress"]
    assert steps[0]["done"] < 6, "the run was over before the list showed it"
    assert [s["done"] for s in steps] == sorted(s["done"] for s in steps)
    assert seen["final"]["done"] == seen["final"]["total"] == 6
    assert seen["final"]["filled"] == pytest.approx(1, abs=0.01)
    assert seen["final"]["status"] == "COMPLETE" and seen["final"]["label"] == "6 of 6 finished"
    assert seen["same_document"], "the results list was reloaded"

    page = seen["result_page"]
    assert page["executions"] == 6 and page["timeline_bars"] == 6 and page["duration_bars"] == 6
    assert "at most 2 at once" in page["timeline_label"]  # parallelism 2
    assert not page["cancel_visible"]
    assert seen["execution_page"]["stdout"] == "slept 2s\n"

    result = api.get(f"/result/{seen['result_id']}/").json()
    assert result["status"] == "COMPLETE" and result["task_id"] == task["task_id"]
    assert result["params"]["parallelism"] == 2
    assert result["params"]["env"] == {"SLEEP": "2", "GREETING": "hi there"}  # the comment line is skipped


def test_the_results_list_is_filtered_by_task_and_status(ui, api, ready_tasks):
    task_id = ready_tasks["fail"]["task_id"]
    failed = api.run(task_id, times=1)
    passed = api.run(task_id, times=1, command="true")
    api.wait_result(failed), api.wait_result(passed)
    seen = ui("filter_results", task_id=task_id, status="ERROR")

    by_task = seen["by_task"]
    assert by_task["url"] == f"/ui/results?task_id={task_id}"
    assert {failed, passed} <= {row["result_id"] for row in by_task["rows"]}
    assert all(row["task"] == task_id for row in by_task["rows"])
    both = seen["by_task_and_status"]
    assert both["url"] == f"/ui/results?status=ERROR&task_id={task_id}"
    assert both["chosen"] == ["ERROR", task_id]
    ids = {row["result_id"] for row in both["rows"]}
    assert failed in ids and passed not in ids
    assert all(row["status"] == "ERROR" and row["task"] == task_id for row in both["rows"])


def test_an_execution_page_follows_a_running_execution_to_its_end(ui, api, ready_tasks):
    result_id = api.run(ready_tasks["ok"]["task_id"], times=1,
                        command="sh -c 'echo first line; sleep 8; echo last line'")
    detail = running(api, result_id)
    seen = ui("follow_execution", result_id=result_id, detail_id=detail["detail_id"], first_line="first line")
    assert seen["status_at_open"] == "RUNNING"
    assert seen["status_at_first_line"] == "RUNNING", "the output came only once it ended"
    assert seen["log_state_while_running"] == "following live"  # the ?follow=true event stream
    assert seen["status_at_end"] == "COMPLETE" and seen["stdout"] == "first line\nlast line\n"
    assert seen["same_document"], "the execution page was reloaded"


def test_an_execution_then_a_long_run_are_cancelled_from_their_pages_after_confirmation(ui, api, ready_tasks):
    result_id = api.run(ready_tasks["sleep"]["task_id"], times=4, env={"SLEEP": "60"})
    victim = running(api, result_id)
    seen = ui("cancel_run", result_id=result_id, detail_id=victim["detail_id"])

    run = f"Cancel result {result_id[:8]}"
    assert [m.split("?")[0] for m in seen["dialogs"]] == [f"Cancel execution #{victim['index']}", run, run]
    assert seen["execution"] == {"status": "KILLED", "button_visible": False}
    assert seen["after_decline"]["status"] in ("QUEUED", "RUNNING")  # declined: the run goes on
    assert seen["after_decline"]["button_visible"]
    assert seen["status"] == "KILLED"
    assert "Cancel requested" in seen["flash"]
    result = api.wait_result(result_id, timeout=30)
    assert result["status"] == "KILLED" and result["cancel_requested"]
    assert result["counts"]["QUEUED"] == result["counts"]["RUNNING"] == 0
    assert result["counts"]["KILLED"] >= 1 and sum(result["counts"].values()) == 4
    assert api.get(f"/result/{result_id}/detail/{victim['detail_id']}/").json()["status"] == "KILLED"


def test_a_task_is_reimported_then_deleted_from_its_page(ui, api, test_images):
    task = api.register(test_images["ok"], name=unique("ui-buttons"))
    seen = ui("task_buttons", task_id=task["task_id"])

    assert seen["statuses"][0] == "READY" and seen["statuses"][-1] == "READY", seen
    assert set(seen["statuses"][1:-1]) <= {"SUBMITTED", "IMPORTING"} and len(seen["statuses"]) >= 3, seen
    assert "Re-import started" in seen["flash"]
    assert seen["dialogs"] == [f"Delete task {task['name']}? Its finished runs stay listed."]
    assert api.get(f"/task/{task['task_id']}/").status_code == 404


def test_failed_executions_are_rerun_from_the_result_page(ui, api, ready_tasks):
    result_id = api.run(ready_tasks["fail"]["task_id"], times=2)
    assert api.wait_result(result_id)["status"] == "ERROR"
    seen = ui("rerun_failed", result_id=result_id)

    rerun_id = seen["url"].rsplit("/", 1)[1]
    rerun = api.get(f"/result/{rerun_id}/").json()
    assert rerun["rerun_of"] == result_id and rerun["times"] == 2
    assert result_id[:8] in seen["rerun_of"]
    assert rerun_id in api.get(f"/result/{result_id}/").json()["reruns"]


def test_an_ended_result_is_deleted_from_its_page_after_confirmation(ui, api, ready_tasks):
    running = api.run(ready_tasks["sleep"]["task_id"], times=1, env={"SLEEP": "30"})
    ended = api.run(ready_tasks["ok"]["task_id"], times=2)
    api.wait_result(ended)
    seen = ui("delete_result", result_id=ended, other_id=running)

    question = f"Delete result {ended[:8]}? Its executions and their output are deleted with it."
    assert seen["dialogs"] == [question, question]
    assert seen["after_decline"]["button_visible"] and seen["after_decline"]["url"].endswith(ended)
    assert seen["landed_on"].endswith("/ui/results")
    assert seen["listed"] == 0 and seen["other_listed"] >= 1
    assert api.get(f"/result/{ended}/").status_code == 404
    # a run still going offers no Delete button
    buttons = ui("result_buttons", result_id=running)
    assert buttons["cancel_visible"] is True and buttons["delete_visible"] is False
    api.post(f"/result/{running}/", {"operation": "CANCEL"})


def test_every_page_fits_a_phone(ui, api, ready_tasks):
    task_id = ready_tasks["ok"]["task_id"]
    result_id = api.run(task_id, times=3)
    api.wait_result(result_id)
    detail_id = api.details(result_id)[0]["detail_id"]
    seen = ui("phone_pages", pages={
        "tasks": "/ui/tasks", "task": f"/ui/tasks/{task_id}", "results": "/ui/results",
        "result": f"/ui/results/{result_id}", "execution": f"/ui/results/{result_id}/executions/{detail_id}",
    })
    for name, page in seen.items():
        assert page["scroll_width"] <= 375, f"{name} scrolls sideways on a phone: {page['scroll_width']}px"
        assert os.path.getsize(page["screenshot"]) > 0


def test_control_characters_of_the_output_are_shown_as_marks_not_obeyed(ui, api, ready_tasks):
    script = r"printf 'a\000b\377\033[31mred\n'; printf '\033]0;pwned\007\342\200\256rtl\n' >&2"
    result_id = api.run(ready_tasks["ok"]["task_id"], times=1, command=["sh", "-c", script])
    assert api.wait_result(result_id)["status"] == "COMPLETE"
    [detail] = api.details(result_id)
    seen = ui("execution_output", result_id=result_id, detail_id=detail["detail_id"])
    assert seen["stdout"] == "a\\x00b\ufffd\\x1b[31mred\n"
    assert seen["marks"] == ["\\x00", "\\x1b"]
    assert seen["stderr"] == "\\x1b]0;pwned\\x07\\u202ertl\n"
    assert "pwned" not in seen["title"]
    assert seen["raw"] == f"/result/{result_id}/detail/{detail['detail_id']}/logs/stdout/"


# ---------------------------------------------------------------- runs that wait for others

def test_the_run_form_sets_after_and_the_result_page_links_what_it_waits_for(ui, api, ready_tasks):
    first = api.run(ready_tasks["sleep"]["task_id"], times=1, env={"SLEEP": "4"})
    unknown = uuid.uuid4().hex
    seen = ui("run_after", task_id=ready_tasks["ok"]["task_id"], first_id=first, unknown_id=unknown)
    assert seen["error"] == f"after[0].result_id: no result {unknown}" and seen["invalid"] == "true"
    result = api.get(f"/result/{seen['result_id']}/").json()
    assert result["params"]["after"] == [{"result_id": first, "when": "ENDED"}]
    assert "Waits for" in seen["fields_waiting"] and "to end, however it ends" in seen["fields_waiting"]
    assert seen["link"] == f"/ui/results/{first}"
    assert "(waiting)" not in seen["fields_done"]
    assert seen["followed_to"] == first
    started = min(d["start"] for d in api.details(seen["result_id"]))
    assert started >= api.details(first)[0]["end"]


def test_the_page_of_a_run_cancelled_by_its_dependency_says_why(ui, api, ready_tasks):
    failed = api.run(ready_tasks["fail"]["task_id"], times=1)
    api.wait_result(failed)
    cancelled = api.run(ready_tasks["ok"]["task_id"], times=1, after=[{"result_id": failed}])
    seen = ui("cancelled_by_dependency", result_id=cancelled)
    assert f"result {failed} ended ERROR; this run waited for it to end COMPLETE" in seen["fields"]
