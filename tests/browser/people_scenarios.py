"""Who is signed in, the team picker, and the tokens, secrets and audit pages in the browser
(services/gateway/ui/static/people.js); played like scenarios.py's."""
from playwright.sync_api import expect

from tests.browser.scenarios import goto, signed_in_page, wait_loaded


def account_bar(page):
    bar = page.locator("#account")
    expect(bar).to_be_visible()
    return {"principal": bar.locator('[data-who="principal"]').inner_text(),
            "role": bar.locator('[data-who="role"]').inner_text(),
            "team": bar.locator('[data-who="team"]').text_content(),
            "picker": page.locator("#team-picker").count()}


def task_ids(page):
    return page.locator("#tasks tbody tr").evaluate_all("rows => rows.map(r => r.dataset.taskId)")


def signed_in_as(session, token, task_id):
    """The account bar on the tasks page and a task's page, and the write controls shown there."""
    page = signed_in_page(session, token, "/ui/tasks")
    seen = {"tasks_page": account_bar(page), "task_ids": task_ids(page),
            "register_visible": page.locator("#register-form").is_visible(),
            "nav": [a for a in page.locator("nav a").evaluate_all(
                "links => links.filter(a => a.offsetParent !== null).map(a => a.dataset.nav)")]}
    goto(session, page, f"/ui/tasks/{task_id}")
    seen["task_page"] = account_bar(page)
    seen["task_flash"] = page.inner_text("#flash") if page.locator("#flash").is_visible() else ""
    seen["run_button_visible"] = page.locator("#run-form button[type=submit]").is_visible()
    seen["delete_visible"] = page.locator("#delete").is_visible()
    goto(session, page, "/ui/tokens")  # an admin's page: the API's 403, said plainly
    expect(page.locator("#flash")).to_be_visible()
    seen["tokens_flash"] = page.inner_text("#flash")
    goto(session, page, "/ui/tasks/0123456789abcdef0123456789abcdef")
    expect(page.locator("#flash")).to_be_visible()
    seen["missing_flash"] = page.inner_text("#flash")
    session.screenshot(page, f"signed-in-{seen['tasks_page']['role']}")
    return seen


def switch_team(session, token, team):
    """An admin picks ``team`` in the account bar, then all teams again: the tasks listed each time."""
    page = signed_in_page(session, token, "/ui/tasks")
    seen = {"before": account_bar(page), "all_before": task_ids(page),
            "options": page.locator("#team-picker option").evaluate_all("os => os.map(o => o.value)")}
    with page.expect_navigation():
        page.select_option("#team-picker", team)
    wait_loaded(page)
    seen["picked"] = account_bar(page)
    seen["picked_value"] = page.locator("#team-picker").input_value()
    seen["picked_tasks"] = task_ids(page)
    goto(session, page, "/ui/results")  # remembered for the tab: another page acts for it too
    seen["kept_value"] = page.locator("#team-picker").input_value()
    seen["stored"] = page.evaluate("sessionStorage.getItem('stevedore.team')")
    session.screenshot(page, "team-picked")
    goto(session, page, "/ui/tasks")
    with page.expect_navigation():
        page.select_option("#team-picker", "")
    wait_loaded(page)
    seen["all_after"] = task_ids(page)
    seen["stored_after"] = page.evaluate("sessionStorage.getItem('stevedore.team')")
    return seen


def make_and_revoke_token(session, token, name, team):
    page = signed_in_page(session, token, "/ui/tokens")
    page.on("dialog", lambda dialog: dialog.accept())
    form = page.locator("#token-form")
    form.locator("#f-token-name").fill(name)
    form.locator("#f-token-team").fill("Not A Team")
    form.locator("button[type=submit]").click()
    expect(page.locator('[data-error-for="team"]')).not_to_be_empty()
    seen = {"team_error": page.inner_text('[data-error-for="team"]')}
    form.locator("#f-token-team").fill(team)
    form.locator("#f-token-role").select_option("viewer")
    form.locator("#f-token-expires").fill("30")
    form.locator("button[type=submit]").click()
    expect(page.locator("#token-once")).to_be_visible()
    seen["token"] = page.locator("#token-value").input_value()
    seen["copy_button"] = page.locator("#token-copy").is_visible()
    row = page.locator("#tokens tbody tr").filter(has_text=name)
    expect(row).to_have_count(1)
    seen["row"] = row.inner_text()
    seen["token_id"] = row.get_attribute("data-token-id")
    session.screenshot(page, "token-made")
    page.click("#token-done")
    expect(page.locator("#token-once")).to_be_hidden()
    seen["html_after_done"] = page.content()
    seen["value_after_done"] = page.locator("#token-value").input_value()
    row.get_by_role("button", name="Revoke").click()
    expect(page.locator(f'#tokens tbody tr[data-token-id="{seen["token_id"]}"][data-status="REVOKED"]')) \
        .to_have_count(1)
    seen["flash"] = page.inner_text("#flash")
    goto(session, page, "/ui/tokens")  # from the API again
    seen["status_listed"] = page.locator(f'#tokens tbody tr[data-token-id="{seen["token_id"]}"]') \
        .get_attribute("data-status")
    return seen


