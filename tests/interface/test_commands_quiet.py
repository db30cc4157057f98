"""The server's commands print no deprecation notice of the libraries under them."""
import os
import re
import subprocess
import sys
import uuid

from tests.support import drop_database

BIN = os.path.dirname(sys.executable)
# how Python prints a warning: "path:line: Category: message"
PYTHON_WARNING = re.compile(r"^\S+:\d+: \w*Warning: ", re.M)


def command(*argv):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONWARNINGS", "EVENTLET_TESTS")}
    return subprocess.run([os.path.join(BIN, argv[0]), *argv[1:]], capture_output=True, text=True,
                          timeout=120, env=env)


def test_the_image_entrypoint_migrates_a_new_database_without_a_warning():
    url = f"postgresql+psycopg2://postgres@127.0.0.1:5432/stevedore_test_{uuid.uuid4().hex[:10]}"
    try:
        answer = command("stevedore-entrypoint", "migrate", "--url", url)
    finally:
        drop_database(url)
    assert answer.returncode == 0, answer.stderr
    assert "is at the latest schema" in answer.stderr
    assert not PYTHON_WARNING.search(answer.stderr + answer.stdout), answer.stderr
    assert "deprecated" not in answer.stderr.lower()


def test_stevedore_host_loads_without_a_warning():
    answer = command("stevedore-host", "--help")
    assert answer.returncode == 0, answer.stderr
    assert answer.stdout.startswith("usage: stevedore-host")
    assert answer.stderr == ""
