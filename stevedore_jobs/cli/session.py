"""What every command shares: the API session, how to print, and how long to wait between polls."""
import os
import sys
import time

from stevedore_jobs.client import DEFAULT_URL, ApiError, Client, Unreachable
from stevedore_jobs.display import format_fields, json_text, one_line, shown_output

POLL_INTERVAL = 0.5
# how long a wait rides out an API that cannot be reached (a gateway restarting)
OUTAGE_GRACE = 60.0
RETRY_AFTER_MAX = 10.0  # the longest a wait loop sleeps on a 429's Retry-After before it asks again
CELL_WIDTH = 60
EXIT_INTERRUPTED = 130


def version():
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("stevedore-jobs")
    except PackageNotFoundError:
        return "dev"


class Cli:
    """What every command needs: the API, how to print, and whether to print JSON."""

    def __init__(self, args):
        self.json = args.json
        self.out = sys.stdout
        self.err = sys.stderr
        url = args.url or os.environ.get("STEVEDORE_URL") or DEFAULT_URL
        token = args.token if args.token is not None else os.environ.get("STEVEDORE_TOKEN")
        self.api = Client(url, token or None, user_agent=f"stevedore-cli/{version()}",
                          team=getattr(args, "acting_team", None) or os.environ.get("STEVEDORE_TEAM") or None)

    def print(self, text=""):
        """A line (or lines) for the user: whatever the server sent in it has its controls shown, not obeyed."""
        print(shown_output(str(text)), file=self.out)

    def note(self, text):
        print(one_line(text), file=self.err, flush=True)

    def print_json(self, value):
        print(json_text(value, indent=2), file=self.out)

    def show(self, value, fields):
        """One object: as JSON, or as the fields fields(value) makes, one a line."""
        if self.json:
            self.print_json(value)
        else:
            self.print(format_fields(fields(value)))

    def write(self, stream, text):
        target = self.err if stream == "stderr" else self.out
        target.write(text)
        target.flush()

    def pause(self):
        """Wait between two polls."""
        time.sleep(POLL_INTERVAL)

    def poll(self, path):
        """GET for wait loops: rides out an unreachable or unavailable API, or one that asks it to slow down
        (429 with Retry-After: the gateway's rate limit), for OUTAGE_GRACE seconds."""
        lost_since = None
        while True:
            try:
                return self.api.get(path)
            except (Unreachable, ApiError) as exc:
                slow_down = isinstance(exc, ApiError) and exc.status == 429 and exc.retry_after is not None
                if isinstance(exc, ApiError) and exc.status not in (502, 503, 504) and not slow_down:
                    raise
                now = time.monotonic()
                if lost_since is None:
                    lost_since = now
                    self.note(f"stevedore: {exc}; retrying for {OUTAGE_GRACE:g}s")
                elif now - lost_since > OUTAGE_GRACE:
                    raise
                time.sleep(min(max(1.0, exc.retry_after), RETRY_AFTER_MAX) if slow_down else 1.0)
