"""The schedules pages of the web UI, in a real browser, on a system whose schedules tick every second."""
import os
import uuid

import pytest
import requests

from tests.browser import Browser
from tests.support import ARTIFACTS, wait_until

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def browser(sched_system):
    running = Browser(sched_system.url, os.path.join(sched_system.log_dir, "browser.log"),
                      os.path.join(ARTIFACTS, "screenshots")).start()
    yield running
    running.stop()


def test_the_schedules_pages_are_served_with_their_script(sched_system):
    for path in ("/ui/schedules", "/ui/schedules/some-schedule"):
        page = requests.get(sched_system.url + path, timeout=10)
        assert page.status_code == 200 and 'src="/static/schedules.js?v=' in page.text
    script = requests.get(sched_system.url + "/static/schedules.js", timeout=10)
    assert script.status_code == 200 and script.headers["Content-Type"].startswith("text/javascript")


def test_add_run_suspend_resume_delete_a_schedule_and_see_its_failed_fires(browser, sched_system, image_registry):
    api = sched_system.api
    task = sched_system.tasks["ok"]
    broken = api.register(f"{image_registry.address}/no/such-image:2", name=f"ui-broken-{uuid.uuid4().hex[:6]}")
    failing = api.post("/schedule/", {"task_id": broken["task_id"], "cron": "* * * * * *", "run": {"times": 1}})
    assert failing.status_code == 201, failing.text
    failing_id = failing.json()["schedule_id"]
    wait_until(lambda: api.get(f"/schedule/{failing_id}/").json()["failed_fires"], timeout=20,
               what="a failed fire")
    try:
        seen = browser.run("schedules_pages", token=sched_system.token, task_id=task["task_id"],
                           task_name=task["name"], broken_schedule_id=failing_id)
    finally:
        api.http.patch(f"{api.base_url}/schedule/{failing_id}/", json={"suspend": True}, timeout=10)
    assert seen["nav_current"]
    assert seen["cron_error"].startswith("minute 'H' is not a number")
    assert seen["times_error"] == "must be an integer from 1 to 100000"
    assert "0 6 * * * (Europe/Berlin)" in seen["row"] and "Forbid" not in seen["row"]
    assert "Added schedule morning ui; next run 20" in seen["flash"]
    assert "Europe/Berlin" in seen["fields"] and "0 fired" in seen["fields"]
    assert "run now" in seen["fire"] and "FIRED" in seen["fire"]
    assert "suspended" in seen["suspended_fields"]
    assert seen["after_delete"] == 0
    assert "FAILED" in seen["failed_fire"] and "only a READY task can be run" in seen["failed_fire"]


def test_the_schedules_pages_fit_a_phone(browser, sched_system):
    api = sched_system.api
    schedule = api.post("/schedule/", {"task_id": sched_system.tasks["ok"]["task_id"], "cron": "@weekly",
                                       "name": "phone", "run": {"times": 1}}).json()
    seen = browser.run("phone_pages", token=sched_system.token, pages={
        "schedules": "/ui/schedules", "schedule": f"/ui/schedules/{schedule['schedule_id']}"})
    for name, page in seen.items():
        assert page["scroll_width"] <= 375, f"{name} scrolls sideways on a phone: {page['scroll_width']}px"
