"""A RUN's per-execution parameters: ``items`` (one entry per execution) or ``matrix`` (the cartesian
product of named lists of values), checked, and expanded to what each execution is given.

Each execution's own parameters are ``{"env": {...}, "command": [...]}`` (either may be absent): its env
is merged over the run's ``env``, its command replaces the run's ``command``.

The matrix's order is fixed, so an index always means the same combination: the keys in the order given,
the last varying fastest (``itertools.product``), i.e. index ``i`` takes, for each key from the last to the
first, value ``i % len(values)`` and goes on with ``i // len(values)``.
"""
import json
import re

from stevedore_jobs.contract.checks import Invalid, shown

ITEM_FIELDS = ("env", "command")
MATRIX_KEYS_MAX = 16
# items or matrix as compact JSON (UTF-8) at most this big: what one RUN may spread over its executions,
# whatever the gateway's HTTP_MAX_BODY_BYTES
PER_EXECUTION_MAX_BYTES = 1024 * 1024
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,254}")


def json_size(value):
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8", "surrogatepass"))


def _at(field, exc):
    """``exc`` (an Invalid of a run field, e.g. ``env``) told under ``field`` (``items[3].env``)."""
    return Invalid(exc.message, field)


def check_env_at(value, field, env_max, value_max):
    """An env object under ``field``: a bad name names ``field``, a bad value ``field.NAME``."""
    if not isinstance(value, dict):
        raise Invalid("must be an object of string values", field)
    if len(value) > env_max:
        raise Invalid(f"must have at most {env_max} variables", field)
    for key, item in value.items():
        if not _NAME.fullmatch(key):
            raise Invalid(f"{shown(key)} is not a valid variable name", field)
        if key.startswith("STEVEDORE_"):
            raise Invalid(f"{shown(key)}: the STEVEDORE_ prefix is reserved", field)
        if not isinstance(item, str):
            raise Invalid("must be a string", f"{field}.{key}")
        if len(item) > value_max:
            raise Invalid(f"must be at most {value_max} characters", f"{field}.{key}")
    return value


def check_items(value, max_times, split_command, env_max, value_max):
    """``items`` as stored: a list of ``{"env"?, "command"?}``, each command a list of words."""
    if not isinstance(value, list):
        raise Invalid("must be a list of objects with env and/or command", "items")
    if not value:
        raise Invalid("must have at least 1 item", "items")
    if len(value) > max_times:
        raise Invalid(f"must have at most {max_times} items (RUN_MAX_TIMES)", "items")
    if json_size(value) > PER_EXECUTION_MAX_BYTES:
        raise Invalid(f"must be at most {PER_EXECUTION_MAX_BYTES} bytes as JSON", "items")
    items = []
    for i, item in enumerate(value):
        where = f"items[{i}]"
        if not isinstance(item, dict):
            raise Invalid("must be an object with env and/or command", where)
        for key in item:
            if key not in ITEM_FIELDS:
                raise Invalid(f"unknown field; accepted are {', '.join(ITEM_FIELDS)}", f"{where}.{key}"[:80])
        own = {}
        if item.get("env") is not None:
            own["env"] = check_env_at(item["env"], f"{where}.env", env_max, value_max)
        if item.get("command") is not None:
            try:
                own["command"] = split_command(item["command"])
            except Invalid as exc:
                raise _at(f"{where}.command", exc) from None
        items.append(own)
    return items


def check_matrix(value, max_times, value_max):
    """``matrix`` as stored: ``{NAME: [values...]}``, its product at most ``max_times``."""
    if not isinstance(value, dict):
        raise Invalid("must be an object of lists of strings", "matrix")
    if not value:
        raise Invalid("must have at least 1 key", "matrix")
    if len(value) > MATRIX_KEYS_MAX:
        raise Invalid(f"must have at most {MATRIX_KEYS_MAX} keys", "matrix")
    if json_size(value) > PER_EXECUTION_MAX_BYTES:
        raise Invalid(f"must be at most {PER_EXECUTION_MAX_BYTES} bytes as JSON", "matrix")
    product = 1
    for key, values in value.items():
        if not _NAME.fullmatch(key):
            raise Invalid(f"{shown(key)} is not a valid variable name", "matrix")
        if key.startswith("STEVEDORE_"):
            raise Invalid(f"{shown(key)}: the STEVEDORE_ prefix is reserved", "matrix")
        if not isinstance(values, list) or not values:
            raise Invalid("must be a non-empty list of strings", f"matrix.{key}")
        for i, item in enumerate(values):
            if not isinstance(item, str):
                raise Invalid("must be a string", f"matrix.{key}[{i}]")
            if len(item) > value_max:
                raise Invalid(f"must be at most {value_max} characters", f"matrix.{key}[{i}]")
        product *= len(values)
        if product > max_times:
            raise Invalid(f"makes more than {max_times} combinations (RUN_MAX_TIMES)", "matrix")
    return value


def count(spread):
    """How many executions ``spread`` (``{"items": [...]}`` or ``{"matrix": {...}}``) makes."""
    if "items" in spread:
        return len(spread["items"])
    total = 1
    for values in spread["matrix"].values():
        total *= len(values)
    return total


def combination(matrix, index):
    """The env of combination ``index`` of ``matrix`` (keys in order, the last varying fastest)."""
    env = {}
    for key in reversed(list(matrix)):
        values = matrix[key]
        index, at = divmod(index, len(values))
        env[key] = values[at]
    return {key: env[key] for key in matrix}


def execution_params(spread, first, last):
    """The own parameters of positions ``first`` to ``last - 1`` of a run spread as ``spread``."""
    if not spread:
        return [None] * (last - first)
    if "items" in spread:
        return [dict(item) for item in spread["items"][first:last]]
    return [{"env": combination(spread["matrix"], i)} for i in range(first, last)]


def merged(params, own):
    """What one execution runs with: the run's ``params`` with its ``own`` env merged over, command replaced."""
    params = dict(params or {})
    if own:
        if own.get("env"):
            params["env"] = {**(params.get("env") or {}), **own["env"]}
        if own.get("command") is not None:
            params["command"] = own["command"]
    return params
