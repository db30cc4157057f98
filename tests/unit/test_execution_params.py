"""A RUN's items and matrix (stevedore_jobs/contract/items.py), and PATCH /result/{id}/'s body: checked at the
door, each fault named, and the matrix expanded in its documented order."""
import itertools

import pytest

from stevedore_jobs.contract import Limits, items, openapi, requests, run
from stevedore_jobs.contract.change import ResultChange
from stevedore_jobs.contract.checks import Invalid

LIMITS = Limits(10, 2 * 1024 ** 3, 2.0)


def parts(body, limits=LIMITS):
    return run.run_parts(body, limits)


def test_a_matrix_runs_every_combination_keys_in_order_the_last_varying_fastest():
    matrix = {"LR": ["0.1", "0.01"], "SEED": ["1", "2", "3"]}
    params, spread = parts({"matrix": matrix})
    assert params["times"] == 6 and params["per_execution"] == "matrix" and "matrix" not in params
    envs = [own["env"] for own in items.execution_params(spread, 0, 6)]
    assert envs == [{"LR": lr, "SEED": seed} for lr, seed in itertools.product(matrix["LR"], matrix["SEED"])]
    assert envs[1] == {"LR": "0.1", "SEED": "2"} and envs[3] == {"LR": "0.01", "SEED": "1"}
    # a batch of the fan-out gives the same combination for the same index
    assert items.execution_params(spread, 4, 6) == [{"env": envs[4]}, {"env": envs[5]}]


def test_the_order_of_three_keys_matches_itertools_product_at_every_index():
    matrix = {"C": ["x", "y"], "A": ["1", "2", "3"], "B": ["p", "q"]}
    expected = [dict(zip(matrix, values)) for values in itertools.product(*matrix.values())]
    assert [items.combination(matrix, i) for i in range(12)] == expected
    assert list(items.combination(matrix, 7)) == ["C", "A", "B"]  # keys in the order given


def test_items_give_each_execution_its_own_env_and_command_and_times_may_be_left_out():
    params, spread = parts({"env": {"BASE": "1"}, "command": "echo run",
                            "items": [{"env": {"X": "a"}}, {"command": "echo 'own words'"}, {}]})
    assert params["times"] == 3 and params["per_execution"] == "items"
    assert params["command"] == ["echo", "run"] and params["env"] == {"BASE": "1"}
    assert spread == {"items": [{"env": {"X": "a"}}, {"command": ["echo", "own words"]}, {}]}
    assert items.merged(params, spread["items"][0])["env"] == {"BASE": "1", "X": "a"}
    assert items.merged(params, spread["items"][1])["command"] == ["echo", "own words"]
    assert items.merged(params, spread["items"][2]) == params


def test_times_given_with_items_must_equal_their_count():
    assert parts({"times": 2, "items": [{}, {}]})[0]["times"] == 2
    with pytest.raises(Invalid) as caught:
        parts({"times": 3, "matrix": {"A": ["1", "2"]}})
    assert str(caught.value) == "times: must equal the number of executions matrix makes (2), or be left out"


def test_a_plain_run_still_needs_times():
    with pytest.raises(Invalid, match=r"^times: is required \(an integer from 1 to 10\)$"):
        parts({})
    assert parts({"times": 2}) == ({"times": 2, "command": None, "env": {}, "timeout": None, "parallelism": None,
                                    "retries": 0, "memory": None, "cpus": None, "priority": 5}, None)


