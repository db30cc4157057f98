"""Scenarios of a run's failure policy in the web UI (played as ``tests.browser.scenarios.failure_policy``)."""
import re

from playwright.sync_api import expect

from tests.browser.scenarios import error_next_to, signed_in_page, wait_loaded


def failure_policy(session, token, task_id):
    """RUN with a failure policy from the task's page; see the policy and why the run stopped on its page."""
    answer = {}
    page = signed_in_page(session, token, f"/ui/tasks/{task_id}")
    expect(page.locator("#run-fieldset")).to_be_enabled()
    # both exit-code rules: refused next to the field the API names
    page.fill("#f-retry_on_exit_codes", "1")
    page.fill("#f-no_retry_on_exit_codes", "2")
    page.click("#run-form button[type=submit]")
    expect(page.locator('[data-error-for="no_retry_on_exit_codes"]')).not_to_be_empty()
    answer["both_rules_error"] = error_next_to(page, "no_retry_on_exit_codes")
    # an exit code out of range: the API names it by its place in the list, shown next to the list's field
    page.fill("#f-no_retry_on_exit_codes", "")
    page.fill("#f-retry_on_exit_codes", "1, 300")
    page.click("#run-form button[type=submit]")
    expect(page.locator('[data-error-for="retry_on_exit_codes"]')).not_to_be_empty()
    answer["range_error"] = error_next_to(page, "retry_on_exit_codes")

    page.fill("#f-retry_on_exit_codes", "")
    page.fill("#f-times", "20")
    page.fill("#f-retries", "2")
    page.fill("#f-max_failures", "2")
    page.fill("#f-no_retry_on_exit_codes", "3 4")
    page.fill("#f-deadline", "600")
    session.screenshot(page, "run-form-policy")
    page.click("#run-form button[type=submit]")
    page.wait_for_url(re.compile(r"/ui/results/[0-9a-f]{32}$"))
    answer["result_id"] = page.url.rsplit("/", 1)[1]
    wait_loaded(page)
    expect(page.locator("#title .badge")).to_have_attribute("data-status", "ERROR", timeout=60_000)
    expect(page.locator("#fields [data-reason]")).to_have_attribute("data-reason", "max_failures")
    answer["policy"] = page.inner_text("#fields [data-policy]")
    answer["stopped"] = page.inner_text("#fields [data-reason]")
    answer["fields"] = page.inner_text("#fields")
    answer["cancel_visible"] = page.locator("#cancel").is_visible()
    answer["rerun_visible"] = page.locator("#rerun").is_visible()
    session.screenshot(page, "result-stopped-by-policy")
    return answer
