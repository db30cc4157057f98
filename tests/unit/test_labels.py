"""The rules of labels (stevedore_jobs/contract/labels.py): keys, values, reserved keys, filters, the served
schema, and the Docker labels a container gets."""
import re

import pytest
from werkzeug.datastructures import MultiDict

from stevedore_jobs.contract import labels, openapi, requests, run
from stevedore_jobs.contract.checks import Invalid
from stevedore_jobs.contract.schedule import schedule_run

GOOD = {"project": "vision", "sweep": "lr-2026", "example.com/team": "ml_platform", "empty": "",
        "a": "b", "x" * 63: "y" * 63, ("d" * 63 + ".") * 3 + "d" * 61 + "/n": "v", "A.b_c-D9": "Z.9_a-b"}


def test_valid_labels_are_kept_in_the_runs_params():
    params = run.run_params({"times": 1, "labels": GOOD})
    assert params["labels"] == GOOD


def test_a_run_without_labels_has_params_as_before():
    assert "labels" not in run.run_params({"times": 1})
    assert "labels" not in run.run_params({"times": 1, "labels": {}})
    assert "labels" not in run.run_params({"times": 1, "labels": None})


@pytest.mark.parametrize("given, field", [
    ({"-a": "v"}, "labels.-a"),
    ({"a-": "v"}, "labels.a-"),
    ({"": "v"}, "labels"),
    ({"x" * 64: "v"}, "labels." + "x" * 64),
    ({"a b": "v"}, "labels.a b"),
    ({"Example.com/a": "v"}, "labels.Example.com/a"),
    ({"/a": "v"}, "labels./a"),
    ({"a/": "v"}, "labels.a/"),
    ({"a/b/c": "v"}, "labels.a/b/c"),
    ({("d" * 63 + ".") * 4 + "d/n": "v"}, "labels." + ("d" * 63 + ".") * 4 + "d/n"),
    ({"a": "x" * 64}, "labels.a"),
    ({"a": "-x"}, "labels.a"),
    ({"a": "x y"}, "labels.a"),
    ({"a": "é"}, "labels.a"),
    ({"a": 1}, "labels.a"),
    ({"a": None}, "labels.a"),
])
def test_a_broken_rule_is_a_400_naming_the_label(given, field):
    with pytest.raises(Invalid) as caught:
        run.run_params({"times": 1, "labels": given})
    assert caught.value.field == field[:len("labels.") + 80]


@pytest.mark.parametrize("key", [
    "stevedore/x", "stevedore.io/x", "stevedore.example.com/managed", "user.stevedore/x", "a.b.stevedore/x",
    "stevedore.managed", "stevedore.result_id", "Stevedore.managed", "STEVEDORE.attempt"])
def test_keys_under_the_stevedore_prefix_are_reserved(key):
    with pytest.raises(Invalid) as caught:
        run.run_params({"times": 1, "labels": {key: "true"}})
    assert caught.value.field == f"labels.{key}"
    assert "reserved" in caught.value.message


@pytest.mark.parametrize("key", ["stevedore", "stevedores.io/x", "notstevedore/x", "stevedore-ci/x",
                                 "my.stevedore.io/x", "x.stevedorex/x", "stevedore_x"])
def test_keys_that_only_look_alike_are_allowed(key):
    assert run.run_params({"times": 1, "labels": {key: "v"}})["labels"] == {key: "v"}


def test_at_most_64_labels():
    assert len(run.run_params({"times": 1, "labels": {f"k{i}": "v" for i in range(64)}})["labels"]) == 64
    with pytest.raises(Invalid) as caught:
        run.run_params({"times": 1, "labels": {f"k{i}": "v" for i in range(65)}})
    assert (caught.value.field, caught.value.message) == ("labels", "must have at most 64 labels")


@pytest.mark.parametrize("given", [[], "a=b", 3, True])
def test_labels_must_be_an_object(given):
    with pytest.raises(Invalid) as caught:
        run.run_params({"times": 1, "labels": given})
    assert caught.value.field == "labels"


def test_a_task_takes_labels_by_the_same_rules():
    task = requests.parse(requests.NewTask, {"repository": "busybox", "labels": {"team": "ml"}})
    assert task.labels == {"team": "ml"}
    with pytest.raises(Invalid) as caught:
        requests.parse(requests.NewTask, {"repository": "busybox", "labels": {"stevedore.io/x": "1"}})
    assert caught.value.field == "labels.stevedore.io/x"


