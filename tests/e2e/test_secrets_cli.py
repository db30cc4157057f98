"""``stevedore secret set|ls|rm`` and ``run --secret-env``: the installed command against the running system.
No command prints a value: not set, not ls, not result show, not an error."""
import json
import os
import subprocess
import sys
import uuid

import pytest

pytestmark = pytest.mark.e2e

COMMAND = os.path.join(os.path.dirname(sys.executable), "stevedore")


@pytest.fixture(scope="module")
def cli(system):
    def run(*args, stdin=None, timeout=120):
        environ = {key: value for key, value in os.environ.items() if not key.startswith("STEVEDORE_")}
        environ.update({"STEVEDORE_URL": system.url, "STEVEDORE_TOKEN": system.token})
        return subprocess.run([COMMAND, *args], env=environ, capture_output=True, text=True, timeout=timeout,
                              input=stdin if stdin is not None else "")

    return run


def test_secret_set_ls_rm_and_a_run_with_secret_env_never_print_the_value(cli, ready_tasks, api, tmp_path):
    token = uuid.uuid4().hex
    name = f"cli-{token[:8]}"
    printed = []

    def ok(*args, stdin=None):
        done = cli(*args, stdin=stdin)
        assert done.returncode == 0, done.stderr
        printed.append(done.stdout + done.stderr)
        return done

    created = ok("secret", "set", name, stdin=f"from-stdin-{token}")
    assert created.stdout.strip() == f"secret {name} created (team default)"
    value_file = tmp_path / "value"
    value_file.write_text(f"from-file-{token}\nline two\n")
    assert ok("secret", "set", name, "--from-file", str(value_file)).stdout.startswith(f"secret {name} rotated")
    listed = ok("secret", "ls")
    assert any(line.split()[0] == name for line in listed.stdout.splitlines()[1:])
    assert name in [s["name"] for s in json.loads(ok("secret", "ls", "--json").stdout)]

    ran = ok("run", ready_tasks["ok"]["name"], "--secret-env", f"API_KEY={name}", "--command",
             "sh -c 'echo \"SECRET=$API_KEY\"'", "--wait", "--json")
    result = json.loads(ran.stdout) if ran.stdout.strip().startswith("{") else None
    result_id = result["result_id"] if result else api.get("/result/?limit=1").json()[0]["result_id"]
    assert api.get(f"/result/{result_id}/").json()["params"]["secret_env"] == {"API_KEY": name}
    ok("result", "show", result_id)
    logs = ok("logs", result_id, "0")
    assert f"from-file-{token}\nline two\n" in logs.stdout  # the job's own output: its business

    refused = cli("run", ready_tasks["ok"]["name"], "--secret-env", "API_KEY=no-such-secret")
    assert refused.returncode == 2 and "secret_env.API_KEY" in refused.stderr
    bad = cli("secret", "set", name, stdin=f"nul-{token}\x00")
    assert bad.returncode == 2 and "NUL" in bad.stderr and token not in bad.stderr
    usage = cli("run", ready_tasks["ok"]["name"], "--secret-env", "API_KEY")
    assert usage.returncode == 2 and "VAR=SECRET" in usage.stderr

    assert ok("secret", "rm", name).stdout.strip() == f"secret {name} removed"
    gone = cli("secret", "rm", name)
    assert gone.returncode != 0 and "not" in gone.stderr.lower()
    # every command's output but the job's own logs: no value
    assert not any(token in text for text in printed[:-2] + printed[-1:])
