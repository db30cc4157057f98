"""Web UI scenarios of labels: the RUN form's and the registration form's labels, the chips on lists and
pages, the results list's label filter.  Played by ``tests.browser.driver`` like ``tests.browser.scenarios``;
tests/e2e/test_web_ui_labels.py asserts on the answers."""
import re

from playwright.sync_api import expect

from tests.browser.scenarios import error_next_to, goto, signed_in_page


def run_with_labels(session, token, task_id, sweep):
    """RUN from the task's form with labels (first a reserved key, refused next to the box); read the chips on
    the result's page and on the results list; filter the list with the box, then follow a chip."""
    answer = {}
    page = signed_in_page(session, token, f"/ui/tasks/{task_id}")
    expect(page.locator("#run-fieldset")).to_be_enabled()
    page.fill("#f-labels", "stevedore.managed=false")
    page.click("#run-form button[type=submit]")
    expect(page.locator('#run-form [data-error-for="labels"]')).not_to_be_empty()
    answer["reserved"] = error_next_to(page, "labels")
    page.fill("#f-labels", "novalue")
    page.click("#run-form button[type=submit]")
    expect(page.locator('#run-form [data-error-for="labels"]')).to_contain_text("not key=value")
    answer["no_value"] = error_next_to(page, "labels")
    page.fill("#f-labels", f"sweep={sweep}, project=vision")
    page.click("#run-form button[type=submit]")
    page.wait_for_url(re.compile(r"/ui/results/[0-9a-f]{32}$"))
    answer["result_id"] = page.url.rsplit("/", 1)[1]
    expect(page.locator("#fields .chip").first).to_be_visible()
    answer["page_chips"] = page.locator("#fields .chip").all_inner_texts()
    session.screenshot(page, "result-labels")

    goto(session, page, "/ui/results")
    page.fill("#f-label", f"sweep={sweep} project")
    page.press("#f-label", "Enter")
    page.wait_for_url(re.compile(r"/ui/results\?.*label="))
    answer["filtered_url"] = page.url
    expect(page.locator("#results tbody tr")).to_have_count(2)
    answer["filtered_ids"] = [row.get_attribute("data-result-id") for row in page.locator("#results tbody tr").all()]
    answer["box"] = page.input_value("#f-label")
    answer["row_chips"] = page.locator("#results tbody tr").first.locator(".chip").all_inner_texts()
    session.screenshot(page, "results-filtered-by-label")

    page.locator("#results tbody tr").first.locator(".chip", has_text="project=").click()
    page.wait_for_url(re.compile(r"/ui/results\?label=project%3D"))
    expect(page.locator("#results tbody tr").first).to_be_visible()
    answer["chip_filter_box"] = page.input_value("#f-label")

    goto(session, page, "/ui/results?label=a%3D%3Db")
    expect(page.locator("#e-label")).not_to_be_empty()
    answer["bad_filter"] = page.inner_text("#e-label").strip()
    return answer


def register_with_labels(session, token, repository, name, team):
    """Register a task with labels from the tasks page; read its chips in the list, follow one (the list
    filtered by it), and read them on the task's page."""
    answer = {}
    page = signed_in_page(session, token, "/ui/tasks")
    page.fill("#f-repository", repository)
    page.fill("#f-name", name)
    page.fill("#f-labels", "stevedore.io/x=1")
    page.click("#register-form button[type=submit]")
    expect(page.locator('#register-form [data-error-for="labels"]')).not_to_be_empty()
    answer["reserved"] = error_next_to(page, "labels")
    page.fill("#f-labels", f"team={team}, tier=gold")
    page.click("#register-form button[type=submit]")
    row = page.locator("#tasks tbody tr", has_text=name)
    expect(row.locator(".chip")).to_have_count(2)
    answer["row_chips"] = row.locator(".chip").all_inner_texts()
    row.locator(".chip", has_text="team=").click()
    page.wait_for_url(re.compile(r"/ui/tasks\?label=team%3D"))
    expect(page.locator("#tasks tbody tr")).to_have_count(1)
    answer["filtered_names"] = page.locator("#tasks tbody tr td.name").all_inner_texts()
    answer["filter_note"] = page.inner_text("#tasks-filter")
    page.locator("#tasks tbody tr td.name a").click()
    page.wait_for_url(re.compile(r"/ui/tasks/[0-9a-f]{32}$"))
    expect(page.locator("#fields .chip").first).to_be_visible()
    answer["page_chips"] = page.locator("#fields .chip").all_inner_texts()
    answer["task_id"] = page.url.rsplit("/", 1)[1]
    session.screenshot(page, "task-labels")
    return answer