@pytest.mark.parametrize("body, message", [
    ({"items": [{}], "matrix": {"A": ["1"]}}, "matrix: cannot be given with items; send one of them"),
    ({"items": []}, "items: must have at least 1 item"),
    ({"items": [{}] * 11}, "items: must have at most 10 items (RUN_MAX_TIMES)"),
    ({"items": {"env": {}}}, "items: must be a list of objects with env and/or command"),
    ({"items": [{}, {}, {}, "x"]}, "items[3]: must be an object with env and/or command"),
    ({"items": [{}, {}, {}, {"env": {"FOO": 1}}]}, "items[3].env.FOO: must be a string"),
    ({"items": [{"env": {"STEVEDORE_INDEX": "1"}}]}, "items[0].env: 'STEVEDORE_INDEX': the STEVEDORE_ prefix is reserved"),
    ({"items": [{"env": {"1A": "x"}}]}, "items[0].env: '1A' is not a valid variable name"),
    ({"items": [{"cmd": "x"}]}, "items[0].cmd: unknown field; accepted are env, command"),
    ({"items": [{"command": []}]}, "items[0].command: must be a string or a non-empty list of strings"),
    ({"items": [{"command": "echo 'open"}]}, "items[0].command: cannot be split into words like a shell command "
                                             "(No closing quotation); close its quotes, or send a list of strings"),
    ({"matrix": {}}, "matrix: must have at least 1 key"),
    ({"matrix": {f"K{i}": ["1"] for i in range(17)}}, "matrix: must have at most 16 keys"),
    ({"matrix": {"A": []}}, "matrix.A: must be a non-empty list of strings"),
    ({"matrix": {"A": "1"}}, "matrix.A: must be a non-empty list of strings"),
    ({"matrix": {"SEED": ["1", "2", 3]}}, "matrix.SEED[2]: must be a string"),
    ({"matrix": {"STEVEDORE_X": ["1"]}}, "matrix: 'STEVEDORE_X': the STEVEDORE_ prefix is reserved"),
    ({"matrix": {"A": ["1", "2", "3"], "B": ["1", "2", "3", "4"]}},
     "matrix: makes more than 10 combinations (RUN_MAX_TIMES)"),
])
def test_a_fault_in_items_or_matrix_is_told_naming_where_it_is(body, message):
    with pytest.raises(Invalid) as caught:
        parts(body)
    assert str(caught.value) == message


def test_items_and_matrix_are_bounded_in_bytes_whatever_the_body_limit():
    big = "x" * 60000
    with pytest.raises(Invalid, match=r"^items: must be at most 1048576 bytes as JSON$"):
        parts({"items": [{"env": {"V": big}}] * 20}, Limits(100))
    with pytest.raises(Invalid, match=r"^matrix: must be at most 1048576 bytes as JSON$"):
        parts({"matrix": {"V": [big + str(i) for i in range(20)]}}, Limits(100))


def test_the_served_spec_describes_items_matrix_and_the_patch_body():
    spec = openapi.spec(LIMITS)
    schemas = spec["components"]["schemas"]
    assert schemas["RunRequest"]["properties"]["matrix"]["anyOf"][0]["maxProperties"] == items.MATRIX_KEYS_MAX
    assert set(schemas["Item"]["properties"]) == {"env", "command"}
    assert spec["paths"]["/result/{result_id}/"]["patch"]["requestBody"]["content"]["application/json"][
        "schema"] == {"$ref": "#/components/schemas/ResultChange"}
    assert "params" in schemas["Detail"]["properties"]


@pytest.mark.parametrize("body, changes", [
    ({"parallelism": 8}, {"parallelism": 8}), ({"priority": 9}, {"priority": 9}),
    ({"parallelism": None, "priority": 0}, {"parallelism": None, "priority": 0}), ({"priority": 3.0}, {"priority": 3}),
])
def test_a_patch_body_gives_parallelism_and_or_priority(body, changes):
    assert requests.parse(ResultChange, body).changes() == changes


@pytest.mark.parametrize("body, message", [
    ({}, "body: give parallelism and/or priority"),
    ({"parallelism": 0}, "parallelism: must be an integer from 1 to 100000, or null (no limit)"),
    ({"priority": 10}, "priority: must be an integer from 0 to 9"),
    ({"priority": None}, "priority: must not be null; an integer from 0 to 9"),
    ({"priority": 1, "times": 3}, "times: unknown field; accepted are parallelism, priority"),
])
def test_a_bad_patch_body_is_told_naming_the_field(body, message):
    with pytest.raises(Invalid) as caught:
        requests.parse(ResultChange, body)
    assert str(caught.value) == message
