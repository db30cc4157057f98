"""CONTAINER_LOG_DRIVER: execution containers get the operator's log driver, else the engine's own."""
from services.runner.dependencies import Executor

POLICY = {"default_memory": None, "pids_limit": 64, "network": "bridge", "grace": 5, "log_limit": 100}
WORK = {"detail_id": "d" * 32, "result_id": "r" * 32, "index": 0, "attempt": 1, "env": {}, "command": None}


def test_the_configured_log_driver_is_asked_for():
    options = Executor(None, {**POLICY, "log_driver": "local"}).container_options(WORK, "h")
    assert options["log_config"] == {"type": "local", "config": {}}


def test_without_a_setting_the_engine_chooses():
    assert "log_config" not in Executor(None, {**POLICY, "log_driver": None}).container_options(WORK, "h")
