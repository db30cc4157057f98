"""Labels: ``{"project": "vision", "sweep": "lr-2026"}`` on a RUN (its result) and on a task, with the rules
of Kubernetes labels, and the ``?label=`` filters of the lists.

A key is an optional prefix, a DNS subdomain (lower-case letters, digits, ``-`` and ``.``; at most 253
characters) and ``/``, then a name: 1 to 63 characters, ``[A-Za-z0-9]`` at both ends, ``-``, ``_``, ``.``
and those inside.  A value is empty or a name's shape (at most 63 characters).  At most ``LABELS_MAX``
labels, so a label set is at most 64 x (317 + 63) characters.

Reserved (refused with 400 naming ``labels.<key>``): a key whose prefix is ``stevedore``, starts with
``stevedore.`` or ends with ``.stevedore`` (``stevedore/x``, ``stevedore.io/x``, ``user.stevedore/x``), and
a key without prefix whose name starts with ``stevedore.`` (any case): the names Stevedore's own
labels have, or could have.  And ``ga4gh.org/tes`` (``TES_LABEL``): the mark Stevedore puts on the runs and
tasks it makes for GA4GH TES, which no one else's may carry (the UI and CLI show it as TES's).

On a container a user's label ``k=v`` is the Docker label ``user.stevedore/k=v`` (``CONTAINER_PREFIX``).
The runner's own labels, the ones it trusts, are ``stevedore.managed``, ``stevedore.result_id``, ...:
keys that start ``stevedore.`` and hold no ``/``, so no user label can ever be one of them.

A filter (``?label=``, repeatable, all must hold): ``key=value`` (the label is set to that value) or
``key`` (the label is set, to any value, as kubectl's ``-l key``).
"""
import re
from typing import Annotated

from pydantic import Field

from stevedore_jobs.contract.checks import Invalid, shown

LABELS_MAX = 64
FILTERS_MAX = 20
NAME_MAX = 63
PREFIX_MAX = 253
KEY_MAX = PREFIX_MAX + 1 + NAME_MAX
VALUE_MAX = 63
CONTAINER_PREFIX = "user.stevedore/"
TES_LABEL = "ga4gh.org/tes"  # the label that marks what was made for TES: a run ("task"), a task ("image")

_NAME = r"[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
_LABEL = r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?"
_PREFIX = rf"{_LABEL}(?:\.{_LABEL})*"
_NAME_RE = re.compile(_NAME)
_PREFIX_RE = re.compile(_PREFIX)
_STEVEDORE_ANY_CASE = "[Ss][Tt][Ee][Vv][Ee][Dd][Oo][Rr][Ee]"
# the rules above as JSON Schema patterns (the reserved keys left out by a lookahead)
KEY_PATTERN = (f"^(?!stevedore(?:\\.[^/]*)?/|[^/]*\\.stevedore/|{_STEVEDORE_ANY_CASE}\\.[^/]*$|ga4gh\\.org/tes$)"
               f"(?:(?=[^/]{{1,{PREFIX_MAX}}}/){_PREFIX}/)?{_NAME}$")
VALUE_PATTERN = f"^(?:{_NAME})?$"
FILTER_PATTERN = (f"^(?:(?=[^/=]{{1,{PREFIX_MAX}}}/){_PREFIX}/)?{_NAME}(?:=(?:{_NAME})?)?$")


def reserved(prefix, name):
    """Whether a key (its prefix, None without one, and name) is one Stevedore keeps for itself."""
    if prefix is None:
        return name.lower().startswith("stevedore.")
    return prefix == "stevedore" or prefix.startswith("stevedore.") or prefix.endswith(".stevedore")


