"""The browser driver: one Chromium, scenarios played on request.

    python -m tests.browser.driver BASE_URL SCREENSHOT_DIR

Reads one JSON request a line on stdin, ``{"scenario": NAME, "args": {...}}``,
plays ``tests.browser.scenarios.NAME`` in a fresh browser context and answers
one JSON line on stdout: ``{"ok": true, "value": ...}`` or ``{"ok": false,
"error": ..., "traceback": ..., "screenshot": ...}``.  Ends at end of input.
Runs in a plain Python: Playwright's sync API does not work under eventlet.
"""
import json
import os
import sys
import traceback

from playwright.sync_api import sync_playwright

from tests.browser import CHROMIUM, scenarios

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]


class Session:
    """What a scenario gets: the gateway's URL, new pages, and screenshots."""

    def __init__(self, browser, base_url, screenshots):
        self.browser = browser
        self.base_url = base_url.rstrip("/")
        self.screenshots = screenshots
        self.contexts = []
        self.last_page = None
        self.errors = []  # uncaught errors of the pages' scripts: each fails the scenario

    def url(self, path):
        return self.base_url + path

    def page(self, width=1280, height=900):
        context = self.browser.new_context(viewport={"width": width, "height": height})
        context.set_default_timeout(30_000)
        self.contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda exc: self.errors.append(f"{page.url}: {exc}"))
        self.last_page = page
        return page

    def screenshot(self, page, name, full_page=True):
        path = os.path.join(self.screenshots, f"{name}.png")
        page.screenshot(path=path, full_page=full_page)
        return path

    def close(self):
        for context in self.contexts:
            context.close()
        self.contexts = []


def main(base_url, screenshots):
    out = sys.stdout
    sys.stdout = sys.stderr  # only answers go to the real stdout
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        out.write(json.dumps({"ok": True, "value": browser.version}) + "\n")
        out.flush()
        for line in sys.stdin:
            request = json.loads(line)
            session = Session(browser, base_url, screenshots)
            try:
                value = getattr(scenarios, request["scenario"])(session, **request["args"])
                if session.errors:
                    raise AssertionError(f"the page's script failed: {session.errors}")
                answer = {"ok": True, "value": value}
            except Exception as exc:  # reported to the test, which fails with it
                answer = {"ok": False, "error": f"{exc.__class__.__name__}: {exc}",
                          "traceback": traceback.format_exc()}
                if session.last_page is not None:
                    try:
                        answer["screenshot"] = session.screenshot(
                            session.last_page, f"failed-{request['scenario']}")
                    except Exception:  # the page may be gone
                        pass
            finally:
                session.close()
            out.write(json.dumps(answer) + "\n")
            out.flush()
        browser.close()


if __name__ == "__main__":
    main(*sys.argv[1:3])
