"""Web UI scenarios of per-execution parameters (the RUN form's matrix and items) and of changing a running
run (the result page's parallelism and priority control).  Played by ``tests.browser.driver`` like
``tests.browser.scenarios``; tests/e2e/test_web_ui_params.py asserts on the answers."""
import re

from playwright.sync_api import expect

from tests.browser.scenarios import error_next_to, goto, signed_in_page


def run_with_matrix(session, token, task_id):
    """RUN a matrix from the task's form (times left at 1); read each execution's parameters and output."""
    answer = {}
    page = signed_in_page(session, token, f"/ui/tasks/{task_id}")
    expect(page.locator("#run-fieldset")).to_be_enabled()
    page.click("#per-execution summary")
    page.fill("#f-matrix", "{not json")
    page.click("#run-form button[type=submit]")
    expect(page.locator('#run-form [data-error-for="matrix"]')).not_to_be_empty()
    answer["not_json"] = error_next_to(page, "matrix")
    page.fill("#f-matrix", "")
    page.fill("#f-items", '[{"env": {"X": "1"}}, {"env": {"X": 2}}]')
    page.click("#run-form button[type=submit]")
    expect(page.locator('#run-form [data-error-for="items"]')).not_to_be_empty()
    answer["bad_item"] = error_next_to(page, "items")
    page.fill("#f-items", "")
    page.fill("#f-matrix", '{"A": ["1", "2"], "B": ["x", "y", "z"]}')
    page.fill("#f-command", "sh -c 'echo $A-$B'")
    page.click("#run-form button[type=submit]")
    page.wait_for_url(re.compile(r"/ui/results/[0-9a-f]{32}$"))
    answer["result_id"] = page.url.rsplit("/", 1)[1]
    expect(page.locator("#title .badge")).to_have_attribute("data-status", "COMPLETE", timeout=90_000)
    expect(page.locator("#executions tbody tr")).to_have_count(6)
    answer["fields"] = page.inner_text("#fields")
    answer["header_visible"] = page.locator("#executions th.params-col").is_visible()
    answer["params"] = page.locator("#executions tbody td.params-col").all_inner_texts()
    session.screenshot(page, "result-matrix")
    page.locator("#executions tbody tr a").nth(4).click()
    page.wait_for_url(re.compile(r"/executions/[0-9a-f]{32}$"))
    expect(page.locator("#stdout")).to_contain_text("2-y")
    answer["execution_fields"] = page.inner_text("#fields")
    return answer


def plain_result_has_no_parameters_column(session, token, result_id):
    page = signed_in_page(session, token, f"/ui/results/{result_id}")
    expect(page.locator("#executions tbody tr").first).to_be_visible()
    return {"header_visible": page.locator("#executions th.params-col").is_visible(),
            "change_visible": page.locator("#change-form").is_visible()}


def change_running_run(session, token, result_id):
    """Raise a running run's parallelism from its result page; then watch the control go once it ended."""
    answer = {}
    page = signed_in_page(session, token, f"/ui/results/{result_id}")
    form = page.locator("#change-form")
    expect(form).to_be_visible()
    answer["shown"] = {"parallelism": page.input_value("#c-parallelism"), "priority": page.input_value("#c-priority")}
    page.fill("#c-parallelism", "0")
    page.click("#change-form button[type=submit]")
    expect(page.locator('#change-form [data-error-for="parallelism"]')).not_to_be_empty()
    answer["bad"] = error_next_to(page, "parallelism")
    page.fill("#c-parallelism", "3")
    page.fill("#c-priority", "8")
    page.click("#change-form button[type=submit]")
    expect(page.locator("#flash")).to_contain_text("Changed")
    answer["flash"] = page.inner_text("#flash")
    answer["fields"] = page.inner_text("#fields")
    session.screenshot(page, "result-changed")
    expect(page.locator("#title .badge")).to_have_attribute("data-status", "COMPLETE", timeout=90_000)
    answer["hidden_after"] = not form.is_visible()
    goto(session, page, f"/ui/results/{result_id}")
    answer["hidden_on_reload"] = not form.is_visible()
    return answer