def test_a_schedules_run_takes_labels_and_names_a_bad_one_under_run():
    assert schedule_run({"times": 1, "labels": {"sweep": "nightly"}})["labels"] == {"sweep": "nightly"}
    with pytest.raises(Invalid) as caught:
        schedule_run({"times": 1, "labels": {"stevedore/x": "1"}})
    assert caught.value.field == "run.labels.stevedore/x"


def test_filters_are_key_equals_value_or_a_key_and_combine():
    assert labels.parse_filters(["sweep=lr-2026", "project", "empty=", "a.io/b=c"]) == (
        [("sweep", "lr-2026"), ("empty", ""), ("a.io/b", "c")], ["project"])
    assert labels.parse_filters(None) == ([], [])
    # a reserved key may be named, and a key given two values: they match nothing
    assert labels.parse_filters(["stevedore.managed=true"]) == ([("stevedore.managed", "true")], [])
    assert labels.parse_filters(["a=1", "a=2"]) == ([("a", "1"), ("a", "2")], [])


@pytest.mark.parametrize("filters", [["a==b"], ["=v"], [""], ["a=b c"], ["-a"],
                                     [f"k{i}" for i in range(21)], ["x" * 64]])
def test_a_bad_filter_is_refused_naming_label(filters):
    with pytest.raises(Invalid) as caught:
        requests.query(requests.ResultListQuery, MultiDict([("label", f) for f in filters]))
    assert caught.value.field == "label"


def test_the_list_queries_take_every_label_filter_given():
    args = MultiDict([("label", "a=b"), ("label", "c"), ("status", "QUEUED")])
    assert requests.query(requests.ResultListQuery, args).query()["label"] == ["a=b", "c"]
    assert requests.query(requests.TaskListQuery, MultiDict([("label", "t=1")])).query()["label"] == ["t=1"]
    assert "label" not in requests.query(requests.TaskListQuery, MultiDict()).query()


def test_on_a_container_each_label_is_under_a_prefix_of_its_own():
    assert labels.container_labels({"sweep": "lr", "example.com/team": "ml"}) == {
        "user.stevedore/sweep": "lr", "user.stevedore/example.com/team": "ml"}
    # whatever a key is, it never becomes one of the runner's own (stevedore.<name>, no "/")
    for key in GOOD:
        for docker_key in labels.container_labels({key: "v"}):
            assert not re.fullmatch(r"stevedore\.[^/]*", docker_key)


def test_the_runner_puts_the_runs_labels_on_its_containers_under_the_prefix_and_its_own_win():
    from services.runner.dependencies import Executor

    policy = {"default_memory": None, "pids_limit": 64, "network": "none", "grace": 1, "log_limit": 100}
    work = {"result_id": "r" * 32, "detail_id": "d" * 32, "index": 0, "attempt": 1, "image": "img",
            "labels": {"sweep": "lr", "managed": "false"}}
    options = Executor(client=None, policy=policy).container_options(work, "runner-1")
    assert options["labels"]["user.stevedore/sweep"] == "lr"
    assert options["labels"]["user.stevedore/managed"] == "false"
    assert options["labels"]["stevedore.managed"] == "true"
    assert options["labels"]["stevedore.result_id"] == "r" * 32


def test_the_served_schema_declares_labels_and_the_filter_with_the_rules():
    spec = openapi.spec()
    schemas = spec["components"]["schemas"]
    run_schema = next(s for name, s in schemas.items() if name.startswith("RunRequest"))
    declared = run_schema["properties"]["labels"]["anyOf"][0]
    assert declared["maxProperties"] == 64
    pattern = declared["propertyNames"]["pattern"]
    assert declared["additionalProperties"]["maxLength"] == 63
    for key in GOOD:
        assert re.search(pattern, key), key
    for key in ("stevedore/x", "stevedore.io/x", "user.stevedore/x", "stevedore.managed", "Stevedore.x", "-a",
                "a/b/c", ("d" * 63 + ".") * 4 + "d/n"):
        assert not re.search(pattern, key), key
    parameters = {p["name"]: p for p in spec["paths"]["/result/"]["get"]["parameters"]}
    assert parameters["label"]["schema"]["type"] == "array"
    assert parameters["label"]["schema"]["maxItems"] == 20
    task_parameters = {p["name"] for p in spec["paths"]["/task/"]["get"]["parameters"]}
    assert "label" in task_parameters
