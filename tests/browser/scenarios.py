"""What a person does in the web UI, step by step; each scenario answers what it saw.

Played by ``tests.browser.driver`` (a plain Python with Playwright's sync API);
the tests in tests/e2e/test_web_ui.py assert on the answers.  Waits use
Playwright's ``expect`` (30 s unless said), so a scenario that cannot go on
fails at the step that did not happen, with a screenshot.
"""
import re
import time

from playwright.sync_api import expect

FINISHED = re.compile(r"^(COMPLETE|ERROR|CANCELLED|KILLED)$")


def sign_in(session, page, token, path):
    """Open ``path`` without the cookie: the UI sends us to sign in, then back."""
    page.goto(session.url(path))
    page.wait_for_url(re.compile(r"/ui/signin\?next="))
    page.fill("#f-token", token)
    page.click("#signin-form button[type=submit]")
    page.wait_for_url(re.compile(re.escape(path.split("?")[0]) + r"(\?.*)?$"))
    wait_loaded(page)


def signed_in_page(session, token, path, **size):
    page = session.page(**size)
    sign_in(session, page, token, path)
    return page


def goto(session, page, path):
    page.goto(session.url(path))
    wait_loaded(page)


def wait_loaded(page):
    page.wait_for_selector("body[data-loaded]", state="attached")


def mark_document(page):
    """Tag the loaded document; ``same_document`` is then true only if the page was not reloaded."""
    page.evaluate("window.__stevedoreSameDocument = true")


def same_document(page):
    return page.evaluate("window.__stevedoreSameDocument === true")


def error_next_to(page, field):
    return page.inner_text(f'[data-error-for="{field}"]').strip()


# ---------------------------------------------------------------- sign-in

def sign_in_and_out(session, token):
    page = session.page()
    seen = {}
    page.goto(session.url("/"))
    page.wait_for_url(re.compile(r"/ui/signin\?next="))
    wait_loaded(page)
    seen["asked_to_sign_in_at"] = page.url.replace(session.base_url, "")
    session.screenshot(page, "signin")

    page.fill("#f-token", "not-a-valid-token")
    page.click("#signin-form button[type=submit]")
    expect(page.locator('[data-error-for="token"]')).not_to_be_empty()
    seen["wrong_token_error"] = error_next_to(page, "token")
    seen["still_at_signin"] = "/ui/signin" in page.url

    page.fill("#f-token", token)
    page.click("#signin-form button[type=submit]")
    page.wait_for_url(re.compile(r"/ui/tasks$"))
    wait_loaded(page)
    cookies = [c for c in page.context.cookies() if c["name"] == "stevedore_session"]
    seen["cookie"] = cookies and {k: cookies[0][k] for k in ("value", "httpOnly", "sameSite", "path")}
    seen["signed_in_at"] = page.url.replace(session.base_url, "")
    seen["tasks_listed"] = page.locator("#tasks tbody tr, #tasks .empty:visible").count() > 0

    page.click("text=Sign out")
    page.wait_for_url(re.compile(r"/ui/signin"))
    seen["cookie_after_sign_out"] = any(c["name"] == "stevedore_session" for c in page.context.cookies())
    # the session's old cookie, replayed after sign-out
    replayed = page.request.get(session.url("/task/"), headers={"Cookie": f"stevedore_session={cookies[0]['value']}"})
    seen["old_cookie_refused"] = replayed.status
    page.goto(session.url("/ui/results?status=COMPLETE"))
    page.wait_for_url(re.compile(r"/ui/signin\?next="))
    seen["asked_again_at"] = page.url.replace(session.base_url, "")
    return seen


# ---------------------------------------------------------------- tasks

