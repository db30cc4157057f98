"""Principals and their tokens kept by the registry on the real PostgreSQL (services/registry/principals.py),
and migration 0019's names and keys per team."""
import uuid

import pytest
from sqlalchemy import create_engine, text

from shared.errors import Conflict, Forbidden, NotFound, ValidationError
from stevedore_jobs.migrate import ensure_database
from tests.interface.test_output_migration import migrate
from tests.interface.test_registry_sessions import broadcast_heard, sha
from tests.support import call, drop_database

BOB = {"token_id": None, "principal": "bob", "role": "member", "team": "ml", "kind": "service"}


def test_a_token_resolves_to_its_principal_and_only_its_hash_is_kept(registry, sql):
    made = call(registry, "create_token", sha("secret-1"), {"name": "bob", "team": "ml", "role": "member"},
                caller={"principal": "admin", "role": "admin", "team": "default"})
    assert made["principal"] == "bob" and made["status"] == "ACTIVE" and made["created_by"] == "admin"
    resolved = call(registry, "resolve_token", sha("secret-1"))
    assert {**resolved, "token_id": None, "seconds_left": None} == {**BOB, "seconds_left": None}
    assert resolved["token_id"] == made["token_id"]
    assert call(registry, "resolve_token", sha("secret-2")) is None
    stored = sql("SELECT token_hash FROM api_tokens").scalars().all()
    assert stored == [sha("secret-1")]
    # the registry never writes the scheduler's teams (the gateway checks the team exists first)
    assert sql("SELECT count(*) FROM teams WHERE name = 'ml'").scalar() == 0


def test_only_an_admin_caller_makes_lists_or_revokes_tokens_whatever_the_gateway_let_through(registry, sql):
    made = call(registry, "create_token", sha("kept"), {"name": "bob", "team": "ml", "role": "member"})
    for role in ("operator", "member", "viewer"):
        forged = {"principal": "bob", "role": role, "team": "ml"}
        with pytest.raises(Forbidden):
            call(registry, "create_token", sha(f"forged-{role}"), {"name": f"evil-{role}", "team": "ml",
                                                                     "role": "admin"}, caller=forged)
        with pytest.raises(Forbidden):
            call(registry, "list_tokens", caller=forged)
        with pytest.raises(Forbidden):
            call(registry, "revoke_token", made["token_id"], caller=forged)
    assert sql("SELECT name FROM principals").scalars().all() == ["bob"]
    assert sql("SELECT revoked_at FROM api_tokens").scalars().all() == [None]
    assert sql("SELECT count(*) FROM audit_log WHERE action = 'token.create'").scalar() == 1


def test_the_same_request_delivered_twice_makes_one_token(registry, sql):
    body = {"name": "bob", "team": "ml", "role": "member"}
    first = call(registry, "create_token", sha("x"), body)
    assert call(registry, "create_token", sha("x"), body) == first
    assert sql("SELECT count(*) FROM api_tokens").scalar() == 1


def test_a_principal_keeps_its_team_role_and_kind(registry):
    call(registry, "create_token", sha("a"), {"name": "bob", "team": "ml", "role": "member"})
    for change, field in (({"team": "ops"}, "team"), ({"role": "admin"}, "role"), ({"kind": "person"}, "kind")):
        with pytest.raises(Conflict) as clash:
            call(registry, "create_token", sha(f"b{field}"), {"name": "bob", "team": "ml", "role": "member", **change})
        assert clash.value.field == field
    with pytest.raises(ValidationError):
        call(registry, "create_token", sha("c"), {"name": "admin", "team": "ml", "role": "member"})


def test_revoked_and_expired_tokens_resolve_to_nothing(registry, sql):
    made = call(registry, "create_token", sha("gone"), {"name": "bob", "team": "ml", "role": "member"})
    revoked = call(registry, "revoke_token", made["token_id"])
    assert revoked["status"] == "REVOKED" and call(registry, "revoke_token", made["token_id"]) == revoked
    assert call(registry, "resolve_token", sha("gone")) is None
    call(registry, "create_token", sha("brief"), {"name": "bob", "team": "ml", "role": "member", "expires": 60})
    assert 0 < call(registry, "resolve_token", sha("brief"))["seconds_left"] <= 60
    sql("UPDATE api_tokens SET expires_at = created_at - 1 WHERE token_hash = :h", h=sha("brief"))
    assert call(registry, "resolve_token", sha("brief")) is None
    with pytest.raises(NotFound):
        call(registry, "revoke_token", "f" * 32)
    listed = {t["token_id"]: t["status"] for t in call(registry, "list_tokens")}
    assert sorted(listed.values()) == ["EXPIRED", "REVOKED"]
    assert all("token_hash" not in t and "token" not in t for t in call(registry, "list_tokens"))


