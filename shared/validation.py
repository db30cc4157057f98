"""Validation of what users send.  Every failure names the field it is about."""
import re
import shlex
from urllib.parse import urlsplit

from shared.errors import ValidationError

# The Docker reference grammar (github.com/distribution/reference).
_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|-+)"
_PATH_COMPONENT = rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?"
_NAME = rf"(?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
# patterns are matched whole (re.fullmatch): `$` would admit a trailing newline
_PATH_RE = re.compile(_PATH_COMPONENT)
REFERENCE_RE = re.compile(rf"(?P<name>{_NAME})(?::(?P<tag>{_TAG}))?(?:@(?P<digest>{_DIGEST}))?", re.ASCII)

NAME_MAX = 200
REPOSITORY_MAX = 255
MEMORY_RE = re.compile(r"([0-9]{1,20})([bkmg]?)", re.IGNORECASE)
ENV_KEY_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

# No string that crosses the door may hold C0 or C1 control characters (DEL too)
# or lone surrogates: they break storage (PostgreSQL refuses NUL), encoding
# (UTF-8 has no lone surrogates) and whatever shows them (terminals, logs).
# Free text (a command, env values) may hold tab, newline and carriage return.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_CONTROL_IN_TEXT = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
FREE_TEXT_FIELDS = frozenset({"command", "env"})
SHOWN_MAX = 60


def shown(value, limit=SHOWN_MAX):
    """``value`` as echoed in a message: repr, cut to about ``limit`` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + f"...(+{len(text) - limit} characters)"


def check_text(value, field, free_text=False):
    """``value`` if it holds no control character or lone surrogate (tab/LF/CR allowed in free text)."""
    bad = (_CONTROL_IN_TEXT if free_text else _CONTROL).search(value)
    if bad:
        raise ValidationError(f"must not contain control characters or lone surrogates "
                              f"(U+{ord(bad.group()):04X} at character {bad.start()})", field)
    return value


def check_strings(body, field="body"):
    """Every string in a JSON body, keys and values at any depth, through ``check_text``.

    The error names the top-level field the string is in (``field`` for a bad
    top-level key); values under FREE_TEXT_FIELDS are free text.
    """
    stack = [(body, None, False)]
    while stack:
        value, top, free = stack.pop()
        if isinstance(value, str):
            check_text(value, top or field, free)
        elif isinstance(value, dict):
            for key, item in value.items():
                if isinstance(key, str):
                    check_text(key, top or field)
                name = top or (key[:SHOWN_MAX] if isinstance(key, str) else field)
                stack.append((item, name, free or (top is None and key in FREE_TEXT_FIELDS)))
        elif isinstance(value, list):
            stack.extend((item, top, free) for item in value)
    return body


def parse_reference(reference):
    """Split an image reference into (name, tag, digest); raise if malformed.

    ``tag`` defaults to ``latest`` unless a digest pins the image.
    """
    if not isinstance(reference, str) or not reference.strip():
        raise ValidationError("must be a non-empty string, e.g. localhost:5000/team/app:1.0", "repository")
    if len(reference) > REPOSITORY_MAX:
        raise ValidationError(f"must be at most {REPOSITORY_MAX} characters", "repository")
    match = REFERENCE_RE.fullmatch(reference)
    if not match:
        raise ValidationError(
            f"{shown(reference)} is not a valid Docker image reference "
            "(lower-case name, optional registry host, optional :tag or @digest)",
            "repository",
        )
    name = match.group("name")
    parts = name.split("/")
    # as Docker reads it: the first part is a registry host only if it looks like one
    has_host = len(parts) > 1 and ("." in parts[0] or ":" in parts[0] or parts[0] == "localhost")
    if not all(_PATH_RE.fullmatch(part) for part in parts[1 if has_host else 0:]):
        raise ValidationError(f"{shown(reference)} is not a valid Docker image reference "
                              "(repository names must be lower-case)", "repository")
    if len(parts[-1]) > 128 or len(name) > 255:
        raise ValidationError("image name is too long", "repository")
    tag, digest = match.group("tag"), match.group("digest")
    if tag is None and digest is None:
        tag = "latest"
    return name, tag, digest


def require_object(body, what="body"):
    if not isinstance(body, dict):
        raise ValidationError("must be a JSON object", what)
    return body


def task_name(value):
    if not isinstance(value, str):
        raise ValidationError("must be a string", "name")
    value = value.strip()
    if not value:
        raise ValidationError("must not be empty", "name")
    if len(value) > NAME_MAX:
        raise ValidationError(f"must be at most {NAME_MAX} characters", "name")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise ValidationError("must not contain control characters", "name")
    return value


def new_task(body):
    """Validate a POST /task/ body; returns (name, repository)."""
    check_strings(require_object(body))
    if "repository" not in body:
        raise ValidationError("is required", "repository")
    repository = body["repository"]
    parse_reference(repository)
    name = task_name(body["name"]) if body.get("name") is not None else repository
    status = body.get("status")
    if status is not None and status != "SUBMITTED":
        # the seed lists status in the request; a client may only ask for the initial one
        raise ValidationError("may only be SUBMITTED when creating a task", "status")
    return name, repository


CREDENTIAL_MAX = 1024


def registry_credentials(body):
    """The optional ``username`` and ``password`` of a POST /task/ body (both or neither).

    Returns ``{"username", "password"}`` or None.  Messages never echo the values.
    """
    username, password = body.get("username"), body.get("password")
    if username is None and password is None:
        return None
    for field, value in (("username", username), ("password", password)):
        if value is None:
            other = "password" if field == "username" else "username"
            raise ValidationError(f"is required when {other} is given (send both or neither)", field)
        if not isinstance(value, str) or not value:
            raise ValidationError("must be a non-empty string", field)
        if len(value) > CREDENTIAL_MAX:
            raise ValidationError(f"must be at most {CREDENTIAL_MAX} characters", field)
        if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
            raise ValidationError("must not contain control characters", field)
    return {"username": username, "password": password}


CALLBACK_URL_MAX = 2048


def callback_url(value):
    """A RUN's ``callback_url``: an absolute http(s) URL without user:password."""
    if not isinstance(value, str) or not value.strip():
        raise ValidationError("must be an http:// or https:// URL", "callback_url")
    if len(value) > CALLBACK_URL_MAX:
        raise ValidationError(f"must be at most {CALLBACK_URL_MAX} characters", "callback_url")
    if any(ord(ch) <= 32 or ord(ch) == 127 for ch in value):
        raise ValidationError("must not contain spaces or control characters", "callback_url")
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 -- raises ValueError on a malformed port
    except ValueError as exc:
        raise ValidationError(f"is not a valid URL ({exc})", "callback_url") from exc
    if parts.scheme not in ("http", "https"):
        raise ValidationError("must be an http:// or https:// URL", "callback_url")
    if not parts.hostname:
        raise ValidationError("must name a host, e.g. https://ci.example.com/hooks/stevedore", "callback_url")
    if parts.username is not None or parts.password is not None:
        raise ValidationError("must not carry user:password (they would be shown with the result)",
                              "callback_url")
    if parts.fragment:
        raise ValidationError("must not have a #fragment", "callback_url")
    return value


