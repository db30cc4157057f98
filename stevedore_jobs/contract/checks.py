"""Rules of the contract that are not a type: text without control characters, image references,
memory sizes.  Each failure is an ``Invalid`` naming its field."""
import re


class Invalid(ValueError):
    """Input that breaks the contract: ``field: message``."""

    def __init__(self, message, field):
        super().__init__(f"{field}: {message}")
        self.message = message
        self.field = field


SHOWN_MAX = 60


def shown(value, limit=SHOWN_MAX):
    """``value`` as echoed in a message: repr, cut to about ``limit`` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + f"...(+{len(text) - limit} characters)"


# No string that crosses the door may hold C0 or C1 control characters (DEL too)
# or lone surrogates: they break storage (PostgreSQL refuses NUL), encoding
# (UTF-8 has no lone surrogates) and whatever shows them (terminals, logs).
# Free text (a command, env values) may hold tab, newline and carriage return.
CONTROL = r"\x00-\x1f\x7f-\x9f\ud800-\udfff"
CONTROL_IN_TEXT = r"\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff"
_CONTROL = re.compile(f"[{CONTROL}]")
_CONTROL_IN_TEXT = re.compile(f"[{CONTROL_IN_TEXT}]")
FREE_TEXT_FIELDS = frozenset({"command", "env", "items", "matrix"})


def some_of(data, fields):
    """A change's body (PATCH) as given, or ``Invalid`` naming ``body`` when it is an empty object."""
    if isinstance(data, dict) and not data:
        raise Invalid(f"give one or more of {', '.join(fields)}", "body")
    return data


def check_text(value, field, free_text=False):
    """``value`` if it holds no control character or lone surrogate (tab/LF/CR allowed in free text)."""
    bad = (_CONTROL_IN_TEXT if free_text else _CONTROL).search(value)
    if bad:
        raise Invalid(f"must not contain control characters or lone surrogates "
                      f"(U+{ord(bad.group()):04X} at character {bad.start()})", field)
    return value


def check_strings(body, field="body", free=False, opaque=()):
    """Every string in a JSON body, keys and values at any depth, through ``check_text``.

    The error names the top-level field the string is in (``field`` for a bad
    top-level key); values under FREE_TEXT_FIELDS are free text (with ``free``, every value is); the
    values of the top-level keys ``opaque`` are left to their model (a secret's value: any text but NUL).
    """
    stack = [(body, None, free)]
    while stack:
        value, top, free = stack.pop()
        if isinstance(value, str):
            check_text(value, top or field, free)
        elif isinstance(value, dict):
            for key, item in value.items():
                if isinstance(key, str):
                    check_text(key, top or field)
                if top is None and key in opaque:
                    continue
                name = top or (key[:SHOWN_MAX] if isinstance(key, str) else field)
                stack.append((item, name, free or (top is None and key in FREE_TEXT_FIELDS)))
        elif isinstance(value, list):
            stack.extend((item, top, free) for item in value)
    return body


# The Docker reference grammar (github.com/distribution/reference).
_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|-+)"
_PATH_COMPONENT = rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?"
_NAME = rf"(?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
_TAG = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
# patterns are matched whole (re.fullmatch): `$` would admit a trailing newline
_PATH_RE = re.compile(_PATH_COMPONENT)
REFERENCE_RE = re.compile(rf"(?P<name>{_NAME})(?::(?P<tag>{_TAG}))?(?:@(?P<digest>{_DIGEST}))?", re.ASCII)
# the same grammar as a JSON Schema pattern (ECMA-262: no named groups), with Docker's reading of the
# first part: a registry host only if it has a dot or a port or is localhost, else lower-case like the rest
_HOST = (rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})+(?::[0-9]+)?|{_DOMAIN_COMPONENT}:[0-9]+"
         r"|localhost|\[[0-9a-fA-F:]*:[0-9a-fA-F:]*\](?::[0-9]+)?|\[[0-9a-fA-F:]+\]:[0-9]+)")
# (its last part at most 128 characters)
REFERENCE_PATTERN = (f"^(?:{_HOST}/)?(?:{_PATH_COMPONENT}/)*(?=[a-z0-9._-]{{1,128}}(?:[:@]|$)){_PATH_COMPONENT}"
                     f"(?::{_TAG})?(?:@{_DIGEST})?$")
# a string that crosses the door, as a JSON Schema pattern (lone surrogates cannot be written in one)
NO_CONTROL = "^[^\\x00-\\x1f\\x7f-\\x9f]*$"
NO_CONTROL_IN_TEXT = "^[^\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f-\\x9f]*$"
# the ids the API makes: 32 lower-case hex digits
ID_PATTERN = "^[0-9a-f]{32}$"
# a team's name (issue 18): a Kubernetes DNS label, 1 to 63 lower-case letters, digits and '-', starting
# and ending with a letter or digit; a principal's name: 1 to 200 printable characters
TEAM_MAX = 63
TEAM_PATTERN = "^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$"
PRINCIPAL_MAX = 200
PRINCIPAL_PATTERN = "^[^\\x00-\\x1f\\x7f-\\x9f]*[^\\s\\x00-\\x1f\\x7f-\\x9f][^\\x00-\\x1f\\x7f-\\x9f]*$"
# a JSON body nests at most this deep (the body itself is level 1; the gateway refuses deeper ones)
MAX_JSON_DEPTH = 32
REPOSITORY_MAX = 255


