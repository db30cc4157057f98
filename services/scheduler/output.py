"""An execution's output: the runner's reports in, what readers are given out.

Output is bytes as the job wrote them (a NUL, invalid UTF-8, escape
sequences: anything).  A runner reports each stream's kept bytes (at most
LOG_LIMIT_BYTES) in the shape of docs/events.md:

    {"encoding": "base64", "stdout": "<base64>", "stdout_head": 5, "stdout_total": 9000, ...}

where the first ``head`` kept bytes are the stream's first bytes and the rest
its last; ``total - len(kept)`` bytes were omitted between them.  Runners from
before sent text (no ``encoding``; ``stdout`` a str, ``stdout_truncated`` when
only its end was kept): that is taken as its UTF-8 bytes.

Readers get the same shape (``as_base64``, for raw downloads and ``follow``),
or only what is kept past given offsets (``as_base64(..., since=...)``, for
followers), or text for JSON (``as_text``): the kept bytes decoded as UTF-8, invalid
sequences replaced by U+FFFD, head and tail decoded apart.
"""
import base64
import binascii

STREAMS = ("stdout", "stderr")


class BadLogs(ValueError):
    """A report's ``logs`` that cannot be read; the message names the field."""


def _count(value, field):
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise BadLogs(f"logs.{field}: must be a whole number of bytes, not {value!r:.40}")
    return value


def from_report(logs):
    """A report's ``logs`` (either shape) as the columns of a ``detail_logs`` row.

    Odd but readable counts are made consistent (a head longer than what is
    kept, a total below it); anything unreadable raises ``BadLogs``.
    """
    if not isinstance(logs, dict):
        raise BadLogs(f"logs: must be an object, not {type(logs).__name__}")
    encoding = logs.get("encoding")
    if encoding not in (None, "base64"):
        raise BadLogs(f"logs.encoding: must be base64, not {encoding!r:.40}")
    row = {}
    for stream in STREAMS:
        sent = logs.get(stream)
        if sent is None:
            sent = ""
        if not isinstance(sent, str):
            raise BadLogs(f"logs.{stream}: must be a string, not {type(sent).__name__}")
        if encoding == "base64":
            try:
                kept = base64.b64decode(sent, validate=True)
            except (binascii.Error, ValueError) as exc:
                raise BadLogs(f"logs.{stream}: is not base64 ({exc})") from None
            head = _count(logs.get(f"{stream}_head", len(kept)), f"{stream}_head")
        else:
            # old shape: text; a lone surrogate (from JSON) is kept as the bytes it stands for
            kept = sent.encode("utf-8", "surrogatepass")
            head = 0 if logs.get(f"{stream}_truncated") else len(kept)
        total = _count(logs.get(f"{stream}_total", len(kept)), f"{stream}_total")
        row[stream] = kept
        row[f"{stream}_head"] = min(head, len(kept))
        row[f"{stream}_total"] = max(total, len(kept))
    return row


def _split(row, stream):
    kept = bytes(row.get(stream) or b"")
    head = min(row.get(f"{stream}_head") or 0, len(kept))
    total = max(row.get(f"{stream}_total") or 0, len(kept))
    return kept, head, total


def as_text(row):
    """For JSON readers: each stream as text, and where bytes were omitted from it.

    ``stdout`` is the kept bytes decoded as UTF-8 (invalid sequences as U+FFFD);
    ``stdout_head`` of those bytes are the stream's first, decoded into the first
    ``stdout_head_chars`` characters of ``stdout``; ``stdout_omitted`` bytes
    were left out there.  ``stdout_truncated`` (for older clients) is whether any were.
    """
    out = {"encoding": "utf-8"}
    for stream in STREAMS:
        kept, head, total = _split(row, stream)
        first = kept[:head].decode("utf-8", errors="replace")
        out[stream] = first + kept[head:].decode("utf-8", errors="replace")
        out[f"{stream}_bytes"] = len(kept)
        out[f"{stream}_head"] = head
        out[f"{stream}_head_chars"] = len(first)
        out[f"{stream}_omitted"] = total - len(kept)
        out[f"{stream}_total"] = total
        out[f"{stream}_truncated"] = total > len(kept)
    return out


def past(kept, head, total, since):
    """The kept bytes at stream offsets ``since`` and after: (bytes, head, since).

    The answer has the report's shape seen from offset ``since`` instead of 0:
    its first ``head`` bytes are the stream's bytes from ``since`` on, the rest
    its last bytes up to ``total``; ``total - since - len(bytes)`` were omitted
    between them.  ``since`` is clamped to [0, total].
    """
    since = max(0, min(since, total))
    tail_start = max(head, total - (len(kept) - head))  # stream offset of the first kept tail byte
    if since <= head:
        new = kept[since:]
    else:
        new = kept[head + max(0, since - tail_start):]
    return new, past_head(len(new), head, total, since), since


def past_head(length, head, total, since):
    """How many of the ``length`` bytes kept past ``since`` follow on from it (``past``'s head)."""
    if total - since == length:  # nothing omitted: all of it is contiguous from since
        return length
    return head - since if since <= head else 0


def as_base64(row, streams=STREAMS, since=None):
    """For raw readers: the report's own shape, the kept bytes exactly (base64).

    With ``since`` ({stream: offset}), each stream's answer holds only what is
    kept past its offset (``past``) and ``<stream>_since`` says where it starts.
    """
    out = {"encoding": "base64"}
    for stream in streams:
        kept, head, total = _split(row, stream)
        if since is not None:
            kept, head, out[f"{stream}_since"] = past(kept, head, total, since.get(stream, 0))
        out[stream] = base64.b64encode(kept).decode("ascii")
        out[f"{stream}_head"] = head
        out[f"{stream}_total"] = total
    return out
