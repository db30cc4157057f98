"""The server's console scripts, ``stevedore-host`` and ``stevedore-migrate``.

A plain ``pip install stevedore-jobs`` (the CLI and the Python client) installs
these scripts too but not what the services run on; each script first checks
that the ``[server]`` extra is installed and, if not, says so in one line
instead of an ImportError's traceback.
"""
import importlib
import re
import sys
from importlib import metadata

DISTRIBUTION = "stevedore-jobs"


def missing_server_requirements():
    """Names of the ``[server]`` extra's requirements not installed here (none known: [])."""
    try:
        requirements = metadata.requires(DISTRIBUTION) or []
    except metadata.PackageNotFoundError:  # run from a checkout that is not installed
        return []
    missing = []
    for requirement in requirements:
        if not re.search(r"""extra\s*==\s*["']server["']""", requirement):
            continue
        name = re.match(r"[A-Za-z0-9._-]+", requirement).group(0)
        try:
            metadata.version(name)
        except metadata.PackageNotFoundError:
            missing.append(name)
    return missing


def _run(command, module):
    missing = missing_server_requirements()
    if missing:
        sys.exit(f"{command}: runs the Stevedore services, whose dependencies are not installed here "
                 f"({', '.join(missing)}); install them with: pip install '{DISTRIBUTION}[server]'")
    return importlib.import_module(f"stevedore_jobs.{module}").main()


def host():
    return _run("stevedore-host", "host")


def migrate():
    return _run("stevedore-migrate", "migrate")
