import pytest

from shared import validation
from shared.errors import ValidationError


@pytest.mark.parametrize("reference, expected", [
    ("busybox", ("busybox", "latest", None)),
    ("johncosta/redis", ("johncosta/redis", "latest", None)),
    ("localhost:5000/team/app:1.0", ("localhost:5000/team/app", "1.0", None)),
    ("127.0.0.1:5000/a/b/c:v_1.2-x", ("127.0.0.1:5000/a/b/c", "v_1.2-x", None)),
    ("registry.example.com/app@sha256:" + "a" * 64, ("registry.example.com/app", None, "sha256:" + "a" * 64)),
    ("Registry.Example.com/app:1", ("Registry.Example.com/app", "1", None)),
    ("my_app__x/y-z", ("my_app__x/y-z", "latest", None)),
])
def test_valid_references_are_split(reference, expected):
    assert validation.parse_reference(reference) == expected


@pytest.mark.parametrize("reference", [
    "", " ", "UPPER", "UPPER/case", "app:", "app:bad tag", "-app", "app/", "/app", "app//x",
    "app@sha256:short", "a" * 300, 42, None, "app:" + "t" * 129,
])
def test_invalid_references_name_the_repository_field(reference):
    with pytest.raises(ValidationError) as caught:
        validation.parse_reference(reference)
    assert caught.value.field == "repository"
    assert str(caught.value).startswith("repository: ")


def test_new_task_defaults_the_name_to_the_repository():
    assert validation.new_task({"repository": "team/app:1"}) == ("team/app:1", "team/app:1")
    assert validation.new_task({"repository": "team/app", "name": "  app  "}) == ("app", "team/app")


def test_a_repository_too_long_to_be_the_name_needs_one():
    repository = "registry.example.com/" + "a" * 100 + "/" + "b" * 100
    with pytest.raises(ValidationError) as caught:
        validation.new_task({"repository": repository})
    assert caught.value.field == "name"
    assert validation.new_task({"repository": repository, "name": "app"}) == ("app", repository)


@pytest.mark.parametrize("name", ["", "   ", "x" * 201, "tab\there", 7])
def test_bad_names_are_refused(name):
    with pytest.raises(ValidationError) as caught:
        validation.new_task({"repository": "team/app", "name": name})
    assert caught.value.field == "name"


def test_names_may_hold_unicode_and_sql_looking_text():
    name = "données; DROP TABLE tasks;--"
    assert validation.new_task({"repository": "team/app", "name": name}) == (name, "team/app")


def test_run_params_defaults():
    params = validation.run_params({"operation": "RUN", "times": 3}, max_times=10)
    assert params == {"times": 3, "command": None, "env": {}, "timeout": None, "parallelism": None,
                      "retries": 0, "memory": None, "cpus": None, "priority": 5}


def test_run_params_accept_every_documented_parameter():
    body = {"operation": "RUN", "times": 2, "command": ["echo", "hi"], "env": {"A": "1"},
            "timeout": 2.5, "parallelism": 1, "retries": 3, "memory": "256m", "cpus": 0.5, "priority": 9}
    params = validation.run_params(body, max_times=10)
    assert params["command"] == ["echo", "hi"] and params["memory"] == "256m" and params["priority"] == 9


def test_an_integer_written_with_a_zero_fraction_is_that_integer_as_json_schema_says():
    params = validation.run_params({"times": 2.0, "retries": 1.0, "parallelism": 3.0, "priority": 9.0}, 10)
    assert (params["times"], params["retries"], params["parallelism"], params["priority"]) == (2, 1, 3, 9)
    assert all(type(params[key]) is int for key in ("times", "retries", "parallelism", "priority"))


@pytest.mark.parametrize("body", [{"times": 2.5}, {"times": True}, {"times": "2"}, {"times": 1e300},
                                  {"times": 1, "priority": 0.5}])
def test_a_number_with_a_fraction_or_a_boolean_is_not_an_integer(body):
    with pytest.raises(ValidationError) as caught:
        validation.run_params(body, 10)
    assert caught.value.field == next(key for key, value in body.items() if not type(value) is int)


def test_a_command_string_is_split_at_submit_as_the_runner_would():
    params = validation.run_params({"times": 1, "command": "sh -c 'echo \"a b\"; exit 3'"}, max_times=10)
    assert params["command"] == ["sh", "-c", 'echo "a b"; exit 3']


