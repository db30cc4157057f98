"""Quiet, truthful logs: an expected client error is one line, not a traceback.

nameko's container logs every exception an entrypoint raises, with its
traceback, at ERROR (WARNING for ``expected_exceptions``).  A request that
names an unknown id or sends a bad field is the client's mistake, not the
service's failure: ``ClientErrors`` (a logging filter on the console handler,
config.yml LOGGING) turns that record into one INFO line, the echoed input cut
short, or drops it for an entrypoint that logs its requests itself (the
gateway's HTTP entrypoint logs each request once, with its error).
"""
import logging
import re

from shared.errors import Conflict, Forbidden, NotFound, Unavailable, ValidationError

CLIENT_ERRORS = (ValidationError, NotFound, Conflict, Forbidden)
MESSAGE_MAX = 300
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def printable(text, limit=MESSAGE_MAX):
    """``text`` for one log line: control characters escaped, cut to about ``limit`` characters."""
    text = _UNPRINTABLE.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), str(text))
    return text if len(text) <= limit else text[:limit] + f"...(+{len(text) - limit} characters)"


class ClientErrors(logging.Filter):
    """nameko's "error handling worker" records for client errors: one INFO line, or none."""

    def filter(self, record):
        if record.name != "nameko.containers" or not record.exc_info:
            return True
        exc = record.exc_info[1]
        away = isinstance(exc, Unavailable)  # a system away (a service not started yet): said, not dumped
        if not away and not isinstance(exc, CLIENT_ERRORS):
            return True
        if not getattr(exc, "logged", True):  # an answer in a normal exchange (shared/errors.py)
            return False
        worker_ctx = record.args[0] if isinstance(record.args, tuple) and record.args else None
        entrypoint = getattr(worker_ctx, "entrypoint", None)
        if getattr(entrypoint, "logs_requests", False):
            return False
        if away:
            return self._one_line(record, exc, logging.WARNING, "%s could not go on: %s %s")
        return self._one_line(record, exc, logging.INFO, "%s refused: %s %s")

    @staticmethod
    def _one_line(record, exc, level, text):
        worker_ctx = record.args[0] if isinstance(record.args, tuple) and record.args else None
        entrypoint = getattr(worker_ctx, "entrypoint", None)
        where = (f"{worker_ctx.service_name}.{entrypoint.method_name}" if entrypoint is not None
                 else "a worker")
        record.msg, record.args = text, (where, exc.code, printable(exc))
        record.levelno, record.levelname = level, logging.getLevelName(level)
        record.exc_info = record.exc_text = None
        return True
