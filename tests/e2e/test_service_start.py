"""Each service starts without printing a warning (eventlet's deprecation notice used to come five times)."""
import re

import pytest

pytestmark = pytest.mark.e2e

# how Python prints a warning: "path:line: Category: message"
PYTHON_WARNING = re.compile(r"^\S+:\d+: \w*Warning: ", re.M)


def test_every_service_starts_without_a_deprecation_warning(system):
    for label in system.procs:
        log = system.log(label)
        assert "starting services" in log, f"{label} has not started:\n{log}"
        start = log.split("starting services", 1)[0]
        assert not PYTHON_WARNING.search(start), f"{label} printed a warning at start:\n{start}"
        assert "deprecated" not in start.lower(), f"{label} printed a deprecation at start:\n{start}"
