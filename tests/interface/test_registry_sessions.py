"""Web UI sessions kept by the registry on the real PostgreSQL: made, checked, expired, revoked, swept."""
import hashlib
import secrets

import pytest
from sqlalchemy import create_engine, inspect

from services.registry import sessions
from shared.errors import ValidationError
from stevedore_jobs.migrate import ensure_database
from tests.interface.test_output_migration import migrate
from tests.support import call, drop_database


def sha(value):
    return hashlib.sha256(value.encode()).hexdigest()


def test_a_session_is_found_by_its_secret_hash_with_its_token_fingerprint(registry, sql):
    secret, fingerprint = sha(secrets.token_urlsafe(32)), sha("token")
    made = call(registry, "create_session", secret, fingerprint, 3600)
    assert made["expires_at"] - made["created_at"] == pytest.approx(3600)

    found = call(registry, "check_session", secret)
    assert found["token_fingerprint"] == fingerprint
    assert found["expires_at"] == made["expires_at"]
    assert 3500 < found["seconds_left"] <= 3600
    assert call(registry, "check_session", sha("another secret")) is None
    # only the hashes are stored
    assert sql("SELECT id, token_fingerprint FROM ui_sessions").all() == [(secret, fingerprint)]


def test_an_expired_session_is_refused_and_swept(registry, sql):
    old, fresh = sha("old"), sha("fresh")
    call(registry, "create_session", old, sha("token"), 3600)
    call(registry, "create_session", fresh, sha("token"), 3600)
    sql("UPDATE ui_sessions SET expires_at = extract(epoch FROM clock_timestamp()) - 1 WHERE id = :id", id=old)

    assert call(registry, "check_session", old) is None
    assert call(registry, "check_session", fresh) is not None
    call(registry, "sweep_sessions")
    assert sql("SELECT id FROM ui_sessions").scalars().all() == [fresh]


def test_a_revoked_session_is_refused(registry):
    secret = sha("signed out")
    call(registry, "create_session", secret, sha("token"), 3600)
    assert call(registry, "revoke_session", secret) is True
    assert call(registry, "check_session", secret) is None
    assert call(registry, "revoke_session", secret) is False  # signing out twice is no error


def broadcast_heard(container_factory, service_config, event, act):
    """The payloads of the registry's ``event`` that a gateway-like listener (a BROADCAST handler) hears
    while ``act()`` runs."""
    from nameko.events import BROADCAST, event_handler
    from nameko.testing.services import entrypoint_waiter

    heard = []

    class Gateway:
        name = "a_gateway"

        @event_handler("registry", event, handler_type=BROADCAST, reliable_delivery=False)
        def on_event(self, payload):
            heard.append(payload)

    listener = container_factory(Gateway, service_config)
    listener.start()
    with entrypoint_waiter(listener, "on_event"):
        act()
    return heard


def test_a_sign_out_is_broadcast_to_every_gateway(registry, container_factory, service_config):
    secret = sha("to sign out")
    call(registry, "create_session", secret, sha("token"), 3600)
    heard = broadcast_heard(container_factory, service_config, "session_ended",
                            lambda: call(registry, "revoke_session", secret))
    assert heard == [{"secret_hash": secret}]


def test_a_sign_out_is_audited_as_the_sessions_principal_even_once_its_token_is_revoked(registry, sql):
    made = call(registry, "create_token", sha("alices token"), {"name": "alice", "team": "ml", "role": "viewer"})
    at = {"principal": "admin", "role": "admin", "team": "default", "address": "192.0.2.9"}
    mine, configured = sha("alice's cookie"), sha("admin's cookie")
    call(registry, "create_session", mine, sha("alices token"), 3600)
    call(registry, "create_session", configured, sha("a STEVEDORE_TOKENS fingerprint"), 3600)
    call(registry, "revoke_token", made["token_id"])
    assert call(registry, "revoke_session", mine, caller=at) is True
    assert call(registry, "revoke_session", configured, caller=at) is True
    rows = sql("SELECT target_id, principal, role, team, address FROM audit_log WHERE action = 'session.sign_out' "
               "ORDER BY at").all()
    assert [tuple(row) for row in rows] == [(mine[:16], "alice", "viewer", "ml", "192.0.2.9"),
                                           (configured[:16], "admin", "admin", "default", "192.0.2.9")]


def test_the_session_answers_which_token_made_it_so_a_removed_token_ends_it(registry):
    """The gateway compares the fingerprint with its tokens' (tests/e2e/test_sessions.py shows it refused)."""
    by_first, by_second = sha("s1"), sha("s2")
    call(registry, "create_session", by_first, sha("first token"), 3600)
    call(registry, "create_session", by_second, sha("second token"), 3600)
    assert call(registry, "check_session", by_first)["token_fingerprint"] == sha("first token")
    assert call(registry, "check_session", by_second)["token_fingerprint"] == sha("second token")


def test_a_request_delivered_twice_makes_one_session(registry, sql):
    secret = sha("twice")
    first = call(registry, "create_session", secret, sha("token"), 3600)
    assert call(registry, "create_session", secret, sha("token"), 3600) == first
    assert sql("SELECT count(*) FROM ui_sessions").scalar_one() == 1


def test_beyond_the_bound_per_token_the_oldest_session_ends(registry, monkeypatch):
    monkeypatch.setattr(sessions, "PER_TOKEN_MAX", 3)
    made = [sha(f"s{i}") for i in range(5)]
    for secret in made:
        call(registry, "create_session", secret, sha("token"), 3600)
    call(registry, "create_session", sha("other"), sha("other token"), 3600)
    alive = [secret for secret in made if call(registry, "check_session", secret)]
    assert alive == made[2:]
    assert call(registry, "check_session", sha("other")) is not None


@pytest.mark.parametrize("args, field", [
    (("not-a-hash", sha("t"), 60), "secret_hash"),
    ((sha("s"), "x" * 64, 60), "token_fingerprint"),
    ((sha("s"), sha("t"), 0), "seconds"),
    ((sha("s"), sha("t"), "60"), "seconds"),
])
def test_bad_arguments_are_validation_errors_naming_the_field(registry, args, field):
    with pytest.raises(ValidationError) as caught:
        call(registry, "create_session", *args)
    assert caught.value.field == field


def test_a_cookie_that_is_no_hash_is_simply_not_a_session(registry):
    assert call(registry, "check_session", "' OR 1=1 --") is None
    assert call(registry, "check_session", None) is None


def test_migration_0009_adds_the_sessions_table_and_takes_it_away():
    url = f"postgresql+psycopg2://postgres@127.0.0.1:5432/stevedore_test_{secrets.token_hex(5)}"
    ensure_database(url)
    engine = create_engine(url)
    try:
        migrate(url, "0009")
        assert "ui_sessions" in inspect(engine).get_table_names()
        migrate(url, "0008", down=True)
        assert "ui_sessions" not in inspect(engine).get_table_names()
    finally:
        engine.dispose()
        drop_database(url)
