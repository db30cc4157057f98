"""What the ``stevedore`` command shows people: tables, fields, times, the progress bar.

Pure helpers (no HTTP), so they are tested on their own.
"""
import json
import os
import re
import shutil
import time

from stevedore_jobs.contract import statuses as st

# the order statuses are shown in, wherever counts are: a run's life
STATUS_ORDER = st.EXECUTION_STATUSES
MISSING = "-"


class UsageError(Exception):
    """Something the user typed is wrong; told in one line, exit status 2."""


# ---------------------------------------------------------------- values

# what a job's output must not send to a terminal as it is: C0 controls but newline and tab,
# DEL, C1 controls (ESC and CSI start escape sequences), the bidirectional overrides and
# isolates (they reorder what is shown), and lone surrogates (they cannot be written)
CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def _visible(match):
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def shown_output(text):
    """A job's output as it can be shown on a terminal: every control character visible.

    ESC becomes ``\\x1b``, NUL ``\\x00``, a lone CR ``\\x0d``, ...; newlines and tabs
    stay; invalid UTF-8 arrives from the API as U+FFFD already.
    """
    return CONTROL.sub(_visible, text)


def output_text(logs, stream):
    """One stream of a logs object (GET .../logs/) as shown: controls visible, omitted bytes marked.

    Where bytes were left out (``stdout_omitted`` after ``stdout_head_chars``
    characters), a line ``[stevedore: N bytes not kept]`` stands in for them.
    """
    text = logs.get(stream) or ""
    omitted = logs.get(f"{stream}_omitted") or 0
    if not omitted:
        return shown_output(text)
    at = logs.get(f"{stream}_head_chars") or 0
    head, tail = text[:at], text[at:]
    marker = f"[stevedore: {omitted} bytes not kept]\n"
    if head and not head.endswith("\n"):
        marker = "\n" + marker
    return shown_output(head) + marker + shown_output(tail)


def one_line(value):
    """``value`` as text fit for one table cell or one message line: whitespace runs as one space,
    any other control character visible (a name or message from the server is shown as a job's output is)."""
    if value is None:
        return MISSING
    text = str(value)
    if any(ch in text for ch in "\r\n\t\v\f"):
        text = " ".join(text.split())
    return shown_output(text)


def json_text(value, indent=None):
    """``value`` as JSON whose every control character is written as an escape (``\\u001b``, ``\\u009b``,
    ``\\u202e``): what it means is unchanged, and no terminal it is printed to acts on it."""
    return CONTROL.sub(lambda match: f"\\u{ord(match.group()):04x}",
                       json.dumps(value, indent=indent, ensure_ascii=False))


def clip(text, width):
    if width and len(text) > width:
        return text[:max(1, width - 1)] + "…"
    return text


def format_time(epoch):
    """Epoch seconds as local ``YYYY-MM-DD HH:MM:SS``."""
    if epoch is None:
        return MISSING
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch))


def format_duration(seconds):
    """``0.42s``, ``12.3s``, ``2m05s``, ``1h02m``."""
    if seconds is None:
        return MISSING
    if seconds < 10:
        return f"{seconds:.2f}s"
    if seconds < 60:
        return f"{seconds:.1f}s"
    whole = int(seconds)
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


def format_counts(counts):
    """``COMPLETE 3  ERROR 1``: the non-zero counts, in the usual order."""
    counts = counts or {}
    parts = [f"{status} {counts[status]}" for status in STATUS_ORDER if counts.get(status)]
    return "  ".join(parts) or MISSING


def finished_count(counts):
    return sum((counts or {}).get(status, 0) for status in st.TERMINAL)


# ---------------------------------------------------------------- layout

def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def format_table(headers, rows, max_width=None):
    """Rows of values under ``headers``, columns aligned, two spaces apart.

    Numeric columns are right-aligned; None shows as ``-``; a cell longer than
    ``max_width`` is clipped.  Returns the lines joined, without a final newline.
    """
    numeric = [any(_is_number(row[i]) for row in rows)
               and all(row[i] is None or _is_number(row[i]) for row in rows)
               for i in range(len(headers))]
    cells = [[clip(one_line(value), max_width) for value in row] for row in rows]
    widths = [max([len(header)] + [len(row[i]) for row in cells]) for i, header in enumerate(headers)]
    lines = []
    for row in [list(headers)] + cells:
        parts = [cell.rjust(width) if numeric[i] else cell.ljust(width)
                 for i, (cell, width) in enumerate(zip(row, widths))]
        lines.append("  ".join(parts).rstrip())
    return "\n".join(lines)


def format_fields(pairs):
    """``label  value`` lines, values aligned; pairs whose value is None are left out."""
    pairs = [(label, value) for label, value in pairs if value is not None]
    width = max((len(label) for label, _ in pairs), default=0)
    return "\n".join(f"{label.ljust(width)}  {one_line(value)}".rstrip() for label, value in pairs)


# ---------------------------------------------------------------- input

def parse_env(items, environ=None):
    """``--env`` values to a dict: ``KEY=VALUE``, or ``KEY`` alone to pass this shell's value."""
    environ = os.environ if environ is None else environ
    env = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not key:
            raise UsageError(f"--env: expected KEY=VALUE, got {item!r}")
        if not sep:
            if key not in environ:
                raise UsageError(f"--env: {key} is not set in this shell; give it as {key}=VALUE")
            value = environ[key]
        env[key] = value
    return env


# ---------------------------------------------------------------- progress

def progress_text(counts, times, elapsed=None, width=24):
    """``[######------------------]  1/4  RUNNING 2  COMPLETE 1  3.20s``."""
    done = finished_count(counts)
    filled = min(width, width * done // times) if times else width
    text = f"[{'#' * filled}{'-' * (width - filled)}]  {done}/{times}  {format_counts(counts)}"
    if elapsed is not None:
        text += f"  {format_duration(elapsed)}"
    return text


class Progress:
    """A run's progress on ``stream``: redrawn in place on a terminal, plain lines otherwise.

    Off a terminal a line is written when the counts change (at most once per
    ``interval`` seconds) and at least once per ``heartbeat`` seconds, so logs
    of long runs stay short but show the run is alive.
    """

    def __init__(self, stream, tty=None, interval=2.0, heartbeat=30.0, clock=time.monotonic):
        self.stream = stream
        self.tty = stream.isatty() if tty is None else tty
        self.interval = interval
        self.heartbeat = heartbeat
        self.clock = clock
        self.started = clock()
        self.drawn = False
        self.last_counts = None
        self.last_line_at = None

    def _columns(self):
        return shutil.get_terminal_size((80, 24)).columns

    def update(self, counts, times):
        now = self.clock()
        text = progress_text(counts, times, now - self.started)
        if self.tty:
            self.stream.write("\r" + clip(text, self._columns() - 1) + "\x1b[K")
            self.drawn = True
        else:
            since = None if self.last_line_at is None else now - self.last_line_at
            changed = counts != self.last_counts
            if since is None or (changed and since >= self.interval) or since >= self.heartbeat:
                self.stream.write(text + "\n")
                self.last_counts, self.last_line_at = dict(counts), now
        self.stream.flush()

    def close(self, counts=None, times=None):
        """Show the final state (when given) and end the line."""
        if counts is not None:
            text = progress_text(counts, times, self.clock() - self.started)
            if self.tty:
                self.stream.write("\r" + clip(text, self._columns() - 1) + "\x1b[K\n")
            elif counts != self.last_counts:
                self.stream.write(text + "\n")
        elif self.tty and self.drawn:
            self.stream.write("\n")
        self.drawn = False
        self.stream.flush()