def watch_task(page, name, timeout=90):
    """The statuses (and their labels) a task's row shows until it settles, polled every 0.1 s."""
    row = page.locator("#tasks tbody tr").filter(has=page.get_by_role("link", name=name, exact=True))
    expect(row).to_be_visible()
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        badge = row.locator(".badge")
        status, label = badge.get_attribute("data-status"), badge.inner_text()
        if not seen or seen[-1]["status"] != status:
            seen.append({"status": status, "label": label, "sub": row.locator(".sub").all_inner_texts()})
        if status in ("READY", "ERROR"):
            break
        page.wait_for_timeout(100)
    return row, seen


def register_tasks(session, token, good, missing):
    """Register ``good`` and ``missing`` ({repository, name}) in the form; watch both settle."""
    page = signed_in_page(session, token, "/ui/tasks")
    mark_document(page)
    answer = {}
    for key, task in (("good", good), ("missing", missing)):
        page.fill("#f-repository", task["repository"])
        page.fill("#f-name", task["name"])
        page.click("#register-form button[type=submit]")
        expect(page.locator("#f-repository")).to_have_value("")  # the form is cleared on success
        row, seen = watch_task(page, task["name"])
        answer[key] = {"seen": seen, "reason": row.locator(".reason").all_inner_texts(),
                       "task_id": row.get_attribute("data-task-id")}
    answer["flash"] = page.inner_text("#flash")
    answer["same_document"] = same_document(page)
    session.screenshot(page, "tasks")
    return answer


def validation_errors(session, token, repository, taken_name, task_id):
    """Submit bad forms; answer the message next to each field (and whether it is marked invalid)."""
    page = signed_in_page(session, token, "/ui/tasks")
    seen = {}

    def submit(form, field, values):
        for name, value in values.items():
            page.fill(f"{form} [name={name}]", value)
        page.click(f"{form} button[type=submit]")
        expect(page.locator(f'{form} [data-error-for="{field}"]')).not_to_be_empty()
        seen[field] = {
            "messages": page.locator(f"{form} [data-error-for]").evaluate_all(
                "els => Object.fromEntries(els.filter(e => e.textContent.trim())"
                ".map(e => [e.dataset.errorFor, e.textContent.trim()]))"),
            "invalid": page.get_attribute(f"{form} [name={field}]", "aria-invalid"),
            "focused": page.evaluate("document.activeElement && document.activeElement.name"),
        }

    submit("#register-form", "repository", {"repository": "UPPER/case", "name": ""})
    session.screenshot(page, "validation")
    submit("#register-form", "name", {"repository": repository, "name": taken_name})
    seen["repository_cleared"] = error_next_to(page, "repository") == ""

    goto(session, page, f"/ui/tasks/{task_id}")
    expect(page.locator("#run-fieldset")).to_be_enabled()
    submit("#run-form", "times", {"times": "0"})
    submit("#run-form", "env", {"times": "1", "env": "JUST_A_NAME"})
    submit("#run-form", "priority", {"env": "", "priority": "12"})
    submit("#run-form", "memory", {"priority": "", "memory": "lots"})
    seen["url_after"] = page.url.replace(session.base_url, "")
    return seen


# ---------------------------------------------------------------- runs

def progress_of(row):
    return row.locator(".progress").evaluate(
        "el => ({done: Number(el.dataset.done), total: Number(el.dataset.total),"
        " filled: [...el.querySelectorAll('.seg')].reduce((w, s) => w + s.getBoundingClientRect().width, 0)"
        "  / el.querySelector('.bar').getBoundingClientRect().width})")


