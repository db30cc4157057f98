"""A page of a list bounded in bytes as well as in items (LIST_PAGE_BYTES): what one RPC reply holds.

Each stored item is bounded (a schedule's ``run`` or a result's ``params`` up to
about 1 MiB, a TES task's logs up to 20 executors' stdout and stderr), but a page
of 1000 of them is not: ~1 GB in one RPC reply, one HTTP answer and the memory of
both services.  So the service that builds a page (scheduler, registry) adds items
while the page's JSON stays within ``max_bytes``, and says that more exist when
it stops early.  The first item is always given, whatever its size (a page that
could hold nothing would never move on); it is bounded by what the door let in.

An item is measured as compact JSON with every non-ASCII character escaped
(``\\uXXXX``): at least its bytes in the HTTP answer (UTF-8) and about its bytes
in the RPC message (kombu's JSON escapes them too).  A page ``[a,b]`` counts its
brackets and commas.

Reply shapes: a list RPC called with ``paged=True`` (this release's gateway) answers
``{"items": [...], "more": bool}``, at most ``limit`` items within the bound, ``more``
saying whether any were left out.  Called without it (a gateway of before: it asks
``limit+1`` and reads ``more`` from the count), it answers the plain list of before,
cut by items only, so an old gateway over a new service lists as before.

Where a page goes on: ``after`` names the last item of the page before, and its row is looked up for its place
(a 404 when none: an unknown id).  The item may have been deleted since (retention, DELETE), so the gateway's
``Link: rel="next"`` also gives that item's sort key (``after_key``: its time, or a name); with it the place is
(``after_key``, ``after``) itself, looked up nowhere, and the next page goes on from where the item was.
"""
import json
import math
from itertools import islice

from shared.errors import ValidationError

DEFAULT_BYTES = 4 * 1024 * 1024  # LIST_PAGE_BYTES's default (shared/settings.py)
# rows of a list of big items read from PostgreSQL at a time (a server-side cursor: ``yield_per``), so that
# a page cut after a few items never held the rest of its limit in memory
ROWS_AT_ONCE = 20


def item_bytes(item):
    """``item``'s size as a page counts it: compact JSON, non-ASCII escaped."""
    return len(json.dumps(item, separators=(",", ":"), ensure_ascii=True, default=str))


def cut(items, limit, max_bytes):
    """``(page, more)``: the first of ``items`` (any iterable, read lazily and only as far as needed),
    at most ``limit`` of them, while ``[item,item,...]`` stays within ``max_bytes`` (always at least
    one); ``more``: whether ``items`` held another after them."""
    page, size = [], 1  # "[" and "]", less the first item's comma
    for item in islice(items, max(int(limit), 1) + 1):
        if len(page) >= limit:
            return page, True
        size += item_bytes(item) + 1
        if page and size > max_bytes:
            return page, True
        page.append(item)
    return page, False


def cursor(after, after_key):
    """What a list pages from: ``after`` (an id, or None), or ``(after, after_key)`` when the key is given
    (``after`` None there: from that key on, whatever item had it)."""
    if after_key is None:
        return after
    if after is not None and (not isinstance(after, str) or len(after) > 200):
        raise ValidationError("must be the id of the item the page starts after", "after")
    if isinstance(after_key, bool) or not isinstance(after_key, (int, float, str)) \
            or (isinstance(after_key, float) and not math.isfinite(after_key)) \
            or (isinstance(after_key, str) and len(after_key) > 200):
        raise ValidationError("must be the sort key of the item named by after (the Link header's)", "after_key")
    return after, after_key


def reply(items, limit, max_bytes, paged):
    """What a list RPC answers (see the module's text): with ``paged``, ``items`` holds up to ``limit``+1
    items (the one past the page says more exist); without, up to ``limit`` (the old gateway's ``limit+1``),
    all of them listed."""
    if not paged:
        return list(items)
    page, more = cut(items, limit, max_bytes)
    return {"items": page, "more": more}


def fetch_limit(limit, paged):
    """How many rows a list RPC reads for a page of ``limit``: one more with ``paged``, to know whether
    more exist (a gateway of before asks ``limit+1`` itself)."""
    return limit + 1 if paged else limit


def of_reply(answer, limit):
    """``(items, more)`` of a list RPC's answer: this release's ``{"items", "more"}``, or a service of before's
    plain list of up to ``limit+1`` (more: the one past ``limit``)."""
    if isinstance(answer, dict):
        return answer["items"], bool(answer["more"])
    return answer[:limit], len(answer) > limit