@pytest.mark.parametrize("command", ["echo 'unbalanced", 'sh -c "echo', "trailing\\", " \x0b\t"])
def test_a_command_string_that_cannot_be_split_is_refused_naming_command(command):
    with pytest.raises(ValidationError) as caught:
        validation.run_params({"times": 1, "command": command}, max_times=10)
    assert caught.value.field == "command"


@pytest.mark.parametrize("body, field", [
    ({}, "times"),
    ({"times": 11}, "times"),
    ({"times": 1, "env": {"STEVEDORE_RESULT_ID": "x"}}, "env"),
    ({"times": 1, "retries": 101}, "retries"),
    ({"times": 1, "cpus": 0}, "cpus"),
    ({"times": 1, "parallelism": 0}, "parallelism"),
    ({"times": 1, "memory": "1k"}, "memory"),
    ({"times": 1, "command": ["ok", 3]}, "command"),
    ({"times": 1, "unknown": True}, "unknown"),
])
def test_run_params_name_the_wrong_field(body, field):
    with pytest.raises(ValidationError) as caught:
        validation.run_params(body, max_times=10)
    assert caught.value.field == field


@pytest.mark.parametrize("text, size", [("256m", 256 * 1024 ** 2), ("1g", 1024 ** 3), ("8388608", 8388608)])
def test_memory_sizes(text, size):
    assert validation.memory_bytes(text) == size


def test_operation_must_be_known():
    assert validation.operation({"operation": "RUN"}, ("RUN",)) == "RUN"
    with pytest.raises(ValidationError, match="operation: 'STOP' is not supported"):
        validation.operation({"operation": "STOP"}, ("RUN",))


@pytest.mark.parametrize("body, field", [
    ({"repository": "team/app\n"}, "repository"),
    ({"repository": "team/app", "name": "a\x7f"}, "name"),
    ({"repository": "team/app", "name": "\ud800"}, "name"),
    ({"repository": "team/app", "extra": {"deep": ["ok", "bad\x00"]}}, "extra"),
    ({"repository": "team/app", "bad\x01key": 1}, "body"),
])
def test_every_string_of_a_task_body_is_checked(body, field):
    with pytest.raises(ValidationError) as caught:
        validation.new_task(body)
    assert caught.value.field == field


@pytest.mark.parametrize("body, field", [
    ({"times": None}, "times"),
    ({"times": 1, "retries": None}, "retries"),
    ({"times": 1, "priority": None}, "priority"),
    ({"times": 1, "env": {"A": "\x00"}}, "env"),
    ({"times": 1, "env": {"A\n": "x"}}, "env"),
    ({"times": 1, "command": ["a", "\x1b[2J"]}, "command"),
    ({"times": 1, "memory": "1g\n"}, "memory"),
    ({"times": 1, "x" * 1000: 1}, "x" * validation.SHOWN_MAX),
])
def test_run_refuses_bad_strings_and_null_where_a_value_is_required(body, field):
    with pytest.raises(ValidationError) as caught:
        validation.run_params(body, 100)
    assert caught.value.field == field


def test_nullable_run_fields_take_null_as_not_given_and_free_text_keeps_newlines():
    params = validation.run_params({"times": 1, "timeout": None, "parallelism": None, "command": None,
                                    "env": {"PEM": "a\nb\r\n\tc"}}, 100)
    assert params["timeout"] is None and params["parallelism"] is None and params["retries"] == 0
    assert params["env"] == {"PEM": "a\nb\r\n\tc"}


def test_patterns_match_whole_strings():
    with pytest.raises(ValidationError):
        validation.run_params({"times": 1, "env": {"A\n": "x"}}, 10)
    with pytest.raises(ValidationError):
        validation.memory_bytes("256m\n")
    with pytest.raises(ValidationError):
        validation.parse_reference("busybox\n")


def test_echoed_input_is_cut_short():
    with pytest.raises(ValidationError) as caught:
        validation.operation({"operation": "X" * 10000}, ("RUN",))
    assert len(str(caught.value)) < 200


@pytest.mark.parametrize("reference", ["app:t\u00e9t\u00e9", "app:\u0661"])
def test_a_tag_is_ascii(reference):
    with pytest.raises(ValidationError):
        validation.parse_reference(reference)


def test_a_memory_size_of_thousands_of_digits_is_refused_not_a_crash():
    with pytest.raises(ValidationError) as caught:
        validation.memory_bytes("9" * 5000 + "m")
    assert caught.value.field == "memory"
