"""docs/client.md's example runs as written against a real system and prints what the page says."""
import os
import re
import subprocess
import sys
import uuid

import pytest

from tests.support import ROOT

pytestmark = pytest.mark.e2e

DOCUMENTED_IMAGE = "localhost:5000/team/app:1.0"


def documented_run():
    """The page's first Python example and the output it shows."""
    with open(os.path.join(ROOT, "docs", "client.md")) as fh:
        page = fh.read()
    section = page.split("## A run from start to end", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    printed = re.search(r"prints\n\n```text\n(.*?)```", section, re.S).group(1)
    return code, printed


def without_durations(text):
    return re.sub(r"\d+\.\d+s", "<duration>", text)


def test_the_documented_run_prints_what_the_page_shows(system, test_images):
    code, printed = documented_run()
    assert DOCUMENTED_IMAGE in code and '"name": "app"' in code
    code = code.replace(DOCUMENTED_IMAGE, test_images["ok"]).replace(
        '"name": "app"', f'"name": "docs-{uuid.uuid4().hex[:8]}"')
    env = {**os.environ, "STEVEDORE_URL": system.url, "STEVEDORE_TOKEN": system.token}
    answer = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=180)
    assert answer.returncode == 0, answer.stderr
    assert without_durations(answer.stdout) == without_durations(printed)