def run_and_watch(session, token, task_id, times, sleep):
    """RUN from the task's page, watch the results list fill up, then open the result and an execution."""
    answer = {}
    page = signed_in_page(session, token, f"/ui/tasks/{task_id}")
    expect(page.locator("#run-fieldset")).to_be_enabled()
    page.fill("#f-times", str(times))
    page.fill("#f-parallelism", "2")
    page.fill("#f-env", f"SLEEP={sleep}\n# a comment\nGREETING=hi there")
    page.click("#run-form button[type=submit]")
    page.wait_for_url(re.compile(r"/ui/results/[0-9a-f]{32}$"))
    result_id = answer["result_id"] = page.url.rsplit("/", 1)[1]

    goto(session, page, f"/ui/results?task_id={task_id}")
    row = page.locator(f'tr[data-result-id="{result_id}"]')
    expect(row).to_be_visible()
    mark_document(page)
    steps = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        now = progress_of(row)
        if not steps or (steps[-1]["done"], steps[-1]["total"]) != (now["done"], now["total"]):
            steps.append({**now, "status": row.locator(".badge").get_attribute("data-status")})
        if now["total"] and now["done"] == now["total"]:
            break
        page.wait_for_timeout(100)
    page.wait_for_timeout(600)  # the bar's width eases in over 0.4 s
    answer["progress"] = steps
    answer["final"] = {**progress_of(row), "status": row.locator(".badge").get_attribute("data-status"),
                       "label": row.locator(".progress-label").inner_text()}
    answer["same_document"] = same_document(page)
    session.screenshot(page, "results")

    goto(session, page, f"/ui/results/{result_id}")
    expect(page.locator("#title .badge")).to_have_attribute("data-status", "COMPLETE")
    expect(page.locator("#executions tbody tr")).to_have_count(times)
    answer["result_page"] = {
        "executions": page.locator("#executions tbody tr").count(),
        "fields": page.inner_text("#fields"),
        "timeline_bars": page.locator("#timeline svg rect").count(),
        "timeline_label": page.locator("#timeline svg").get_attribute("aria-label"),
        "duration_bars": page.locator("#durations svg rect").count(),
        "cancel_visible": page.locator("#cancel").is_visible(),
    }
    session.screenshot(page, "result")

    page.locator("#executions tbody tr a").first.click()
    page.wait_for_url(re.compile(r"/ui/results/[0-9a-f]{32}/executions/[0-9a-f]{32}$"))
    wait_loaded(page)
    expect(page.locator("#stdout")).to_contain_text(f"slept {sleep}s")
    answer["execution_page"] = {"stdout": page.inner_text("#stdout"), "title": page.inner_text("#title"),
                                "fields": page.inner_text("#fields")}
    session.screenshot(page, "execution")

    goto(session, page, f"/ui/tasks/{task_id}")
    expect(page.locator(f'#results tr[data-result-id="{result_id}"] .badge')).to_have_attribute(
        "data-status", "COMPLETE")
    answer["task_page"] = {"fields": page.inner_text("#fields"), "title": page.inner_text("#title")}
    session.screenshot(page, "task")
    return answer


def filter_results(session, token, task_id, status):
    """Pick a task, then a status, in the results list's filters; answer the rows each time."""
    page = signed_in_page(session, token, "/ui/results")

    def rows():
        return page.locator("#results tbody tr").evaluate_all(
            "trs => trs.map(tr => ({result_id: tr.dataset.resultId,"
            " status: tr.querySelector('.badge').dataset.status,"
            " task: tr.querySelector('a[href^=\"/ui/tasks/\"]').getAttribute('href').split('/').pop()}))")

    answer = {}
    page.select_option("#f-task", task_id)
    page.wait_for_url(re.compile(r"\?task_id="))
    wait_loaded(page)
    answer["by_task"] = {"url": page.url.replace(session.base_url, ""), "rows": rows()}
    page.select_option("#f-status", status)
    page.wait_for_url(re.compile(r"status="))
    wait_loaded(page)
    answer["by_task_and_status"] = {"url": page.url.replace(session.base_url, ""), "rows": rows(),
                                    "chosen": [page.input_value("#f-status"), page.input_value("#f-task")]}
    return answer


