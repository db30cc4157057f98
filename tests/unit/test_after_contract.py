"""A RUN's ``after`` and ``per_index`` as the contract checks them: bounded, each failure naming its place."""
import pytest

from shared import validation
from shared.errors import ValidationError
from stevedore_jobs.contract import openapi, run

A, B = "a" * 32, "b" * 32


def params(**extra):
    return validation.run_params({"operation": "RUN", "times": 2, **extra}, 100000)


def test_after_is_stored_in_params_with_when_defaulting_to_complete():
    got = params(after=[{"result_id": A}, {"result_id": B, "when": "ENDED"}], per_index=True)
    assert got["after"] == [{"result_id": A, "when": "COMPLETE"}, {"result_id": B, "when": "ENDED"}]
    assert got["per_index"] is True


def test_a_run_without_after_has_the_params_it_had_before():
    assert "after" not in params() and "per_index" not in params()
    assert "after" not in params(after=[])


@pytest.mark.parametrize("extra, field, says", [
    ({"after": {"result_id": A}}, "after", "must be a list"),
    ({"after": [A]}, "after[0]", "must be an object"),
    ({"after": [{"result_id": A.upper()}]}, "after[0].result_id", "32 hex digits"),
    ({"after": [{"result_id": A}, {"result_id": 5}]}, "after[1].result_id", "32 hex digits"),
    ({"after": [{"result_id": A, "when": "complete"}]}, "after[0].when", "one of COMPLETE, ENDED"),
    ({"after": [{"result_id": A, "when": None}]}, "after[0].when", "one of COMPLETE, ENDED"),
    ({"after": [{"result_id": A, "index": 1}]}, "after[0]", "accepted are result_id, when"),
    ({"after": [{"result_id": A}, {"result_id": B}, {"result_id": A}]}, "after[2].result_id", "named twice"),
    ({"after": [{"result_id": f"{i:032x}"} for i in range(run.AFTER_MAX + 1)]}, "after", "at most 20"),
    ({"per_index": True}, "per_index", "needs `after`"),
    ({"after": [{"result_id": A}], "per_index": 1}, "per_index", "true or false"),
])
def test_an_after_that_breaks_the_contract_is_refused_naming_its_place(extra, field, says):
    with pytest.raises(ValidationError) as caught:
        params(**extra)
    assert caught.value.field == field
    assert says in caught.value.message


def test_the_served_spec_declares_after_bounded():
    schema = openapi.spec(run.Limits())
    body = schema["components"]["schemas"]["RunRequest"]["properties"]
    after = next(option for option in body["after"]["anyOf"] if option.get("type") == "array")
    assert after["maxItems"] == run.AFTER_MAX
    condition = schema["components"]["schemas"]["After"]
    assert condition["properties"]["result_id"]["pattern"] == "^[0-9a-f]{32}$"
    assert condition["properties"]["when"]["enum"] == ["COMPLETE", "ENDED"]
    assert body["per_index"]["type"] == "boolean"
