"""A real browser for the web UI tests, driven from a process of its own.

``nameko test`` monkey-patches the test process with eventlet, under which
Playwright's sync API hangs; so Playwright runs in ``tests.browser.driver``,
started once per test module with a plain Python, holding one Chromium.  A test
asks it to play a scenario (a function of ``tests.browser.scenarios``) and gets
back what the scenario saw, as JSON, to assert on.
"""
import json
import os
import select
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CHROMIUM = "/usr/bin/chromium"


class ScenarioFailed(AssertionError):
    pass


class Browser:
    def __init__(self, base_url, log_path, screenshots):
        self.base_url = base_url
        self.log_path = log_path
        self.screenshots = screenshots
        self.proc = None

    def start(self):
        os.makedirs(self.screenshots, exist_ok=True)
        env = {**os.environ, "PYTHONPATH": ROOT, "PYTHONUNBUFFERED": "1"}
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "tests.browser.driver", self.base_url, self.screenshots],
                cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log)
        self._answer(timeout=60)  # it says hello once Chromium is up
        return self

    def run(self, scenario, timeout=180, **args):
        """Play ``scenario`` with ``args``; its answer, or ScenarioFailed with what went wrong."""
        self.proc.stdin.write((json.dumps({"scenario": scenario, "args": args}) + "\n").encode())
        self.proc.stdin.flush()
        return self._answer(timeout)

    def _answer(self, timeout):
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ScenarioFailed(f"the browser driver gave no answer in {timeout}s; see {self.log_path}")
            ready, _, _ = select.select([self.proc.stdout], [], [], min(left, 1.0))
            if ready:
                break
            if self.proc.poll() is not None:
                raise ScenarioFailed(f"the browser driver exited with {self.proc.returncode}; "
                                     f"see {self.log_path}")
        line = self.proc.stdout.readline()
        if not line:
            raise ScenarioFailed(f"the browser driver closed its output; see {self.log_path}")
        answer = json.loads(line)
        if not answer["ok"]:
            raise ScenarioFailed(f"{answer['error']}\n{answer.get('traceback', '')}"
                                 f"(screenshot: {answer.get('screenshot')}; log: {self.log_path})")
        return answer["value"]

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