def _integer(body, field, low, high, default=None):
    value = body.get(field, default)
    if value is None:
        if field in body and default is not None:  # a field with a default is not nullable
            raise ValidationError(f"must not be null; an integer from {low} to {high}", field)
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValidationError(f"must be an integer from {low} to {high}", field)
    return value


def _number(body, field, low, high):
    value = body.get(field)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise ValidationError(f"must be a number from {low} to {high}", field)
    return value


def _command(value):
    if value is None:
        return None
    if isinstance(value, str):
        if not value.strip():
            raise ValidationError("must not be empty", "command")
        if len(value) > 65536:
            raise ValidationError("must be at most 65536 characters", "command")
        # split here as the runner's Docker client would (POSIX shell words, shlex):
        # what is stored and run is this list, so a RUN accepted can always be started
        try:
            words = shlex.split(value)
        except ValueError as exc:  # an unbalanced quote, a trailing backslash
            raise ValidationError(f"cannot be split into words like a shell command ({exc}); "
                                  "close its quotes, or send a list of strings", "command") from None
        if not words:
            raise ValidationError("must not be empty", "command")
        return words
    if isinstance(value, list) and value and all(isinstance(part, str) for part in value):
        if sum(len(part) for part in value) > 65536:
            raise ValidationError("must be at most 65536 characters in all", "command")
        return value
    raise ValidationError("must be a string or a non-empty list of strings", "command")


