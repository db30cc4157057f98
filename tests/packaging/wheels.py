"""Build this checkout's wheel, and wheels of what it needs from this environment, for offline installs.

A fresh virtualenv then installs them with ``pip --no-index``: no registry is
asked, and only what the wheel declares (and what that needs) is on offer.
"""
import base64
import csv
import hashlib
import io
import os
import shutil
import subprocess
import sys
import zipfile
from email.parser import Parser
from importlib import metadata

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.support import ROOT

# what a build leaves in a checkout, or what the wheel is not built from
NOT_SOURCES = shutil.ignore_patterns(".git", ".venv", "venv", "artifacts", "build", "dist", "*.egg-info",
                                     "__pycache__", "*.pyc", ".pytest_cache", ".hypothesis", "tests", "bench")


def build_wheel(target):
    """This checkout's wheel, built in a copy of it (the checkout stays clean) with this environment's setuptools."""
    source = os.path.join(target, "source")
    shutil.copytree(ROOT, source, ignore=NOT_SOURCES)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "--no-index", "--wheel-dir", target, source], check=True, timeout=300)
    shutil.rmtree(source)
    (name,) = [name for name in os.listdir(target) if name.endswith(".whl")]
    return os.path.join(target, name)


def wheel_metadata(path):
    with zipfile.ZipFile(path) as whl:
        (name,) = [name for name in whl.namelist() if name.endswith(".dist-info/METADATA")]
        return Parser().parsestr(whl.read(name).decode())


def requirements(requires, extra=""):
    """The requirements among ``requires`` that apply here with ``extra`` (none: the plain install)."""
    found = []
    for text in requires or []:
        requirement = Requirement(text)
        if requirement.marker is None or requirement.marker.evaluate({"extra": extra}):
            found.append(requirement)
    return found


def closure(requires):
    """Installed distributions needed by ``requires``, and by those in turn, by canonical name."""
    needed, seen = {}, set()
    pending = list(requires)
    while pending:
        requirement = pending.pop()
        name = canonicalize_name(requirement.name)
        if name not in needed:
            needed[name] = metadata.distribution(requirement.name)
            pending.extend(requirements(needed[name].requires))
        for extra in set(requirement.extras) - {e for n, e in seen if n == name}:
            seen.add((name, extra))
            pending.extend(requirements(needed[name].requires, extra=extra))
    return needed


def _wheel_name(dist):
    tags = [line.split(":", 1)[1].strip() for line in dist.read_text("WHEEL").splitlines()
            if line.startswith("Tag:")]
    parts = [[], [], []]
    for tag in tags:
        for part, value in zip(parts, tag.split("-")):
            if value not in part:
                part.append(value)
    name = dist.metadata["Name"].replace("-", "_")
    return f"{name}-{dist.version}-{'-'.join('.'.join(part) for part in parts)}.whl"


def repack(dist, target):
    """A wheel of an installed distribution: its files under site-packages and a RECORD of them."""
    path = os.path.join(target, _wheel_name(dist))
    dist_info = next(str(f).split("/")[0] for f in dist.files if str(f).split("/")[0].endswith(".dist-info"))
    records = []
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as whl:
        for file in dist.files:
            name = str(file)
            if (name.startswith("..") or "__pycache__" in name
                    or name in {f"{dist_info}/{n}" for n in ("RECORD", "INSTALLER", "REQUESTED", "direct_url.json")}):
                continue
            data = file.read_binary()
            whl.writestr(name, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            records.append((name, f"sha256={digest}", len(data)))
        out = io.StringIO()
        csv.writer(out, lineterminator="\n").writerows(records + [(f"{dist_info}/RECORD", "", "")])
        whl.writestr(f"{dist_info}/RECORD", out.getvalue())
    return path
