"""docs/api.md's RUN table, made from the contract (tests/unit/test_contract.py keeps the doc current).

    python -m stevedore_jobs.contract.docs docs/api.md    rewrites the table in place
"""
import re
import sys

from stevedore_jobs.contract.run import RunRequest

BEGIN, END = "<!-- run-fields: made by stevedore_jobs/contract/docs.py -->", "<!-- end of run-fields -->"


def _number(value):
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _kind(schema):
    """``integer 1..100000 (`RUN_MAX_TIMES`)`` from a property's schema."""
    options = [option for option in schema.get("anyOf", [schema]) if option.get("type") != "null"]
    kinds = []
    for option in options:
        kind = {"integer": "integer", "number": "number", "string": "string", "array": "list of strings",
                "object": "object of strings"}.get(option.get("type"), option.get("type"))
        items = option.get("items") or {}
        if option.get("type") == "array" and items.get("type") == "integer":
            kind = "list of integers"
            if "minimum" in items and "maximum" in items:
                kind += f" {_number(items['minimum'])}..{_number(items['maximum'])}"
            if "maxItems" in option:
                kind += f" (at most {option['maxItems']})"
        if option.get("type") == "array" and "$ref" in option.get("items", {}):
            kind = "list of objects"
        if option.get("type") == "object" and (option.get("additionalProperties") or {}).get("type") == "array":
            kind = "object of lists of strings"
        if "const" in option:
            kind = f"`\"{option['const']}\"`"
        if "minimum" in option and "maximum" in option:
            kind += f" {_number(option['minimum'])}..{_number(option['maximum'])}"
        kinds.append(kind)
    text = " or ".join(kinds)
    if "x-setting" in schema:
        text += f" (`{schema['x-setting']}`)"
    return text


def run_table(model=RunRequest):
    schema = model.model_json_schema()
    required = set(schema.get("required", ()))
    rows = ["| field | type | meaning |", "|---|---|---|"]
    for name, prop in schema["properties"].items():
        kind = _kind(prop)
        if name in required:
            kind += ", required"
        elif isinstance(prop.get("default"), bool):
            kind += f", default {str(prop['default']).lower()}"
        elif prop.get("default") is not None:
            kind += f", default {prop['default']}"
        else:
            kind += ", or null"
        rows.append(f"| `{name}` | {kind} | {prop.get('description', '')} |")
    return "\n".join([BEGIN, *rows, END])


def with_run_table(text):
    """``text`` (docs/api.md) with its RUN table made anew."""
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.DOTALL)
    if not pattern.search(text):
        raise ValueError(f"no {BEGIN} ... {END} in the text")
    return pattern.sub(lambda _: run_table(), text)


if __name__ == "__main__":
    path = sys.argv[1] if len(sys.argv) > 1 else "docs/api.md"
    with open(path, encoding="utf-8") as fh:
        text = fh.read()
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(with_run_table(text))
