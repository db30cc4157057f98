"""IMAGE_MAP: image names the operator maps to a registry of their own.

An air-gapped site (and every test here) keeps copies of the public images it
uses in a registry of its own; a task (or a TES executor) still names them as
everyone does: ``alpine``, ``ubuntu:20.04``, ``docker.io/library/python:3.12``.
``IMAGE_MAP`` rewrites such a name before the registry pulls it.

The setting is a comma-separated list of ``SOURCE=TARGET`` rules.  A SOURCE is a
registry host (``docker.io`` is Docker Hub, and so every unqualified name) or a
host and a path prefix (``docker.io/library``, ``quay.io/biocontainers``); TARGET is a
registry host with an optional path prefix (``localhost:5000``,
``registry.example.org/mirror``).  A name is first written out in full, as Docker
reads it (``alpine`` is ``docker.io/library/alpine``); the rule with the longest
SOURCE that is a whole-component prefix of it replaces that prefix by TARGET, the
tag or digest kept: with ``docker.io=localhost:5000``, ``alpine`` is pulled as
``localhost:5000/library/alpine:latest``; a name no rule matches is pulled as it is.
"""
from stevedore_jobs.contract.checks import Invalid, parse_reference

HUB = "docker.io"
HUB_ALIASES = ("index.docker.io", "registry-1.docker.io")
RULES_MAX = 100


def full_name(name):
    """``name`` (without tag or digest) as Docker reads it: host first, Docker Hub's with ``library/``."""
    parts = name.split("/")
    if len(parts) > 1 and ("." in parts[0] or ":" in parts[0] or parts[0] == "localhost"):
        host, path = parts[0], parts[1:]
    else:
        host, path = HUB, parts
    if host in HUB_ALIASES:
        host = HUB
    if host == HUB and len(path) == 1:
        path = ["library", *path]
    return "/".join([host, *path])


def _checked(text, what):
    """A SOURCE or TARGET as a name Docker accepts (lower-case, host first), else ValueError."""
    text = text.strip().rstrip("/")
    try:
        name, tag, digest = parse_reference(text + "/x")  # a prefix: valid once something follows it
    except Invalid as exc:
        raise ValueError(f"{what} {text!r} is not a registry host or image name prefix ({exc.message})") from None
    if digest or tag != "latest" or name != text + "/x":
        raise ValueError(f"{what} {text!r} may not have a tag or digest")
    return text


def parse_image_map(value):
    """The rules of an ``IMAGE_MAP`` value: a tuple of (full SOURCE prefix, TARGET), longest SOURCE first.

    Raises ValueError naming the rule that does not parse.
    """
    rules = {}
    for item in str(value or "").split(","):
        if not item.strip():
            continue
        source, sep, target = item.partition("=")
        if not sep or not source.strip() or not target.strip():
            raise ValueError(f"{item.strip()!r} is not SOURCE=TARGET (e.g. docker.io=localhost:5000)")
        source = _checked(source, "source")
        target = _checked(target, "target")
        if "/" in source:  # a host and a path, written out in full (``library/x`` is Docker Hub's)
            source = full_name(source + "/x")[:-2]
        elif "." in source or ":" in source or source == "localhost":
            source = HUB if source in HUB_ALIASES else source
        else:
            raise ValueError(f"source {source!r} must be a registry host (docker.io, quay.io, localhost:5000) "
                             "or a host and a path")
        rules[source] = target
        if len(rules) > RULES_MAX:
            raise ValueError(f"at most {RULES_MAX} rules")
    return tuple(sorted(rules.items(), key=lambda rule: -len(rule[0].split("/"))))


def map_reference(reference, rules):
    """``reference`` as the registry pulls it under ``rules`` (``parse_image_map``'s); unchanged if none match.

    ``reference`` must be valid (``parse_reference``); so is what is returned.
    """
    if not rules:
        return reference
    name, tag, digest = parse_reference(reference)
    full = full_name(name)
    for source, target in rules:
        if full == source or full.startswith(source + "/"):
            mapped = target + full[len(source):]
            if digest:
                return f"{mapped}@{digest}"
            return f"{mapped}:{tag}"
    return reference
