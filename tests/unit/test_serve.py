"""stevedore_jobs.serve quiets exactly the notices of the libraries under nameko, no other warning."""
import subprocess
import sys


def python(code):
    """stderr of a fresh interpreter running ``code`` with Python's default warning filters."""
    env = {"PATH": "/usr/bin:/bin"}  # no PYTHONWARNINGS or EVENTLET_TESTS from the test runner
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=60, check=True).stderr


def test_importing_eventlet_prints_its_deprecation_notice_by_default():
    assert "Eventlet is deprecated" in python("import eventlet")


def test_serve_imports_eventlet_and_nameko_silently():
    assert python("from stevedore_jobs.serve import quiet_dependencies\n"
                  "quiet_dependencies()\n"
                  "import eventlet, nameko.cli.main") == ""


def test_other_deprecation_warnings_are_still_shown():
    stderr = python("from stevedore_jobs.serve import quiet_dependencies\n"
                    "quiet_dependencies()\n"
                    "import warnings\n"
                    "warnings.warn('this option is deprecated', UserWarning)\n"
                    "warnings.warn('Eventlet-like things are deprecated', FutureWarning)\n")
    assert "UserWarning: this option is deprecated" in stderr
    assert "FutureWarning: Eventlet-like things are deprecated" in stderr