def test_a_page_of_tokens_goes_on_from_the_place_of_an_item_gone_since(registry, sql):
    for n in range(3):
        call(registry, "create_token", sha(f"t{n}"), {"name": "bob", "team": "ml", "role": "member"})
    first = call(registry, "list_tokens", limit=1, paged=True)
    assert first["more"] is True
    gone = first["items"][0]
    sql("DELETE FROM api_tokens WHERE id = :id", id=gone["token_id"])
    with pytest.raises(ValidationError) as unknown:
        call(registry, "list_tokens", limit=10, after=gone["token_id"], paged=True)
    assert unknown.value.field == "after"  # as before: the gateway's 404
    rest = call(registry, "list_tokens", limit=10, after=gone["token_id"], after_key=gone["created_at"], paged=True)
    assert len(rest["items"]) == 2 and rest["more"] is False
    assert all((t["created_at"], t["token_id"]) < (gone["created_at"], gone["token_id"]) for t in rest["items"])


def test_a_revocation_is_broadcast(registry, container_factory, service_config):
    made = call(registry, "create_token", sha("b"), {"name": "bob", "team": "ml", "role": "member"})
    heard = broadcast_heard(container_factory, service_config, "token_revoked",
                            lambda: call(registry, "revoke_token", made["token_id"]))
    assert heard == [{"token_id": made["token_id"], "principal": "bob"}]


def test_tasks_of_two_teams_may_share_a_name_and_a_key_but_a_team_may_not_twice(registry):
    alpha = {"principal": "a", "role": "member", "team": "alpha"}
    beta = {"principal": "b", "role": "member", "team": "beta"}
    body = {"repository": "127.0.0.1:1/x:1", "name": "etl"}
    one = call(registry, "create_task", body, "key-1", caller=alpha)
    two = call(registry, "create_task", body, "key-1", caller=beta)
    assert one["task_id"] != two["task_id"] and (one["team"], two["team"]) == ("alpha", "beta")
    assert call(registry, "create_task", body, "key-1", caller=alpha)["task_id"] == one["task_id"]
    with pytest.raises(Conflict):
        call(registry, "create_task", body, caller=alpha)
    with pytest.raises(NotFound):
        call(registry, "get_task", one["task_id"], caller=beta)
    assert [t["task_id"] for t in call(registry, "list_tasks", caller=beta)] == [two["task_id"]]


def test_migration_0019_makes_names_and_keys_unique_per_team_and_goes_back():
    url = f"postgresql+psycopg2://postgres@127.0.0.1:5432/stevedore_test_{uuid.uuid4().hex[:10]}"
    ensure_database(url)
    engine = create_engine(url)
    insert = ("INSERT INTO tasks (id, name, repository, status, created_at, updated_at, team, idempotency_key) "
              "VALUES (:id, 'etl', 'r', 'READY', 0, 0, :team, 'k')")
    try:
        migrate(url, "0018")
        with engine.begin() as conn:
            conn.execute(text(insert), {"id": "a" * 32, "team": "default"})
        migrate(url, "0019")
        with engine.begin() as conn:
            conn.execute(text(insert), {"id": "b" * 32, "team": "ml"})
        with pytest.raises(Exception, match="uq_tasks_team_name"), engine.begin() as conn:
            conn.execute(text(insert), {"id": "c" * 32, "team": "ml"})
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM tasks WHERE team = 'ml'"))
        migrate(url, "0018", down=True)
        with pytest.raises(Exception, match="tasks_name_key|uq_tasks_idempotency_key"), engine.begin() as conn:
            conn.execute(text(insert), {"id": "d" * 32, "team": "ml"})
    finally:
        engine.dispose()
        drop_database(url)
