"""What a gateway handler reads from a request besides its path: the JSON body (every string checked),
a list page's query and its ``Link: rel="next"``, the Idempotency-Key header.
"""
import json
from urllib.parse import urlencode

from nameko.exceptions import IncorrectSignature

from services.gateway.auth import caller_of
from shared import pages, validation
from shared.errors import NotFound, Unavailable, ValidationError
from stevedore_jobs.contract.checks import MAX_JSON_DEPTH


def _depth(value, limit):
    """Whether ``value`` nests deeper than ``limit`` (iteratively, so no recursion error)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return False


def json_body(request, free_text=False, opaque=()):
    """The request's JSON object, every string in it checked, or a 400 naming the field (``free_text``:
    tab, LF and CR allowed in every value, as in a GA4GH TES task's scripts and file contents; the values
    of the top-level keys ``opaque`` are left to their model).

    The edge has read the body already, within HTTP_MAX_BODY_BYTES (edge.py).
    """
    raw = request.get_data(cache=False)
    if not raw.strip():
        raise ValidationError("must be a JSON object; the request had no body", "body")
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise ValidationError(f"is not valid JSON ({exc.__class__.__name__}: {exc})"[:300], "body") from exc
    if not isinstance(body, dict):
        raise ValidationError("must be a JSON object", "body")
    if _depth(body, MAX_JSON_DEPTH):
        raise ValidationError(f"nests deeper than {MAX_JSON_DEPTH} levels", "body")
    return validation.check_strings(body, free=free_text, opaque=opaque)


def listing(request, model, fetch, id_field, key_field=None):
    """One page of a list endpoint: ``model`` (the contract's) reads limit, after and the filters from
    the query string; ``fetch(**query, caller=..., paged=True)`` gets a page of the items the caller may
    see, up to limit of them and LIST_PAGE_BYTES of their JSON, and whether more exist (shared/pages.py);
    a ``Link: rel="next"`` says they do, with the last item's ``id_field`` as ``after`` and, for a list
    sorted by another field (``key_field``), that field as ``after_key``: the next page then goes on from
    where that item was, even once it is deleted.  A list of team-owned things (its model has ``team``) is of
    the team the request picks (X-Stevedore-Team) when it names none itself.
    An ``after`` of the right shape that names no listed item is a 404, as an unknown id in a path is."""
    query = validation.query(model, request.args).query()
    if "team" in model.model_fields and not query.get("team"):
        query["team"] = getattr(request, "stevedore_team", None)
    limit = query["limit"]
    try:
        answer = _page(fetch, query, caller_of(request).as_dict())
    except ValidationError as exc:
        if exc.field != "after":
            raise
        raise NotFound("no such item to list after", "after") from None
    items, more = pages.of_reply(answer, limit)
    headers = {}
    if more and items:
        params = request.args.to_dict(flat=False)  # a repeated filter (?label=) kept whole
        params.update(limit=[str(limit)], after=[items[-1][id_field]])
        params.pop("after_key", None)
        if items[-1].get(key_field) is not None:
            params["after_key"] = [str(items[-1][key_field])]  # a float's str gives it back exactly
        headers["Link"] = f'<{request.path}?{urlencode(params, doseq=True)}>; rel="next"'
    return 200, headers, items


def _page(fetch, query, caller):
    """A page bounded in items and bytes: ``{"items", "more"}`` (shared/pages.py); from a service of before (a
    rolling upgrade), which refuses the arguments it does not know, what it can answer."""
    try:
        return fetch(**query, caller=caller, paged=True)
    except IncorrectSignature:
        if "after_key" in query:  # pages from after's item as before (a 404 if it is gone)
            if query.get("after") is None:  # alone it would page from the start: a wrong answer
                raise Unavailable("after_key without after is not served until every service is upgraded",
                                  "after_key")
            return _page(fetch, {name: value for name, value in query.items() if name != "after_key"}, caller)
        return fetch(**{**query, "limit": query["limit"] + 1}, caller=caller)  # the list of limit+1


def idempotency_key(request):
    """The Idempotency-Key header, if any (the contract's rule)."""
    return validation.idempotency_key(request.headers.get("Idempotency-Key"))
