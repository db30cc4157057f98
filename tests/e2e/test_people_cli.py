"""The CLI's principal, team, token, secret and audit commands together (issue 18), the installed module against
the running system: a member signs in with ``STEVEDORE_TOKEN``, an admin acts for a team with ``--team`` or
``STEVEDORE_TEAM``, and no output ever holds a secret's value or a token but ``token create``'s one display."""
import json
import os
import subprocess
import sys
import uuid

import pytest

pytestmark = pytest.mark.e2e

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def cli(system):
    printed = []

    def run(*args, token=None, team=None, stdin=""):
        environ = {key: value for key, value in os.environ.items() if not key.startswith("STEVEDORE_")}
        environ.update({"STEVEDORE_URL": system.url, "STEVEDORE_TOKEN": token or system.token, "PYTHONPATH": ROOT})
        if team:
            environ["STEVEDORE_TEAM"] = team
        done = subprocess.run([sys.executable, "-m", "stevedore_jobs.cli", *args], env=environ, capture_output=True,
                              text=True, timeout=120, input=stdin, check=False)
        printed.append((args, done.stdout + done.stderr))
        return done

    run.printed = printed
    return run


def test_a_member_signs_in_and_an_admin_acts_for_its_team_and_nothing_prints_a_secret(cli, system, test_images):
    team, other = f"cli-{uuid.uuid4().hex[:8]}", f"cli-{uuid.uuid4().hex[:8]}"
    for name in (team, other):  # a token's team must exist: made with the CLI too
        assert cli("team", "add", name).returncode == 0
    made = cli("token", "create", "--name", f"cli-m-{uuid.uuid4().hex[:6]}", "--team", team, "--role", "member",
               "--json")
    assert made.returncode == 0, made.stderr
    member = json.loads(made.stdout)
    token = member["token"]
    assert token.startswith("stv_")
    made_other = cli("token", "create", "--name", f"cli-o-{uuid.uuid4().hex[:6]}", "--team", other, "--role",
                     "member", "--json")
    other_token = json.loads(made_other.stdout)["token"]

    me = cli("whoami", "--json", token=token)
    assert me.returncode == 0, me.stderr
    assert json.loads(me.stdout) == {"principal": member["principal"], "role": "member", "team": team,
                                     "all_teams": False, "teams": [team]}
    # a member acts for its own team only: another named by --team or STEVEDORE_TEAM is refused
    refused = cli("--team", other, "whoami", token=token)
    assert refused.returncode == 2 and "X-Stevedore-Team" in refused.stderr, refused.stderr
    assert cli("whoami", token=token, team=other).returncode == 2

    mine = f"mine-{uuid.uuid4().hex[:6]}"
    assert cli("task", "add", test_images["ok"], "--name", mine, "--wait", token=token).returncode == 0
    theirs = f"theirs-{uuid.uuid4().hex[:6]}"
    assert cli("task", "add", test_images["ok"], "--name", theirs, "--wait", token=other_token).returncode == 0
    listed = cli("task", "ls", "--json", token=token)
    assert [t["name"] for t in json.loads(listed.stdout)] == [mine]

    value = f"hush-{uuid.uuid4().hex}"
    secret = f"CLI_{uuid.uuid4().hex[:6]}"
    set_ = cli("secret", "set", secret, token=token, stdin=value)
    assert set_.returncode == 0 and set_.stdout.strip() == f"secret {secret} created (team {team})", set_.stdout
    assert secret in cli("secret", "ls", token=token).stdout
    assert cli("secret", "ls", "--json", token=other_token).stdout.strip() == "[]"  # another team's: not listed
    shown = cli("team", "ls", token=token)
    assert shown.returncode == 0 and team in shown.stdout and other not in shown.stdout
    denied = cli("audit", "ls", token=token)
    assert denied.returncode == 2 and "role: member" in denied.stderr

    # the admin: every team's tasks, or only the team it picks (--team before the command, or STEVEDORE_TEAM)
    every = {t["name"] for t in json.loads(cli("task", "ls", "--json").stdout)}
    assert {mine, theirs} <= every
    for picked in (cli("--team", team, "task", "ls", "--json"), cli("task", "ls", "--json", team=team)):
        assert picked.returncode == 0, picked.stderr
        assert [t["name"] for t in json.loads(picked.stdout)] == [mine]
    assert json.loads(cli("--team", team, "whoami", "--json").stdout)["team"] == team
    assert secret in cli("--team", team, "secret", "ls").stdout
    assert secret not in cli("secret", "ls").stdout  # the admin's own team (default) has no such secret
    audit = cli("audit", "ls", "--action", "secret.set", "--team", team, "--json")
    assert audit.returncode == 0, audit.stderr
    entries = json.loads(audit.stdout)
    assert [(e["principal"], e["target_id"]) for e in entries] == [(member["principal"], secret)]
    table = cli("audit", "ls", "--team", team)
    assert "secret.set" in table.stdout and "task.register" in table.stdout

    revoked = cli("token", "revoke", member["token_id"])
    assert revoked.returncode == 0
    assert cli("whoami", token=token).returncode == 2
    tokens = cli("token", "ls", "--team", team)
    assert member["token_id"] in tokens.stdout and "REVOKED" in tokens.stdout

    # the value was never printed; a token only by the token create that made it
    for args, output in cli.printed:
        assert value not in output, args
        if args[:2] != ("token", "create"):
            assert token not in output and other_token not in output, args
