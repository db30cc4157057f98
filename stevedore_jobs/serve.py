"""``python -m stevedore_jobs.serve --config FILE services.NAME.service``: one service's ``nameko run``.

The same as ``python -m nameko run``, less two notices about the libraries under
nameko 2, which every service process would otherwise print at start and which
no operator can act on: eventlet announces on import that it is deprecated (an
``EventletDeprecationWarning``, shown by default), and setuptools 81 says the
same of the ``pkg_resources`` that nameko imports; and cryptography 51 says DSA
is deprecated when dnspython (under eventlet) imports its DSA key types.  The
filters match exactly those messages, before either library is imported; every other warning,
ours included, is shown as Python shows it.
"""
import sys
import warnings

QUIETED = (
    r"\s*Eventlet is deprecated",
    r"pkg_resources is deprecated as an API",
    r"DSA is deprecated and support will be removed",
)


def quiet_dependencies():
    for message in QUIETED:
        warnings.filterwarnings("ignore", message=message)


def main(argv=None):
    quiet_dependencies()
    from nameko.cli.main import main as nameko_main

    sys.argv = ["nameko", "run", *(sys.argv[1:] if argv is None else argv)]
    return nameko_main()


if __name__ == "__main__":
    sys.exit(main())
