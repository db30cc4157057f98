"""Time as the API shows it: epoch seconds, UTC, as numbers."""
import time
from datetime import datetime, timezone


def now():
    return round(time.time(), 6)


def parse_docker_time(value):
    """Docker's RFC 3339 timestamps (nanoseconds, ``Z``) to epoch seconds.

    Returns None for Docker's zero time ("0001-01-01T00:00:00Z") or no value.
    """
    if not value or value.startswith("0001-01-01"):
        return None
    text = value.rstrip("Z")
    offset = "+00:00"
    for sign in ("+", "-"):
        # an explicit offset after the time part, e.g. 2024-01-01T10:00:00.5+02:00
        pos = text.rfind(sign)
        if pos > 10:
            text, offset = text[:pos], text[pos:]
            break
    if "." in text:
        head, frac = text.split(".", 1)
        text = f"{head}.{frac[:6].ljust(6, '0')}"
    else:
        text = f"{text}.000000"
    parsed = datetime.strptime(text + offset, "%Y-%m-%dT%H:%M:%S.%f%z")
    return round(parsed.astimezone(timezone.utc).timestamp(), 6)


def duration(start, end):
    if start is None or end is None:
        return None
    return round(end - start, 6)
