"""The runners page (services/gateway/ui/static/runners.js) and the RUN form's runner labels and GPUs, played
by ``tests.browser.driver`` like ``tests.browser.scenarios``; tests/e2e/test_fleet.py asserts on the answers."""
import re

from playwright.sync_api import expect

from tests.browser.scenarios import error_next_to, signed_in_page, wait_loaded


def runners_page(session, token, live, lost):
    """The runners listed, with their status, labels and GPUs; ``lost`` is shown LOST."""
    page = signed_in_page(session, token, "/ui/runners")
    seen = {"nav_current": page.locator('[data-nav="runners"][aria-current="page"]').count() == 1}
    for runner in live + lost:
        expect(page.locator(f'#runners tr[data-runner-id="{runner}"]')).to_be_visible()
    seen["rows"] = {runner: page.inner_text(f'#runners tr[data-runner-id="{runner}"]') for runner in live + lost}
    seen["statuses"] = {runner: page.get_attribute(f'#runners tr[data-runner-id="{runner}"]', "data-status")
                        for runner in live + lost}
    session.screenshot(page, "runners")
    return seen


def run_with_constraints(session, token, task_id):
    """RUN from the task's form with runner labels no runner has and a GPU: errors at their fields first."""
    page = signed_in_page(session, token, f"/ui/tasks/{task_id}")
    expect(page.locator("#run-fieldset")).to_be_enabled()
    seen = {}
    page.fill("#f-constraints", "zone=mars, bad!=x")
    page.click("#run-form button[type=submit]")
    expect(page.locator('#run-form [data-error-for="constraints"]')).not_to_be_empty()
    seen["labels_error"] = error_next_to(page, "constraints")
    page.fill("#f-constraints", "zone=mars")
    page.fill("#f-gpus", "99")
    page.click("#run-form button[type=submit]")
    expect(page.locator('#run-form [data-error-for="gpus"]')).not_to_be_empty()
    seen["gpus_error"] = error_next_to(page, "gpus")
    page.fill("#f-gpus", "1")
    page.click("#run-form button[type=submit]")
    page.wait_for_url(re.compile(r"/ui/results/[0-9a-f]{32}$"))
    wait_loaded(page)
    seen["result_id"] = page.url.rsplit("/", 1)[1]
    expect(page.locator("#fields [data-unschedulable]")).to_be_visible()
    seen["fields"] = page.inner_text("#fields")
    session.screenshot(page, "result-unschedulable")
    return seen
