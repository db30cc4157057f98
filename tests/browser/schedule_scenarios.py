"""The schedules pages in the browser (services/gateway/ui/static/schedules.js); played like scenarios.py's."""
import re

from playwright.sync_api import expect

from tests.browser.scenarios import error_next_to, signed_in_page, wait_loaded


def schedules_pages(session, token, task_id, task_name, broken_schedule_id):
    page = signed_in_page(session, token, "/ui/schedules")
    page.on("dialog", lambda dialog: dialog.accept())
    seen = {"nav_current": page.locator('[data-nav="schedules"][aria-current="page"]').count() == 1}
    form = page.locator("#schedule-form")
    form.locator("#f-task").select_option(task_id)
    form.locator("#f-cron").fill("H * * * *")
    form.locator("button[type=submit]").click()
    expect(page.locator('[data-error-for="cron"]')).not_to_be_empty()
    seen["cron_error"] = error_next_to(page, "cron")
    form.locator("#f-cron").fill("0 6 * * *")
    form.locator("#f-timezone").fill("Europe/Berlin")
    form.locator("#f-times").fill("0")
    form.locator("button[type=submit]").click()
    expect(page.locator('[data-error-for="run.times"]')).not_to_be_empty()
    seen["times_error"] = error_next_to(page, "run.times")
    form.locator("#f-times").fill("1")
    form.locator("#f-name").fill("morning ui")
    form.locator("button[type=submit]").click()
    row = page.locator("#schedules tbody tr").filter(has=page.get_by_role("link", name="morning ui", exact=True))
    expect(row).to_be_visible()
    seen["row"] = row.inner_text()
    seen["flash"] = page.inner_text("#flash")
    session.screenshot(page, "schedules")

    row.get_by_role("link", name="morning ui", exact=True).click()
    page.wait_for_url(re.compile(r"/ui/schedules/[0-9a-f]{32}$"))
    wait_loaded(page)
    seen["fields"] = page.inner_text("#schedule-fields")
    page.click("#schedule-run")
    expect(page.locator("#fires tbody tr")).to_have_count(1)
    seen["fire"] = page.inner_text("#fires tbody tr")
    page.click("#schedule-suspend")
    expect(page.locator("#schedule-resume")).to_be_visible()
    seen["suspended_fields"] = page.inner_text("#schedule-fields")
    page.click("#schedule-resume")
    expect(page.locator("#schedule-suspend")).to_be_visible()
    page.locator("#fires tbody tr a").first.click()
    page.wait_for_url(re.compile(r"/ui/results/[0-9a-f]{32}$"))
    wait_loaded(page)
    link = page.locator("#fields a[href^='/ui/schedules/']")
    expect(link).to_be_visible()
    link.click()
    page.wait_for_url(re.compile(r"/ui/schedules/[0-9a-f]{32}$"))
    wait_loaded(page)
    page.click("#schedule-delete")
    page.wait_for_url(re.compile(r"/ui/schedules$"))
    wait_loaded(page)
    seen["after_delete"] = page.locator("#schedules tbody tr").filter(
        has=page.get_by_role("link", name="morning ui", exact=True)).count()

    page.goto(session.url(f"/ui/schedules/{broken_schedule_id}"))
    wait_loaded(page)
    expect(page.locator("#failed-fires tbody tr").first).to_be_visible()
    seen["failed_fire"] = page.locator("#failed-fires tbody tr").first.inner_text()
    session.screenshot(page, "schedule-failed-fires")
    return seen


def schedules_read_to_the_end(session, token):
    """The schedules list read to its end with "Show more" (a page may hold fewer rows than its limit, when
    its items pass LIST_PAGE_BYTES); the ids shown, in order, and the rows of the first page."""
    page = signed_in_page(session, token, "/ui/schedules")
    rows = page.locator("#schedules tbody tr")
    expect(rows.first).to_be_visible()
    first_page, clicks = rows.count(), 0
    more = page.locator("#schedules .pager button")
    while more.is_visible() and clicks < 20:
        shown = rows.count()
        more.click()
        clicks += 1
        expect(rows).not_to_have_count(shown)
    ids = rows.evaluate_all("rows => rows.map((row) => row.dataset.scheduleId)")
    return {"first_page": first_page, "clicks": clicks, "ids": ids,
            "task_picked": page.locator("#f-task option").count()}
