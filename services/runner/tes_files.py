"""A TES task's files on the runner: where its volumes go, its inputs staged in, its outputs collected.

Inputs come from ``content`` (inline), ``http(s)://`` URLs (the webhook egress rule:
every address the host resolves to must be global unless ``TES_ALLOW_NETWORKS``
allows its network; no redirect followed; at most ``TES_DOWNLOAD_MAX_BYTES`` each,
within ``TES_DOWNLOAD_TIMEOUT`` seconds) and ``file://`` paths under one of
``TES_INPUT_DIRS``.  Outputs go to ``file://`` paths under ``TES_OUTPUT_DIR``.  Any
other scheme, or a path outside those directories, fails the staging (SYSTEM_ERROR
with the reason).  Files move in and out of the task's Docker volumes as tar
streams through the engine (``put_archive`` / ``get_archive`` of a container that
has them mounted): nothing of the host is mounted into a container.
"""
import fnmatch
import io
import os
import posixpath
import re
import tarfile
import tempfile
from urllib.parse import unquote, urlsplit

import eventlet
import urllib3

from shared.egress import Refused, resolve
from stevedore_jobs.contract.tes import in_engine_dirs

CHUNK = 64 * 1024


class StagingFailed(Exception):
    """An input could not be staged or an output collected; the message says which and why."""


def wildcard_base(path):
    """The directory above a path's first component holding a wildcard (the path itself if none)."""
    parts = path.split("/")
    for i, part in enumerate(parts):
        if re.search(r"[*?\[]", part):
            return "/".join(parts[:i]) or "/"
    return path


def mount_dirs(task):
    """The directories a task's executors share, each a Docker volume: the fewest that hold every input,
    output, volume and redirected stream (a directory inside another is part of that one's volume)."""
    wanted = set()
    for item in task.get("inputs") or []:
        wanted.add(item["path"] if item.get("type") == "DIRECTORY" else posixpath.dirname(item["path"]))
    for item in task.get("outputs") or []:
        base = wildcard_base(item["path"])
        if base != item["path"]:
            wanted.add(base)
        else:
            wanted.add(item["path"] if item.get("type") == "DIRECTORY" else posixpath.dirname(item["path"]))
    wanted.update(task.get("volumes") or [])
    for executor in task.get("executors") or []:
        for stream in ("stdin", "stdout", "stderr"):
            # a device (/dev/null, /dev/stdout) is redirected from itself: no volume hides /dev
            if executor.get(stream) and not in_engine_dirs(posixpath.dirname(executor[stream])):
                wanted.add(posixpath.dirname(executor[stream]))
    wanted.discard("/")
    ordered = sorted(wanted, key=lambda d: (d.count("/"), d))
    kept = []
    for directory in ordered:
        if not any(directory == d or directory.startswith(d + "/") for d in kept):
            kept.append(directory)
    return kept


def mount_of(path, dirs):
    """The mounted directory holding ``path``, or None."""
    for directory in dirs:
        if path == directory or path.startswith(directory + "/"):
            return directory
    return None


def _under(path, roots):
    """``path`` resolved (symlinks followed) if it lies in one of ``roots``, else None."""
    real = os.path.realpath(path)
    for root in roots:
        root = os.path.realpath(root)
        if real == root or real.startswith(root.rstrip("/") + "/"):
            return real
    return None


