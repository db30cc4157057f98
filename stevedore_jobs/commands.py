"""The server's console scripts, ``stevedore-host`` and ``stevedore-migrate``.

A plain ``pip install stevedore-jobs`` (the CLI and the Python client) installs
these scripts too but not what the services run on; each script first checks
that the ``[server]`` extra is installed and, if not, says so in one line
instead of an ImportError's traceback.  Then it quiets the deprecation notices
of the libraries under nameko (stevedore_jobs.serve) before importing them.

``python -m stevedore_jobs.commands host|migrate [ARG...]`` is the same as
``stevedore-host`` / ``stevedore-migrate`` (the image's entrypoint uses it).
"""
import importlib
import re
import sys
from importlib import metadata

from stevedore_jobs.serve import quiet_dependencies

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


def _run(module, argv=None):
    command = f"stevedore-{module}"
    missing = missing_server_requirements()
    if missing:
        sys.exit(f"{command}: runs the Stevedore services, whose dependencies are not installed here "
                 f"({', '.join(missing)}); install them with: pip install '{DISTRIBUTION}[server]'")
    quiet_dependencies()
    return importlib.import_module(f"stevedore_jobs.{module}").main(argv)


def host():
    return _run("host")


def migrate():
    return _run("migrate")


def main(argv=None):
    module, *rest = sys.argv[1:] if argv is None else argv
    if module not in ("host", "migrate"):
        sys.exit(f"usage: python -m stevedore_jobs.commands host|migrate [ARG...] (not {module!r})")
    sys.argv[0] = f"stevedore-{module}"  # what argparse calls it in --help and errors
    return _run(module, rest)


if __name__ == "__main__":
    sys.exit(main())