def follow_execution(session, token, result_id, detail_id, first_line):
    """Open a RUNNING execution and stay: its output, then its end, arrive without a reload."""
    page = signed_in_page(session, token, f"/ui/results/{result_id}/executions/{detail_id}")
    badge = page.locator("#title .badge")
    answer = {"status_at_open": badge.get_attribute("data-status")}
    mark_document(page)
    expect(page.locator("#stdout")).to_contain_text(first_line, timeout=30_000)
    answer.update(status_at_first_line=badge.get_attribute("data-status"),
                  log_state_while_running=page.inner_text("#log-state"))
    session.screenshot(page, "execution-live")
    expect(badge).to_have_attribute("data-status", FINISHED, timeout=90_000)
    expect(page.locator("#log-state")).to_be_empty()
    answer.update(status_at_end=badge.get_attribute("data-status"), stdout=page.inner_text("#stdout"),
                  same_document=same_document(page))
    return answer


def execution_output(session, token, result_id, detail_id):
    """Open an ended execution: its output as shown, and what is offered to download."""
    page = signed_in_page(session, token, f"/ui/results/{result_id}/executions/{detail_id}")
    expect(page.locator("#title .badge")).to_have_attribute("data-status", FINISHED)
    expect(page.locator("#stdout")).not_to_be_empty()
    session.screenshot(page, "execution-control-characters")
    return {"stdout": page.inner_text("#stdout"), "stderr": page.inner_text("#stderr"),
            "marks": page.locator("#stdout .ctl").all_inner_texts(), "title": page.title(),
            "raw": page.get_attribute("#stdout-raw", "href")}


def cancel_run(session, token, result_id, detail_id):
    """Cancel one running execution from its page, then the whole run from the result's page.

    Every cancel asks for confirmation: the execution's is accepted, the run's
    first one declined (nothing happens), its second accepted."""
    page = signed_in_page(session, token, f"/ui/results/{result_id}/executions/{detail_id}")
    decisions = ["accept", "dismiss", "accept"]
    dialogs = []

    def answer_dialog(dialog):
        dialogs.append(dialog.message)
        getattr(dialog, decisions.pop(0))()

    page.on("dialog", answer_dialog)
    badge = page.locator("#title .badge")
    button = page.locator("#cancel")
    expect(badge).to_have_attribute("data-status", "RUNNING")
    button.click()
    expect(badge).to_have_attribute("data-status", FINISHED, timeout=60_000)
    execution = {"status": badge.get_attribute("data-status"), "button_visible": button.is_visible()}

    goto(session, page, f"/ui/results/{result_id}")
    expect(button).to_be_visible()
    button.click()
    page.wait_for_timeout(1000)
    declined = {"status": badge.get_attribute("data-status"), "button_visible": button.is_visible()}
    button.click()
    expect(badge).to_have_attribute("data-status", re.compile("^(CANCELLED|KILLED)$"), timeout=60_000)
    expect(button).to_be_hidden()
    return {"dialogs": dialogs, "execution": execution, "after_decline": declined,
            "status": badge.get_attribute("data-status"), "flash": page.inner_text("#flash")}


def task_buttons(session, token, task_id):
    """Re-import a task from its page (watching it go in progress and back to READY), then
    delete it after confirming; answer what was seen on the way."""
    page = signed_in_page(session, token, f"/ui/tasks/{task_id}")
    dialogs = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.accept()))
    badge = page.locator("#title .badge")
    expect(badge).to_have_attribute("data-status", "READY")
    # READY as seen before the click: the page may show the re-import's SUBMITTED by its first poll
    statuses = ["READY"]
    page.click("#reimport")
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        status = badge.get_attribute("data-status")
        if not statuses or statuses[-1] != status:
            statuses.append(status)
        if len(statuses) > 1 and status in ("READY", "ERROR"):
            break
        page.wait_for_timeout(50)
    flash = page.inner_text("#flash")
    session.screenshot(page, "task")
    page.click("#delete")
    page.wait_for_url(re.compile(r"/ui/tasks$"))
    return {"statuses": statuses, "flash": flash, "dialogs": dialogs, "landed_on": page.url}