def tes_marks(session, token, tes_result_id, plain_result_id):
    """The mark of GA4GH TES on a TES run (its page, its row in the results list, its image's task) and
    none on a plain run."""
    answer = {}
    page = signed_in_page(session, token, f"/ui/results/{tes_result_id}")
    expect(page.locator("#title .mark-tes")).to_be_visible()
    answer["title_mark"] = page.inner_text("#title .mark-tes").strip()
    answer["from"] = page.inner_text("#fields [data-tes-from]").strip()
    session.screenshot(page, "result-from-tes")
    goto(session, page, f"/ui/results/{plain_result_id}")
    expect(page.locator("#title .badge")).to_be_visible()
    answer["plain_marks"] = page.locator(".mark-tes").count()
    goto(session, page, "/ui/results?label=ga4gh.org%2Ftes%3Dtask")
    row = page.locator(f'#results tbody tr[data-result-id="{tes_result_id}"]')
    expect(row).to_be_visible()
    answer["row_mark"] = row.locator(".mark-tes").inner_text().strip()
    goto(session, page, "/ui/tasks?label=ga4gh.org%2Ftes%3Dimage")
    expect(page.locator("#tasks tbody tr").first).to_be_visible()
    answer["task_marks"] = page.locator("#tasks tbody tr .mark-tes").all_inner_texts()
    return answer


# whether each character of `needle` (in a text node under `el`) is laid out left of the next; and where a
# node's glyphs end (a Range over its text: a text node or an element)
IN_ORDER_JS = """([el, needle]) => {
  const walker = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
  for (let node; (node = walker.nextNode());) {
    const at = node.data.indexOf(needle);
    if (at < 0) continue;
    const range = document.createRange(), lefts = [];
    for (let i = at; i < at + needle.length; i++) {
      range.setStart(node, i); range.setEnd(node, i + 1); lefts.push(range.getBoundingClientRect().left);
    }
    return lefts.every((x, i) => i === 0 || x > lefts[i - 1]);
  }
  return null;
}"""
NAME_RIGHT_JS = """(el) => {
  const node = el.firstChild, range = document.createRange();
  range.selectNodeContents(node.nodeType === Node.TEXT_NODE ? el : node);
  if (node.nodeType === Node.TEXT_NODE) range.setEnd(node, node.length);
  return {right: range.getBoundingClientRect().right, badge: el.querySelector(".badge").getBoundingClientRect().left,
          isolated: node.nodeType === Node.ELEMENT_NODE && getComputedStyle(node).unicodeBidi === "isolate"};
}"""


def bidi_name(session, token, repository, name):
    """Register a task whose name holds a right-to-left override from the tasks page; read whether what
    follows the name stays in its place and order: the rest of the flash's sentence, the status badge after
    the name in the task page's title."""
    answer = {}
    page = signed_in_page(session, token, "/ui/tasks")
    page.fill("#f-repository", repository)
    page.fill("#f-name", name)
    page.click("#register-form button[type=submit]")
    expect(page.locator("#flash")).to_contain_text("its image is being pulled")
    answer["flash_in_order"] = page.locator("#flash").evaluate(
        f"(el) => ({IN_ORDER_JS})([el, 'its image is being pulled'])")
    page.locator("#tasks tbody tr", has_text=name.split("\u202e")[0]).locator("td.name a").click()
    page.wait_for_url(re.compile(r"/ui/tasks/[0-9a-f]{32}$"))
    answer["task_id"] = page.url.rsplit("/", 1)[1]
    expect(page.locator("#title .badge")).to_be_visible()
    answer["title"] = page.locator("#title").evaluate(NAME_RIGHT_JS)
    session.screenshot(page, "task-bidi-name")
    return answer
