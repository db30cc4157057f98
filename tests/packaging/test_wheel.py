"""The wheel installed with no extra is the CLI and the Python client, without the services' dependencies."""
import os
import subprocess
import sys

import pytest
from packaging.utils import canonicalize_name

from tests.packaging.wheels import build_wheel, closure, repack, requirements, wheel_metadata


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    return build_wheel(str(tmp_path_factory.mktemp("wheel")))


@pytest.fixture(scope="module")
def plain_install(wheel, tmp_path_factory):
    """A fresh virtualenv with ``pip install stevedore-jobs`` done offline: (its bin/, the wheel's metadata)."""
    info = wheel_metadata(wheel)
    offered = os.path.dirname(wheel)
    for dist in closure(requirements(info.get_all("Requires-Dist"))).values():
        repack(dist, offered)
    venv = str(tmp_path_factory.mktemp("venv"))
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True, timeout=120)
    subprocess.run([sys.executable, "-m", "pip", "--python", os.path.join(venv, "bin", "python"), "install",
                    "--quiet", "--no-index", "--find-links", offered, wheel], check=True, timeout=300)
    return os.path.join(venv, "bin"), info


def run(bin_dir, *command):
    return subprocess.run([os.path.join(bin_dir, command[0]), *command[1:]], capture_output=True, text=True,
                          timeout=60, env={"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": "/nonexistent"})


def installed(bin_dir):
    listing = run(bin_dir, "python", "-c", "from importlib import metadata\n"
                  "print('\\n'.join(d.metadata['Name'] for d in metadata.distributions()))")
    return {canonicalize_name(name) for name in listing.stdout.split()}


def test_the_plain_install_depends_on_an_http_library_and_pydantic_only(plain_install):
    _, info = plain_install
    assert {r.name for r in requirements(info.get_all("Requires-Dist"))} == {"requests", "pydantic"}


def test_the_plain_install_has_no_server_dependency(plain_install):
    bin_dir, info = plain_install
    plain = set(closure(requirements(info.get_all("Requires-Dist"))))
    server = {canonicalize_name(r.name) for r in requirements(info.get_all("Requires-Dist"), extra="server")
              if r.marker is not None}
    assert {"nameko", "eventlet", "sqlalchemy", "psycopg2-binary", "docker", "alembic"} <= server
    # urllib3 is in both: requests needs it too
    assert installed(bin_dir) == plain | {"stevedore-jobs"}
    assert not (server - plain) & installed(bin_dir)


def test_the_stevedore_command_runs(plain_install):
    bin_dir, info = plain_install
    answer = run(bin_dir, "stevedore", "--help")
    assert answer.returncode == 0, answer.stderr
    assert answer.stdout.startswith("usage: stevedore")
    assert answer.stderr == ""
    version = run(bin_dir, "stevedore", "--version")
    assert version.stdout.strip() == f"stevedore {info['Version']}", version.stdout + version.stderr


def test_the_python_client_imports_without_a_server_module(plain_install):
    bin_dir, _ = plain_install
    answer = run(bin_dir, "python", "-c", "import sys\n"
                 "from stevedore_jobs.client import Client\n"
                 "import stevedore_jobs.cli\n"
                 "Client('http://127.0.0.1:8000', token='t')\n"
                 "print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))")
    assert answer.returncode == 0, answer.stderr
    assert not {"nameko", "eventlet", "sqlalchemy", "docker", "kombu", "yaml"} & set(answer.stdout.split())


def test_server_commands_say_which_extra_they_need(plain_install):
    bin_dir, _ = plain_install
    for command in ("stevedore-host", "stevedore-migrate"):
        answer = run(bin_dir, command, "--help")
        assert answer.returncode == 1
        assert "pip install 'stevedore-jobs[server]'" in answer.stderr
        assert "Traceback" not in answer.stderr


def test_config_and_migrations_are_in_the_installed_package(plain_install):
    bin_dir, _ = plain_install
    answer = run(bin_dir, "python", "-c", "from importlib.resources import files\n"
                 "services = files('services')\n"
                 "print((services / 'config.yml').is_file(), (services / 'migrations' / 'env.py').is_file(),\n"
                 "      len([f for f in (services / 'migrations' / 'versions').iterdir() if f.name.endswith('.py')]))")
    assert answer.returncode == 0, answer.stderr
    config, env, versions = answer.stdout.split()
    assert (config, env) == ("True", "True") and int(versions) >= 10
