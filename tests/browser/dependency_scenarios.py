"""Scenarios of runs that wait for others (a RUN's ``after``), played like those of scenarios.py."""
import re

from playwright.sync_api import expect

from tests.browser.scenarios import error_next_to, goto, signed_in_page


def run_after(session, token, task_id, first_id, unknown_id):
    """RUN from the task's page after another run: an unknown id is named next to the field; a known one
    makes a run whose page links the run it waits for."""
    answer = {}
    page = signed_in_page(session, token, f"/ui/tasks/{task_id}")
    expect(page.locator("#run-fieldset")).to_be_enabled()
    page.fill("#f-times", "1")
    page.fill("#f-after", unknown_id)
    page.click("#run-form button[type=submit]")
    expect(page.locator('#run-form [data-error-for="after"]')).not_to_be_empty()
    answer["error"] = error_next_to(page, "after")
    answer["invalid"] = page.get_attribute("#f-after", "aria-invalid")

    page.fill("#f-after", first_id)
    page.select_option("#f-when", "ENDED")
    page.click("#run-form button[type=submit]")
    page.wait_for_url(re.compile(r"/ui/results/[0-9a-f]{32}$"))
    answer["result_id"] = page.url.rsplit("/", 1)[1]
    expect(page.locator("#fields")).to_contain_text("Waits for")
    answer["fields_waiting"] = page.inner_text("#fields")
    session.screenshot(page, "result-waiting")
    link = page.locator("#fields .after-list a")
    answer["link"] = link.get_attribute("href")
    expect(page.locator("#title .badge")).to_have_attribute("data-status", "COMPLETE", timeout=90000)
    answer["fields_done"] = page.inner_text("#fields")
    link.click()
    page.wait_for_url(re.compile(re.escape(first_id) + "$"))
    goto(session, page, page.url.replace(session.base_url, ""))
    answer["followed_to"] = page.url.rsplit("/", 1)[1]
    return answer


def cancelled_by_dependency(session, token, result_id):
    """The page of a run a dependency cancelled: what it says."""
    page = signed_in_page(session, token, f"/ui/results/{result_id}")
    expect(page.locator("#title .badge")).to_have_attribute("data-status", "CANCELLED")
    expect(page.locator("#fields")).to_contain_text("Reason")
    session.screenshot(page, "result-cancelled-by-dependency")
    return {"fields": page.inner_text("#fields")}