def check_key(key, field, filtering=False):
    """Raise ``Invalid`` naming ``field`` unless ``key`` is a label key Stevedore lets a user set (a
    filter may name a reserved key: it matches nothing)."""
    if not isinstance(key, str) or not key:
        raise Invalid("a label key must be a non-empty string", field)
    prefix, slash, name = key.rpartition("/")
    prefix = prefix if slash else None
    if prefix is not None and (not prefix or len(prefix) > PREFIX_MAX or not _PREFIX_RE.fullmatch(prefix)):
        raise Invalid(f"the key's prefix must be a DNS subdomain of at most {PREFIX_MAX} characters "
                      "(lower-case letters, digits, '-' and '.'), then '/'", field)
    if len(name) > NAME_MAX or not _NAME_RE.fullmatch(name):
        raise Invalid(f"the key's name must be 1 to {NAME_MAX} characters: letters, digits, '-', '_' "
                      "and '.', a letter or digit first and last", field)
    if not filtering and reserved(prefix, name):
        raise Invalid("is reserved: keys under the stevedore prefix (stevedore/, stevedore.*/, *.stevedore/, "
                      "stevedore.*) are Stevedore's own", field)
    if not filtering and key == TES_LABEL:
        raise Invalid("is reserved: Stevedore's own mark of what was made for GA4GH TES", field)
    return key


def check_value(value, field):
    if not isinstance(value, str):
        raise Invalid("a label value must be a string", field)
    if value and (len(value) > VALUE_MAX or not _NAME_RE.fullmatch(value)):
        raise Invalid(f"a label value must be empty or 1 to {VALUE_MAX} characters: letters, digits, '-', "
                      "'_' and '.', a letter or digit first and last", field)
    return value


def check_labels(value, field="labels"):
    """A body's ``labels``: an object of at most LABELS_MAX valid keys and values; None if not given."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise Invalid('must be an object of string values, e.g. {"project": "vision"}', field)
    if len(value) > LABELS_MAX:
        raise Invalid(f"must have at most {LABELS_MAX} labels", field)
    for key, item in value.items():
        place = f"{field}.{key[:80]}" if isinstance(key, str) and key else field
        check_key(key, place)
        check_value(item, place)
    return dict(value)


def label_schema(schema):
    """The labels map's schema as propertyNames and additionalProperties (the shape clients read)."""
    (_, value), = schema.pop("patternProperties").items()
    schema.update(propertyNames={"pattern": KEY_PATTERN, "maxLength": KEY_MAX}, additionalProperties=value,
                  maxProperties=LABELS_MAX)


LabelMap = Annotated[
    dict[Annotated[str, Field(pattern=KEY_PATTERN)], Annotated[str, Field(max_length=VALUE_MAX,
                                                                         pattern=VALUE_PATTERN)]],
    Field(json_schema_extra=label_schema)]
LABELS_DESCRIPTION = (
    f"at most {LABELS_MAX} labels `{{\"key\": \"value\"}}` with the rules of Kubernetes labels: a key is an "
    f"optional DNS-subdomain prefix and `/`, then a name of 1 to {NAME_MAX} characters (letters, digits, `-`, "
    f"`_`, `.`; a letter or digit first and last); a value is empty or a name's shape. Keys under the "
    f"`stevedore` prefix and `{TES_LABEL}` are reserved (400 naming `labels.<key>`). Lists filter by them "
    "(`?label=key=value`)")


def parse_filters(filters, field="label"):
    """``?label=`` filters (a list of strings) as ([(key, value)] all to hold, [keys] all to be set).

    Two values for one key match nothing (a label has one value), as kubectl's ``-l a=1,a=2`` does."""
    if filters is None:
        return [], []
    if isinstance(filters, str):
        filters = [filters]
    if not isinstance(filters, list):
        raise Invalid("must be key=value or key", field)
    if len(filters) > FILTERS_MAX:
        raise Invalid(f"at most {FILTERS_MAX} label filters", field)
    equal, present = [], []
    for text in filters:
        if not isinstance(text, str) or not text:
            raise Invalid("must be key=value (the label has that value) or key (the label is set)", field)
        key, sign, value = text.partition("=")
        try:
            check_key(key, field, filtering=True)
            if sign:
                check_value(value, field)
        except Invalid as exc:
            raise Invalid(f"{shown(text)}: {exc.message}", field) from None
        if sign:
            equal.append((key, value))
        else:
            present.append(key)
    return equal, present


def container_labels(labels):
    """A run's labels as its containers' Docker labels, each under ``CONTAINER_PREFIX``."""
    return {f"{CONTAINER_PREFIX}{key}": str(value) for key, value in (labels or {}).items()
            if isinstance(key, str)}