class Stager:
    """Fetches a task's inputs into tar archives, one a mounted directory; collects its outputs."""

    def __init__(self, settings, should_stop=lambda: None):
        self.input_dirs = tuple(settings.tes_input_dirs)
        self.output_dir = settings.tes_output_dir
        self.max_bytes = settings.tes_download_max_bytes
        self.timeout = settings.tes_download_timeout
        self.allowed = settings.tes_allow_networks
        self.should_stop = should_stop
        self.spool = []

    def close(self):
        for handle in self.spool:
            handle.close()

    # ------------------------------------------------------------ inputs

    def archives(self, task, dirs):
        """{mounted directory: tar bytes (a spooled file)} holding every input, or ``StagingFailed``."""
        tars = {}
        for i, item in enumerate(task.get("inputs") or []):
            if self.should_stop():
                raise StagingFailed("cancelled while its inputs were staged")
            where = f"inputs[{i}] ({item.get('url') or 'content'})"
            directory = mount_of(item["path"], dirs)
            if directory not in tars:
                handle = tempfile.SpooledTemporaryFile(max_size=4 * 1024 * 1024)
                self.spool.append(handle)
                tars[directory] = (handle, tarfile.open(fileobj=handle, mode="w"), set())
            handle, tar, made = tars[directory]
            relative = posixpath.relpath(item["path"], directory)
            self._dirs(tar, made, posixpath.dirname(relative) if item.get("type") != "DIRECTORY" else relative)
            if item.get("content") is not None:
                self._add_bytes(tar, relative, item["content"].encode("utf-8"))
                continue
            scheme = urlsplit(item["url"]).scheme.lower()
            if scheme in ("http", "https"):
                if item.get("type") == "DIRECTORY":
                    raise StagingFailed(f"{where}: a DIRECTORY cannot be fetched over {scheme}")
                with tempfile.TemporaryFile() as body:
                    size = self.download(item["url"], body, where)
                    body.seek(0)
                    info = tarfile.TarInfo(relative)
                    info.size, info.mode = size, 0o666
                    tar.addfile(info, body)
            elif scheme == "file":
                self._add_local(tar, made, item, relative, where)
            else:
                raise StagingFailed(f"{where}: the scheme {scheme or '(none)'}:// is not supported here "
                                    "(http, https and file are)")
        result = {}
        for directory, (handle, tar, _) in tars.items():
            tar.close()
            handle.seek(0)
            result[directory] = handle
        return result

    @staticmethod
    def _dirs(tar, made, relative):
        path = ""
        for part in [p for p in relative.split("/") if p and p != "."]:
            path = f"{path}/{part}" if path else part
            if path not in made:
                info = tarfile.TarInfo(path)
                info.type, info.mode = tarfile.DIRTYPE, 0o777
                tar.addfile(info)
                made.add(path)

    @staticmethod
    def _add_bytes(tar, relative, data):
        info = tarfile.TarInfo(relative)
        info.size, info.mode = len(data), 0o666
        tar.addfile(info, io.BytesIO(data))

    def _add_local(self, tar, made, item, relative, where):
        path = unquote(urlsplit(item["url"]).path)
        real = _under(path, self.input_dirs) if self.input_dirs else None
        if real is None:
            raise StagingFailed(f"{where}: not under a directory TES inputs may be read from (TES_INPUT_DIRS)")
        total = 0
        if item.get("type") == "DIRECTORY":
            if not os.path.isdir(real):
                raise StagingFailed(f"{where}: not a directory")
            for root, dirnames, filenames in os.walk(real):  # symbolic links are not followed
                below = posixpath.join(relative, os.path.relpath(root, real)).rstrip("/.") or relative
                self._dirs(tar, made, below)
                for name in filenames:
                    full = os.path.join(root, name)
                    if os.path.islink(full) or not os.path.isfile(full):
                        continue
                    total += os.path.getsize(full)
                    if total > self.max_bytes:
                        raise StagingFailed(f"{where}: more than TES_DOWNLOAD_MAX_BYTES ({self.max_bytes})")
                    tar.add(full, arcname=posixpath.join(below, name), recursive=False, filter=_writable)
            return
        if not os.path.isfile(real):
            raise StagingFailed(f"{where}: not a file")
        if os.path.getsize(real) > self.max_bytes:
            raise StagingFailed(f"{where}: more than TES_DOWNLOAD_MAX_BYTES ({self.max_bytes})")
        tar.add(real, arcname=relative, recursive=False, filter=_writable)

    def download(self, url, sink, where):
        """GET ``url`` into ``sink`` within the bounds; its size, or ``StagingFailed`` saying why."""
        parts = urlsplit(url)
        https = parts.scheme.lower() == "https"
        port = parts.port or (443 if https else 80)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        size = 0
        try:
            with eventlet.Timeout(self.timeout):
                addresses = resolve(parts.hostname or "", port, self.allowed)
                options = {"timeout": urllib3.Timeout(connect=self.timeout, read=self.timeout),
                           "retries": False, "maxsize": 1}
                if https:
                    pool = urllib3.HTTPSConnectionPool(addresses[0], port, cert_reqs="CERT_REQUIRED",
                                                       server_hostname=parts.hostname,
                                                       assert_hostname=parts.hostname, **options)
                else:
                    pool = urllib3.HTTPConnectionPool(addresses[0], port, **options)
                try:
                    response = pool.urlopen("GET", target, headers={"Host": parts.netloc}, redirect=False,
                                            preload_content=False, assert_same_host=False)
                    if response.status != 200:
                        raise StagingFailed(f"{where}: answered HTTP {response.status}")
                    for chunk in response.stream(CHUNK):
                        size += len(chunk)
                        if size > self.max_bytes:
                            raise StagingFailed(f"{where}: more than TES_DOWNLOAD_MAX_BYTES ({self.max_bytes})")
                        sink.write(chunk)
                        if self.should_stop():
                            raise StagingFailed("cancelled while its inputs were staged")
                    response.release_conn()
                finally:
                    pool.close()
        except eventlet.Timeout:
            raise StagingFailed(f"{where}: not downloaded within TES_DOWNLOAD_TIMEOUT ({self.timeout:g}s)") from None
        except Refused as exc:
            raise StagingFailed(f"{where}: refused: {exc} (only global addresses, or networks in "
                                "TES_ALLOW_NETWORKS)") from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise StagingFailed(f"{where}: could not be downloaded ({exc.__class__.__name__})") from None
        return size

    # ------------------------------------------------------------ outputs

    def destination(self, url, where):
        """The local path a ``file://`` output URL names, inside ``TES_OUTPUT_DIR``; else ``StagingFailed``."""
        parts = urlsplit(url)
        if parts.scheme.lower() != "file":
            raise StagingFailed(f"{where}: the scheme {parts.scheme or '(none)'}:// is not supported for "
                                "outputs here (file is)")
        if not self.output_dir:
            raise StagingFailed(f"{where}: this Stevedore has no TES_OUTPUT_DIR for file:// outputs")
        path = unquote(parts.path)
        if ".." in path.split("/") or not path.startswith("/"):
            raise StagingFailed(f"{where}: the path must be absolute, without '..'")
        path = os.path.normpath(path)
        if not _inside(path, self.output_dir):
            raise StagingFailed(f"{where}: not under the directory TES outputs go to (TES_OUTPUT_DIR)")
        return path

    def collect(self, task, fetch):
        """Copy every output out; ``fetch(path)`` answers the tar stream of a path in the container (or
        raises ``FileNotFoundError``).  Returns TES ``OutputFileLog`` dicts, or ``StagingFailed``."""
        logs = []
        budget = [self.max_bytes * 10]
        for i, item in enumerate(task.get("outputs") or []):
            where = f"outputs[{i}] ({item['path']})"
            destination = self.destination(item["url"], where)
            base = wildcard_base(item["path"])
            try:
                stream = fetch(base)
            except FileNotFoundError:
                raise StagingFailed(f"{where}: no such file or directory after the executors ran") from None
            with tempfile.TemporaryFile() as spooled:
                for chunk in stream:
                    spooled.write(chunk)
                spooled.seek(0)
                with tarfile.open(fileobj=spooled, mode="r|") as tar:
                    logs.extend(self._extract(tar, item, base, destination, where, budget))
        return logs

    def _extract(self, tar, item, base, destination, where, budget):
        wildcard = base != item["path"]
        pattern = _glob(item["path"]) if wildcard else None
        prefix = (item.get("path_prefix") or base).rstrip("/")
        parent = posixpath.dirname(base)
        logs, found = [], False
        for member in tar:
            name = posixpath.normpath(member.name)
            if name.startswith("/") or ".." in name.split("/"):
                continue
            path = posixpath.join(parent, name)
            if wildcard:
                if not member.isfile() or not pattern.fullmatch(path):
                    continue
                relative = posixpath.relpath(path, prefix) if path.startswith(prefix + "/") else name
                target = os.path.join(destination, relative)
            elif item.get("type") == "DIRECTORY":
                if member.isdir():
                    found = True
                    continue
                if not member.isfile():
                    continue
                target = os.path.join(destination, posixpath.relpath(path, item["path"]))
            else:
                if not member.isfile():
                    if member.isdir() and path == item["path"]:
                        raise StagingFailed(f"{where}: is a directory; its type is FILE")
                    continue
                target = destination
            budget[0] -= member.size
            if budget[0] < 0:
                raise StagingFailed(f"{where}: the outputs are more than 10 x TES_DOWNLOAD_MAX_BYTES")
            os.makedirs(os.path.dirname(target), exist_ok=True)
            if not _inside(target, self.output_dir):
                raise StagingFailed(f"{where}: {target} is not under TES_OUTPUT_DIR (a symbolic link?)")
            source = tar.extractfile(member)
            with os.fdopen(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644),
                           "wb") as sink:
                while True:
                    chunk = source.read(CHUNK)
                    if not chunk:
                        break
                    sink.write(chunk)
            found = True
            logs.append({"url": "file://" + target, "path": path, "size_bytes": str(member.size)})
        if not found and not wildcard:
            raise StagingFailed(f"{where}: no such file after the executors ran")
        return logs


def _inside(path, root):
    """Whether ``path`` lies below ``root``, its nearest existing ancestor too once links are followed."""
    root = os.path.realpath(root).rstrip("/")
    if not os.path.normpath(path).startswith(root + "/"):
        return False
    existing = path
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    real = os.path.realpath(existing)
    return real == root or real.startswith(root + "/")


def _writable(info):
    """A staged file or directory: writable by the executors whatever user they run as, owned by root."""
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mode = 0o777 if info.isdir() else 0o666 | (info.mode & 0o111)
    return info


def _glob(path):
    """A TES output path with wildcards as a regex: ``*`` and ``?`` never cross a ``/``."""
    out = ""
    for part in re.split(r"(\*|\?|\[[^\]]*\])", path):
        if part == "*":
            out += "[^/]*"
        elif part == "?":
            out += "[^/]"
        elif part.startswith("[") and part.endswith("]") and len(part) > 2:
            out += fnmatch.translate(part)[4:-3]  # the class alone
        else:
            out += re.escape(part)
    return re.compile(out)
