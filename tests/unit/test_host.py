import argparse

import pytest

from stevedore_jobs import host


class ExitedProcess:
    """A spawned service that has already ended, so ``main`` stops at once."""

    returncode = 0

    def poll(self):
        return 0


@pytest.fixture
def spawned(monkeypatch):
    """Runs ``host.main`` without processes or a database: records what it would do."""
    record = {"spawned": [], "migrated": []}
    monkeypatch.setattr(host, "spawn", lambda name, env=None: record["spawned"].append((name, env))
                        or ExitedProcess())
    monkeypatch.setattr(host.migrate, "upgrade", record["migrated"].append)
    monkeypatch.setattr(host, "stop_all", lambda procs, grace: None)
    monkeypatch.setattr(host.signal, "signal", lambda *args: None)
    # main() sets STEVEDORE_TOKENS itself: give it an environment of its own
    monkeypatch.setattr(host.os, "environ", {k: v for k, v in host.os.environ.items()
                                             if k not in ("STEVEDORE_TOKENS", "STEVEDORE_AUTH")})
    return record


def test_plan_lists_every_service_with_numbered_runners_by_default():
    labels = [label for label, _, _ in host.plan(2, 8000)]
    assert labels == ["gateway", "registry", "scheduler", "runner-1", "runner-2"]


def test_plan_gives_each_runner_an_id_of_this_host():
    runners = [env["RUNNER_ID"] for _, service, env in host.plan(2, 8000) if service == "runner"]
    node = host.os.uname().nodename
    assert runners == [f"{node}-runner-1", f"{node}-runner-2"]


def test_plan_keeps_only_the_services_asked_for():
    assert [label for label, _, _ in host.plan(3, 8000, services=("runner",))] == [
        "runner-1", "runner-2", "runner-3"]
    assert [label for label, _, _ in host.plan(3, 8000, services=("gateway", "scheduler"))] == [
        "gateway", "scheduler"]


def test_metrics_ports_count_up_over_the_planned_processes_only():
    ports = {label: env["METRICS_PORT"] for label, _, env in host.plan(2, 8000, 9100, services=("runner",))}
    assert ports == {"runner-1": "9100", "runner-2": "9101"}


@pytest.mark.parametrize("text, expected", [
    ("runner", ("runner",)),
    ("scheduler,gateway", ("gateway", "scheduler")),
    (" registry , runner ", ("registry", "runner")),
])
def test_only_takes_comma_separated_service_names_in_system_order(text, expected):
    assert host.service_list(text) == expected


@pytest.mark.parametrize("text", ["", "runners", "gateway,web", ","])
def test_only_refuses_unknown_or_missing_service_names(text):
    with pytest.raises(argparse.ArgumentTypeError, match="choose one or more of"):
        host.service_list(text)


def test_runner_only_host_neither_migrates_nor_makes_up_a_token(spawned):
    host.main(["--only", "runner", "--runners", "2"])
    assert [name for name, _ in spawned["spawned"]] == ["runner", "runner"]
    assert spawned["migrated"] == []
    assert "STEVEDORE_TOKENS" not in host.os.environ


def test_whole_system_migrates_first_and_makes_up_a_token(spawned, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgresql://postgres@db.example:5432/stevedore")
    host.main(["--runners", "1"])
    assert [name for name, _ in spawned["spawned"]] == ["gateway", "registry", "scheduler", "runner"]
    assert spawned["migrated"] == ["postgresql+psycopg2://postgres@db.example:5432/stevedore"]
    assert host.os.environ["STEVEDORE_TOKENS"]


def test_no_migrate_is_honoured_for_database_services(spawned):
    host.main(["--only", "scheduler", "--no-migrate"])
    assert [name for name, _ in spawned["spawned"]] == ["scheduler"]
    assert spawned["migrated"] == []


def test_runner_only_with_no_runners_is_refused(spawned):
    with pytest.raises(SystemExit):
        host.main(["--only", "runner", "--runners", "0"])
    assert spawned["spawned"] == []
