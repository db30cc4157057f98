"""Lists whose pages are bounded in bytes (LIST_PAGE_BYTES, shared/pages.py): big items stored by one caller
never make a list read huge; the page holds fewer items and links the next, and the Links give every item once.

The system's LIST_PAGE_BYTES is 2 MiB; each schedule and result stored here is about 900 KB (a RUN near the
1 MiB body limit), each TES task about 800 KB in the FULL view: two of them to a page.
"""
import json
import os
import re
import subprocess
import sys
import uuid

import pytest

from tests.conftest import mapped_system
from tests.support import wait_until

pytestmark = pytest.mark.e2e

PAGE_BYTES = 2 * 1024 * 1024
VALUE = 60000               # characters of one env value (ENV_VALUE_MAX is 65536)
VALUES = 15                 # 15 x 60000: a RUN body of ~900 KB (HTTP_MAX_BODY_BYTES is 1 MiB)
STORED = 5
TES_LOG = 262144            # TES_LOG_BYTES: all of each executor's stdout (256 KiB, as stored)
COMMAND = os.path.join(os.path.dirname(sys.executable), "stevedore")
LINK = re.compile(r'<([^>]+)>;\s*rel="next"')


@pytest.fixture(scope="module")
def paged_system(request, vhost_pipeline, docker_client, standin_registry):
    yield from mapped_system(request, vhost_pipeline, docker_client, standin_registry, "pages",
                             env={"LIST_PAGE_BYTES": str(PAGE_BYTES), "TES_LOG_BYTES": str(TES_LOG)})


@pytest.fixture(scope="module")
def task(paged_system):
    made = paged_system.api.register("alpine", name=f"pages-{uuid.uuid4().hex[:6]}")
    assert made["status"] == "READY", made
    return made


def big_env(n):
    return {f"BIG_{i}": chr(ord("a") + (n + i) % 26) * VALUE for i in range(VALUES)}


def walk(api, path):
    """Every page of a listing, by its Links: [(items, link or None)]."""
    pages = []
    while path:
        response = api.get(path)
        assert response.status_code == 200, response.text
        assert len(response.content) <= PAGE_BYTES or len(response.json()) == 1
        link = LINK.search(response.headers.get("Link", ""))
        pages.append((response.json(), link.group(1) if link else None))
        path = pages[-1][1]
    return pages


def ids_of(pages, field):
    return [item[field] for items, _ in pages for item in items]


@pytest.fixture(scope="module")
def schedules(paged_system, task):
    made = []
    for n in range(STORED):
        body = {"task_id": task["task_id"], "cron": "0 0 1 1 *", "name": f"big-{n}",
                "run": {"times": 1, "env": big_env(n)}}
        response = paged_system.api.post("/schedule/", body)
        assert response.status_code == 201, response.text[:500]
        made.append(response.json()["schedule_id"])
    return made[::-1]  # newest first, as listed


@pytest.fixture(scope="module")
def results(paged_system, task):
    made = []
    for n in range(STORED):  # held QUEUED by a constraint no runner meets: nothing runs
        body = {"operation": "RUN", "times": 1, "env": big_env(n), "constraints": {"zone": "nowhere"}}
        response = paged_system.api.post(f"/task/{task['task_id']}/", body)
        assert response.status_code == 202, response.text[:500]
        made.append(response.json()["result_id"])
    return made[::-1]


def test_a_list_of_big_schedules_comes_in_pages_under_the_bound_each_once_in_order(paged_system, schedules):
    pages = walk(paged_system.api, "/schedule/?limit=1000")
    assert [len(items) for items, _ in pages] == [2, 2, 1]
    assert all(link for _, link in pages[:-1]) and pages[-1][1] is None
    assert ids_of(pages, "schedule_id") == schedules
    assert pages[0][0][0]["run"]["env"] == big_env(STORED - 1)  # whole items, not cut ones


def test_a_list_of_results_with_big_params_comes_in_pages_each_once_in_order(paged_system, results):
    pages = walk(paged_system.api, "/result/?limit=1000")
    assert [len(items) for items, _ in pages] == [2, 2, 1]
    assert ids_of(pages, "result_id") == results
    assert "limit=1000" in pages[0][1] and f"after={results[1]}" in pages[0][1]


