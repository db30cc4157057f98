"""stevedore run --matrix / --items and result set: the options as the RUN and PATCH bodies they make."""
import io
from types import SimpleNamespace

import pytest

from stevedore_jobs.cli.params import parallelism, parse_matrix, per_execution, read_items
from stevedore_jobs.cli.parser import build_parser
from stevedore_jobs.cli.results import details_table
from stevedore_jobs.display import UsageError


def test_matrix_options_keep_their_order_and_split_values_at_commas():
    assert list(parse_matrix(["SEED=1,2,3", "LR=0.1,0.01"]).items()) == [("SEED", ["1", "2", "3"]),
                                                                         ("LR", ["0.1", "0.01"])]
    for bad in (["A"], ["=1"], ["A="], ["A=1", "A=2"]):
        with pytest.raises(UsageError, match="^--matrix: "):
            parse_matrix(bad)


def test_times_is_left_out_with_items_or_matrix_unless_given():
    args = build_parser().parse_args(["run", "t", "--matrix", "A=1,2"])
    assert per_execution(args) == {"matrix": {"A": ["1", "2"]}}
    args = build_parser().parse_args(["run", "t", "--matrix", "A=1,2", "--times", "2"])
    assert per_execution(args) == {"matrix": {"A": ["1", "2"]}, "times": 2}
    assert per_execution(build_parser().parse_args(["run", "t"])) == {"times": 1}
    with pytest.raises(UsageError, match="give one of them"):
        per_execution(SimpleNamespace(items="-", matrix=["A=1"], times=None))


def test_items_are_read_as_a_json_list():
    assert read_items("-", io.StringIO('[{"env": {"A": "1"}}, {}]')) == [{"env": {"A": "1"}}, {}]
    with pytest.raises(UsageError, match="is not JSON"):
        read_items("-", io.StringIO("[{"))
    with pytest.raises(UsageError, match="must hold a JSON list"):
        read_items("-", io.StringIO('{"env": {}}'))


def test_result_set_takes_a_number_or_none_for_parallelism():
    assert parallelism("8") == 8 and parallelism("none") is None
    with pytest.raises(UsageError):
        parallelism("many")
    args = build_parser().parse_args(["result", "set", "R", "--parallelism", "8", "--priority", "2"])
    assert (args.result, args.parallelism, args.priority) == ("R", "8", 2)


def test_the_executions_table_shows_each_ones_own_params_only_when_some_have_them():
    detail = dict(index=0, detail_id="d" * 32, status="COMPLETE", exit_code=0, attempt=1, runner="r",
                  start=None, duration=None, reason=None)
    plain = details_table([{**detail, "params": None}])
    assert "PARAMS" not in plain
    table = details_table([{**detail, "params": {"env": {"LR": "0.1"}, "command": ["echo", "x"]}}])
    assert table.splitlines()[0].split()[-1] == "PARAMS"
    assert table.splitlines()[1].endswith('LR=0.1 command=["echo", "x"]')


def test_every_run_field_with_an_option_of_its_own_has_one_in_run():
    from stevedore_jobs.cli.runs import RUN_OPTIONS

    args = build_parser().parse_args(["run", "t"])
    assert [name for name in RUN_OPTIONS if not hasattr(args, name)] == []


@pytest.mark.parametrize("argv", [["run", "t"], ["schedule", "add", "t", "* * * * *"]])
def test_disk_is_an_option_of_run_and_schedule_add(argv):
    assert build_parser().parse_args([*argv, "--disk", "8m"]).disk == "8m"
