import socket
import threading
import sqlite3
import sys

import pytest

from stevedore_jobs import entrypoint, host


class FakeClock:
    def __init__(self):
        self.now = 0.0
        self.sleeps = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


def probe_ready_after(failures):
    calls = []

    def probe():
        calls.append(1)
        return "connection refused" if len(calls) <= failures else None

    probe.calls = calls
    return probe


def closed_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def what(waits):
    return [name for name, _ in waits]


@pytest.mark.parametrize("service", ["gateway", "runner"])
def test_gateway_and_runner_wait_for_rabbitmq_only_then_become_nameko_run(service):
    waits, command = entrypoint.plan([service], {"AMQP_URI": "pyamqp://u:p@rabbitmq:5672/"})
    assert what(waits) == ["RabbitMQ"]
    assert command == host.service_command(service)
    assert command[-1] == f"services.{service}.service"


@pytest.mark.parametrize("service", ["registry", "scheduler"])
def test_services_with_tables_also_wait_for_the_migrated_schema(service):
    waits, command = entrypoint.plan([service], {})
    assert what(waits) == ["RabbitMQ", "the database schema"]
    assert command == host.service_command(service)


def test_another_config_file_can_be_named():
    _, command = entrypoint.plan(["runner"], {"STEVEDORE_CONFIG": "/etc/stevedore/config.yml"})
    assert command[command.index("--config") + 1] == "/etc/stevedore/config.yml"


def test_migrate_waits_for_postgresql_then_becomes_stevedore_migrate():
    waits, command = entrypoint.plan(["migrate", "--url", "postgresql://db/x"], {})
    assert what(waits) == ["PostgreSQL"]
    assert command == [sys.executable, "-m", "stevedore_jobs.commands", "migrate", "--url", "postgresql://db/x"]


def test_any_other_command_runs_as_given_without_waiting():
    waits, command = entrypoint.plan(["stevedore-host", "--only", "runner"], {})
    assert waits == []
    assert command == ["stevedore-host", "--only", "runner"]


def test_wait_returns_once_the_probe_finds_nothing_wrong():
    clock, probe = FakeClock(), probe_ready_after(3)
    assert entrypoint.wait_for("RabbitMQ", probe, timeout=60, interval=2, clock=clock, sleep=clock.sleep)
    assert len(probe.calls) == 4
    assert clock.sleeps == [2, 2, 2]


def test_wait_gives_up_when_the_timeout_runs_out():
    clock, probe = FakeClock(), probe_ready_after(1000)
    assert not entrypoint.wait_for("RabbitMQ", probe, timeout=10, interval=2, clock=clock,
                                   sleep=clock.sleep)
    assert clock.now == 10


def test_a_zero_timeout_waits_for_ever():
    clock, probe = FakeClock(), probe_ready_after(5000)
    assert entrypoint.wait_for("RabbitMQ", probe, timeout=0, interval=1, clock=clock, sleep=clock.sleep)
    assert clock.now == 5000


@pytest.mark.parametrize("value, expected", [(None, 300.0), ("", 300.0), ("0", 0.0), ("45", 45.0)])
def test_wait_seconds_come_from_the_environment(value, expected):
    environ = {} if value is None else {"STEVEDORE_WAIT_SECONDS": value}
    assert entrypoint.wait_seconds(environ) == expected


def test_wait_seconds_must_be_a_number():
    with pytest.raises(SystemExit, match="not a number"):
        entrypoint.wait_seconds({"STEVEDORE_WAIT_SECONDS": "soon"})


def test_main_exits_1_when_a_wait_gives_up(monkeypatch):
    monkeypatch.setattr(entrypoint, "plan", lambda argv: ([("RabbitMQ", lambda: "refused")], ["true"]))
    monkeypatch.setattr(entrypoint, "wait_for", lambda what, probe, timeout: False)
    monkeypatch.setattr(entrypoint.os, "execvp", lambda *a: pytest.fail("must not exec"))
    assert entrypoint.main(["gateway"]) == 1


def test_main_execs_the_command_once_everything_is_ready(monkeypatch):
    execs = []
    monkeypatch.setattr(entrypoint, "plan", lambda argv: ([("RabbitMQ", lambda: None)], ["nameko", "run"]))
    monkeypatch.setattr(entrypoint.os, "execvp", lambda file, args: execs.append((file, args)))
    entrypoint.main(["gateway"])
    assert execs == [("nameko", ["nameko", "run"])]


def test_main_without_a_command_prints_usage_and_fails():
    assert entrypoint.main([]) == 2


def test_broker_probe_says_why_when_nothing_listens():
    problem = entrypoint.broker_problem(f"pyamqp://guest:guest@127.0.0.1:{closed_port()}/")
    assert problem and "refused" in problem.lower()


def test_broker_probe_of_a_cluster_tries_each_node_in_turn():
    down = [f"pyamqp://guest:guest@127.0.0.1:{closed_port()}/" for _ in range(2)]
    problem = entrypoint.broker_problem(";".join(down))
    assert problem and "refused" in problem.lower()
    # a third node that takes the connection (and hangs up: no broker here) is reached past the two down
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        third = f"pyamqp://guest:guest@127.0.0.1:{listener.getsockname()[1]}/"
        hang_up = threading.Thread(target=lambda: listener.accept()[0].close(), daemon=True)
        hang_up.start()
        problem = entrypoint.broker_problem(";".join([*down, third]))
        hang_up.join(10)
    assert problem and "refused" not in problem.lower()


def test_server_probe_says_why_when_nothing_listens():
    problem = entrypoint.server_problem(f"postgresql+psycopg2://postgres@127.0.0.1:{closed_port()}/x")
    assert problem and problem.startswith("OperationalError")


def sqlite_url(tmp_path, revision=None):
    path = tmp_path / "schema.db"
    with sqlite3.connect(path) as conn:
        if revision is not None:
            conn.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) PRIMARY KEY)")
            conn.execute("INSERT INTO alembic_version VALUES (?)", (revision,))
    return f"sqlite:///{path}"


def test_schema_probe_waits_for_a_database_never_migrated(tmp_path):
    assert entrypoint.schema_problem(sqlite_url(tmp_path)) == "not migrated yet (run stevedore-migrate)"


def test_schema_probe_waits_for_an_older_schema_to_be_migrated(tmp_path):
    problem = entrypoint.schema_problem(sqlite_url(tmp_path, "0001"))
    assert problem.startswith("schema is at 0001, this image needs ")


def test_schema_probe_is_satisfied_at_the_head_this_code_ships(tmp_path):
    (head,) = entrypoint.schema_heads()
    assert entrypoint.schema_problem(sqlite_url(tmp_path, head)) is None