def set_secret(session, token, name, value, rotated):
    page = signed_in_page(session, token, "/ui/secrets")
    form = page.locator("#secret-form")
    seen = {"field_type": form.locator("#f-secret-value").get_attribute("type"),
            "heading": page.inner_text("h1")}
    form.locator("#f-secret-name").fill(name)
    form.locator("#f-secret-value").fill(value)
    form.locator("button[type=submit]").click()
    row = page.locator(f'#secrets tbody tr[data-secret="{name}"]')
    expect(row).to_have_count(1)
    seen["flash"] = page.inner_text("#flash")
    seen["row"] = row.inner_text()
    seen["field_after"] = form.locator("#f-secret-value").input_value()
    seen["html_after"] = page.content()
    row.get_by_role("button", name="Rotate").click()
    seen["rotate_name"] = form.locator("#f-secret-name").input_value()
    form.locator("#f-secret-value").fill(rotated)
    form.locator("button[type=submit]").click()
    expect(page.locator("#flash")).to_contain_text("Rotated")
    seen["rotated_flash"] = page.inner_text("#flash")
    seen["html_rotated"] = page.content()
    goto(session, page, "/ui/secrets")
    seen["html_reloaded"] = page.content()
    seen["rows"] = page.locator("#secrets tbody tr").count()
    session.screenshot(page, "secrets")
    goto(session, page, "/ui/audit")  # an admin's or operator's page
    expect(page.locator("#flash")).to_be_visible()
    seen["audit_flash"] = page.inner_text("#flash")
    return seen


def audit_page(session, token, name):
    """The audit log filtered by action and target: the secret's changes, never its value."""
    page = signed_in_page(session, token, f"/ui/audit?action=secret.set&target_id={name}")
    expect(page.locator("#audit tbody tr").first).to_be_visible()
    seen = {"rows": page.locator("#audit tbody tr").evaluate_all("rows => rows.map(r => r.innerText)"),
            "html": page.content(), "filter": page.locator("#f-audit-action").input_value()}
    page.locator("#f-audit-action").fill("no.such")
    page.locator("#audit-filters button[type=submit]").click()
    expect(page.locator("#audit .empty")).to_be_visible()
    seen["url"] = page.url
    return seen


def read_only_secrets(session, token):
    """A viewer's secrets page: the names, no form, no delete buttons."""
    page = signed_in_page(session, token, "/ui/secrets")
    return {"form_visible": page.locator("#secret-form").is_visible(),
            "buttons_visible": page.locator("#secrets button:visible").count(),
            "rows": page.locator("#secrets tbody tr").evaluate_all("rows => rows.map(r => r.dataset.secret)"),
            "audit_nav": page.locator('[data-nav="audit"]').is_visible()}


def teams_page(session, token, team):
    page = signed_in_page(session, token, "/ui/teams")
    form = page.locator("#team-form")
    form.locator("#f-team-name").fill(team)
    form.locator("#f-team-weight").fill("3")
    form.locator("#f-team-queued").fill("500")
    form.locator("button[type=submit]").click()
    row = page.locator(f'#teams tbody tr[data-team="{team}"]')
    expect(row).to_have_count(1)
    seen = {"row": row.inner_text()}
    form.locator("#f-team-name").fill(team)
    form.locator("#f-team-queued").fill("none")
    form.locator("button[type=submit]").click()
    expect(page.locator("#flash")).to_contain_text("Saved team")
    expect(row).not_to_contain_text("500")
    seen["changed_row"] = row.inner_text()
    return seen