def rerun_failed(session, token, result_id):
    """Press "Rerun failed" on a finished result's page; answer the page it leads to."""
    page = signed_in_page(session, token, f"/ui/results/{result_id}")
    button = page.locator("#rerun")
    expect(button).to_be_visible()
    button.click()
    page.wait_for_url(re.compile(r"/ui/results/(?!" + re.escape(result_id) + r")[^/]+$"))
    wait_loaded(page)
    rerun_of = page.locator("#fields dt", has_text="Rerun of").locator("xpath=following-sibling::dd[1]")
    return {"url": page.url, "rerun_of": rerun_of.inner_text()}


def result_buttons(session, token, result_id):
    """Which of a result page's buttons show once it has loaded."""
    page = signed_in_page(session, token, f"/ui/results/{result_id}")
    wait_loaded(page)
    expect(page.locator("#title .badge")).to_be_visible()
    return {"cancel_visible": page.locator("#cancel").is_visible(),
            "rerun_visible": page.locator("#rerun").is_visible(),
            "delete_visible": page.locator("#delete-result").is_visible()}


def delete_result(session, token, result_id, other_id):
    """Delete an ended result from its page, declining the question once; answer what was seen,
    and how many links the results list then has to it and to ``other_id``."""
    page = signed_in_page(session, token, f"/ui/results/{result_id}")
    dialogs, answers = [], [False, True]

    def answer(dialog):
        dialogs.append(dialog.message)
        dialog.accept() if answers.pop(0) else dialog.dismiss()

    page.on("dialog", answer)
    button = page.locator("#delete-result")
    expect(button).to_be_visible()
    button.click()
    page.wait_for_timeout(300)
    declined = {"url": page.url, "button_visible": button.is_visible()}
    button.click()
    page.wait_for_url(re.compile(r"/ui/results$"))
    wait_loaded(page)
    expect(page.locator(f'a[href="/ui/results/{other_id}"]').first).to_be_visible()
    return {"dialogs": dialogs, "after_decline": declined, "landed_on": page.url,
            "listed": page.locator(f'a[href="/ui/results/{result_id}"]').count(),
            "other_listed": page.locator(f'a[href="/ui/results/{other_id}"]').count()}


# ---------------------------------------------------------------- phones

def phone_pages(session, token, pages):
    """Each page at 375 px: its width (no sideways scrolling) and a screenshot."""
    page = signed_in_page(session, token, "/ui/tasks", width=375, height=812)
    answer = {}
    for name, path in pages.items():
        goto(session, page, path)
        page.wait_for_timeout(500)  # bars and charts settle
        answer[name] = {"scroll_width": page.evaluate("document.documentElement.scrollWidth"),
                        "screenshot": session.screenshot(page, f"phone-{name}")}
    return answer



# scenarios kept in modules of their own (they use the helpers above), played by the same name
from tests.browser.policy_scenarios import failure_policy  # noqa: E402,F401
# scenarios kept in modules of their own (they use the helpers above), played by the same name
from tests.browser.params_scenarios import (  # noqa: E402,F401
    change_running_run, plain_result_has_no_parameters_column, run_with_matrix)
from tests.browser.dependency_scenarios import cancelled_by_dependency, run_after  # noqa: E402,F401 -- played by name
from tests.browser.schedule_scenarios import schedules_pages, schedules_read_to_the_end  # noqa: E402,F401
from tests.browser.label_scenarios import (  # noqa: E402,F401 -- played by name
    bidi_name, register_with_labels, run_with_labels, tes_marks)
from tests.browser.fleet_scenarios import run_with_constraints, runners_page  # noqa: E402,F401
from tests.browser.people_scenarios import (  # noqa: E402,F401 -- played by name
    audit_page, make_and_revoke_token, read_only_secrets, set_secret, signed_in_as, switch_team, teams_page)