def parse_reference(reference):
    """Split an image reference into (name, tag, digest); raise if malformed.

    ``tag`` defaults to ``latest`` unless a digest pins the image.
    """
    if not isinstance(reference, str) or not reference.strip():
        raise Invalid("must be a non-empty string, e.g. localhost:5000/team/app:1.0", "repository")
    if len(reference) > REPOSITORY_MAX:
        raise Invalid(f"must be at most {REPOSITORY_MAX} characters", "repository")
    match = REFERENCE_RE.fullmatch(reference)
    if not match:
        raise Invalid(f"{shown(reference)} is not a valid Docker image reference "
                      "(lower-case name, optional registry host, optional :tag or @digest)", "repository")
    name = match.group("name")
    parts = name.split("/")
    # as Docker reads it: the first part is a registry host only if it looks like one
    has_host = len(parts) > 1 and ("." in parts[0] or ":" in parts[0] or parts[0] == "localhost")
    if not all(_PATH_RE.fullmatch(part) for part in parts[1 if has_host else 0:]):
        raise Invalid(f"{shown(reference)} is not a valid Docker image reference "
                      "(repository names must be lower-case)", "repository")
    if len(parts[-1]) > 128 or len(name) > 255:
        raise Invalid("image name is too long", "repository")
    tag, digest = match.group("tag"), match.group("digest")
    if tag is None and digest is None:
        tag = "latest"
    return name, tag, digest


_MEMORY_RE = re.compile(r"([0-9]{1,20})([bkmg]?)", re.IGNORECASE)
MEMORY_MIN, MEMORY_MAX = 6 * 1024 ** 2, 1024 ** 4


def memory_bytes(value, field="memory"):
    """A size such as "256m" or "1g" in bytes (None stays None), from 6m to 1024g (a RUN's ``memory``, its
    ``disk``: ``field``)."""
    if value is None:
        return None
    units = {"": 1, "b": 1, "k": 1024, "m": 1024 ** 2, "g": 1024 ** 3}
    match = _MEMORY_RE.fullmatch(value) if isinstance(value, str) else None
    if not match:
        raise Invalid('must be a size such as "256m" or "1g"', field)
    size = int(match.group(1)) * units[match.group(2).lower()]
    if not MEMORY_MIN <= size <= MEMORY_MAX:
        raise Invalid("must be between 6m and 1024g", field)
    return size


def size_text(size):
    """Bytes as the API writes sizes: "512m", "8g" (exact), else bytes."""
    for unit, factor in (("g", 1024 ** 3), ("m", 1024 ** 2), ("k", 1024)):
        if size % factor == 0:
            return f"{size // factor}{unit}"
    return str(size)


def integer_range_pattern(low, high):
    """A regular expression (no anchors) for the whole numbers from ``low`` to ``high``, no leading zero.

    The split of to-regex-range: ranges whose numbers share their first digits, then one class per digit.
    """
    def nines(n, k):
        return int(str(n)[:-k] + "9" * k) if k < len(str(n)) else int("9" * k)

    stops, k = {high}, 1
    while low <= nines(low, k) < high:
        stops.add(nines(low, k))
        k += 1
    k = 1
    while low < (high + 1) - (high + 1) % 10 ** k - 1 <= high:
        stops.add((high + 1) - (high + 1) % 10 ** k - 1)
        k += 1
    parts, start = [], low
    for stop in sorted(stops):
        pattern, free = "", 0
        for a, b in zip(str(start), str(stop)):
            if a == b:
                pattern += a
            elif a != "0" or b != "9":
                pattern += f"[{a}-{b}]"
            else:
                free += 1
        parts.append(pattern + ("[0-9]" + (f"{{{free}}}" if free > 1 else "") if free else ""))
        start = stop + 1
    return "|".join(parts)


def memory_pattern(max_memory=MEMORY_MAX):
    """The sizes ``memory_bytes`` accepts up to ``max_memory``, as one JSON Schema pattern."""
    units = (("", "[bB]?", 1), ("k", "[kK]", 1024), ("m", "[mM]", 1024 ** 2), ("g", "[gG]", 1024 ** 3))
    alternatives = []
    for _, suffix, factor in units:
        low, high = -(-MEMORY_MIN // factor), min(max_memory, MEMORY_MAX) // factor
        if low <= high:
            alternatives.append(f"(?:{integer_range_pattern(low, high)}){suffix}")
    return f"^0*(?:{'|'.join(alternatives)})$"


_C = "\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f-\\x9f"  # controls a free text may not hold (tab, LF, CR it may)
# a command string shlex.split() takes and finds a word in: quotes closed, no trailing backslash
COMMAND_PATTERN = (f"^(?=[\\s\\S]*\\S)(?:[^'\"\\\\{_C}]|\\\\[^{_C}]|'[^'{_C}]*'"
                   f"|\"(?:[^\"\\\\{_C}]|\\\\[^{_C}])*\")*$")


# a callback_url as the served spec describes it: http(s), a host name, an optional port, no user:password,
# no #fragment.  The RUN takes an address too (refused unless the operator allows its network,
# WEBHOOK_ALLOW_NETWORKS: docs/webhooks.md), which the spec leaves out.
CALLBACK_URL_PATTERN = ("^[hH][tT][tT][pP][sS]?://[A-Za-z0-9._-]*[g-wyzG-WYZ_-][A-Za-z0-9._-]*"
                        f"(?::0*(?:{integer_range_pattern(1, 65535)})?)?"
                        "(?:[/?][^\\x00-\\x20\\x7f-\\x9f#]*)?$")


def json_integer(value):
    """A number without a fraction as the integer it is (JSON has one kind of number, and JSON Schema's
    integer is any number without a fraction: 2.0 is 2, what a client's encoder may write; 2.5 stays as sent,
    to be refused)."""
    if isinstance(value, float) and value.is_integer() and abs(value) <= 2 ** 53:
        return int(value)
    return value