def test_a_page_of_small_items_is_cut_by_its_limit_as_before(paged_system, results):
    pages = walk(paged_system.api, "/result/?limit=1")
    assert [len(items) for items, _ in pages] == [1] * STORED
    assert ids_of(pages, "result_id") == results


def test_the_cli_lists_every_big_schedule_once_in_order(paged_system, schedules):
    environ = {key: value for key, value in os.environ.items() if not key.startswith("STEVEDORE_")}
    environ.update({"STEVEDORE_URL": paged_system.url, "STEVEDORE_TOKEN": paged_system.token})
    listed = subprocess.run([COMMAND, "--json", "schedule", "ls"], check=False, env=environ, capture_output=True,
                            text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert listed.returncode == 0, listed.stderr
    assert [s["schedule_id"] for s in json.loads(listed.stdout)] == schedules


def test_the_web_ui_shows_every_big_schedule_once_in_order_by_show_more(paged_system, schedules):
    from tests.browser import Browser
    from tests.support import ARTIFACTS

    browser = Browser(paged_system.url, os.path.join(paged_system.log_dir, "browser.log"),
                      os.path.join(ARTIFACTS, "screenshots")).start()
    try:
        seen = browser.run("schedules_read_to_the_end", token=paged_system.token)
    finally:
        browser.stop()
    assert seen["first_page"] == 2 and seen["clicks"] == 2
    assert seen["ids"] == schedules
    assert seen["task_picked"] >= 2  # "pick a task" and the task, read by its Links


# ------------------------------------------------------------------ GA4GH TES

TES = "/ga4gh/tes/v1/tasks"


@pytest.fixture(scope="module")
def tes_tasks(paged_system):
    """Four ended TES tasks, each with three executors printing 256 KiB (kept whole): ~800 KB in FULL."""
    api, made = paged_system.api, []
    for n in range(4):
        letter = "pqrs"[n]
        script = f"head -c {TES_LOG} /dev/zero | tr '\\0' {letter}"
        body = {"name": f"loud-{n}", "executors": [
            {"image": "alpine", "command": ["sh", "-c", script]} for _ in range(3)]}
        response = api.post(TES, body)
        assert response.status_code == 200, response.text
        made.append(response.json()["id"])

    def ended():
        views = [api.get(f"{TES}/{task_id}").json() for task_id in made]
        return views if all(v["state"] in ("COMPLETE", "EXECUTOR_ERROR", "SYSTEM_ERROR") for v in views) else None

    states = wait_until(ended, timeout=240, interval=1, what="the loud TES tasks to end")
    assert {v["state"] for v in states} == {"COMPLETE"}, states
    return made[::-1]


def tes_walk(api, query):
    pages, token = [], None
    while True:
        response = api.get(f"{TES}?{query}" + (f"&page_token={token}" if token else ""))
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(response.content) <= PAGE_BYTES or len(page["tasks"]) == 1
        pages.append(page["tasks"])
        token = page.get("next_page_token")
        if not token:
            return pages


def test_a_full_tes_list_of_loud_tasks_comes_in_pages_under_the_bound_each_once(paged_system, tes_tasks):
    pages = tes_walk(paged_system.api, "view=FULL&page_size=2048&name_prefix=loud-")
    assert [len(tasks) for tasks in pages] == [2, 2]
    assert [t["id"] for tasks in pages for t in tasks] == tes_tasks
    stdout = pages[0][0]["logs"][0]["logs"][0]["stdout"]
    assert len(stdout) == TES_LOG and set(stdout) == {"s"}  # the newest: whole logs, not cut ones


def test_a_minimal_tes_list_of_the_same_tasks_is_one_page(paged_system, tes_tasks):
    pages = tes_walk(paged_system.api, "view=MINIMAL&page_size=2048&name_prefix=loud-")
    assert [[t["id"] for t in tasks] for tasks in pages] == [tes_tasks]


def test_a_tes_list_filtered_by_state_follows_its_tokens_too(paged_system, tes_tasks):
    pages = tes_walk(paged_system.api, "view=FULL&page_size=3&state=COMPLETE&name_prefix=loud-")
    assert all(len(tasks) <= 2 for tasks in pages)
    assert [t["id"] for tasks in pages for t in tasks] == tes_tasks