def _env(value):
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValidationError("must be an object of string values", "env")
    if len(value) > 1000:
        raise ValidationError("must have at most 1000 variables", "env")
    for key, item in value.items():
        if not ENV_KEY_RE.fullmatch(key) or len(key) > 255:
            raise ValidationError(f"{shown(key)} is not a valid variable name", "env")
        if key.startswith("STEVEDORE_"):
            raise ValidationError(f"{shown(key)}: the STEVEDORE_ prefix is reserved", "env")
        if not isinstance(item, str):
            raise ValidationError(f"{key}: value must be a string", "env")
        if len(item) > 65536:
            raise ValidationError(f"{key}: value must be at most 65536 characters", "env")
    return dict(value)


def memory_bytes(value):
    if value is None:
        return None
    units = {"": 1, "b": 1, "k": 1024, "m": 1024 ** 2, "g": 1024 ** 3}
    match = MEMORY_RE.fullmatch(value) if isinstance(value, str) else None
    if not match:
        raise ValidationError('must be a size such as "256m" or "1g"', "memory")
    size = int(match.group(1)) * units[match.group(2).lower()]
    if not 6 * 1024 ** 2 <= size <= 1024 ** 4:
        raise ValidationError("must be between 6m and 1024g", "memory")
    return size


def size_text(size):
    """Bytes as the API writes sizes: "512m", "8g" (exact), else bytes."""
    for unit, factor in (("g", 1024 ** 3), ("m", 1024 ** 2), ("k", 1024)):
        if size % factor == 0:
            return f"{size // factor}{unit}"
    return str(size)


RUN_FIELDS = {
    "operation", "task_id", "times", "command", "env", "timeout", "parallelism",
    "retries", "memory", "cpus", "priority", "callback_url",
}


def run_params(body, max_times, max_memory=None, max_cpus=None):
    """Validate a RUN body; returns the parameters the result is run with.

    ``max_memory`` (bytes) and ``max_cpus``: the operator's ceilings
    (``settings.ceilings``, shared/settings.py); a RUN asking more is refused, naming the field.
    """
    check_strings(require_object(body))
    unknown = sorted(set(body) - RUN_FIELDS)
    if unknown:
        raise ValidationError(f"unknown field; accepted are {', '.join(sorted(RUN_FIELDS))}",
                              unknown[0][:SHOWN_MAX])
    if body.get("times") is None:
        raise ValidationError(f"is required (an integer from 1 to {max_times})", "times")
    params = {
        "times": _integer(body, "times", 1, max_times),
        "command": _command(body.get("command")),
        "env": _env(body.get("env")),
        "timeout": _number(body, "timeout", 1, 31 * 24 * 3600),
        "parallelism": _integer(body, "parallelism", 1, 100000),
        "retries": _integer(body, "retries", 0, 100, default=0),
        "memory": body.get("memory"),
        "cpus": _number(body, "cpus", 0.01, 1024),
        "priority": _integer(body, "priority", 0, 9, default=5),
    }
    within_ceilings(params, max_memory, max_cpus)
    if body.get("callback_url") is not None:
        params["callback_url"] = callback_url(body["callback_url"])
    return params


def within_ceilings(params, max_memory=None, max_cpus=None):
    """Refuse ``memory`` or ``cpus`` above the operator's ceilings (None: no ceiling)."""
    memory = memory_bytes(params.get("memory"))
    if max_memory and memory and memory > max_memory:
        raise ValidationError(f"must be at most {size_text(max_memory)}, this installation's ceiling "
                              "(CONTAINER_MAX_MEMORY)", "memory")
    cpus = params.get("cpus")
    if max_cpus and cpus and cpus > max_cpus:
        raise ValidationError(f"must be a number from 0.01 to {max_cpus:g}, this installation's ceiling "
                              "(CONTAINER_MAX_CPUS)", "cpus")
    return params


def operation(body, allowed):
    require_object(body)
    op = body.get("operation")
    if op is None:
        raise ValidationError(f"is required; one of {', '.join(allowed)}", "operation")
    if op not in allowed:
        raise ValidationError(f"{shown(op)} is not supported; one of {', '.join(allowed)}", "operation")
    return op


def status_filter(status, allowed):
    """A ``?status=`` filter: None, or one of ``allowed``."""
    if status is not None and status not in allowed:
        raise ValidationError(f"must be one of {', '.join(allowed)}", "status")
    return status
