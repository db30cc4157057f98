"""Credentials validation and sealing; callback_url validation; webhook signature and backoff."""
import hashlib
import hmac
import json

import pytest
from cryptography.fernet import Fernet

from services.registry.credentials import CredentialsUnreadable, Vault, load_keys
from services.scheduler import webhooks
from shared import validation
from shared.errors import Unavailable, ValidationError


def test_credentials_are_optional_and_come_as_a_pair():
    assert validation.registry_credentials({"repository": "a"}) is None
    assert validation.registry_credentials({"username": "u", "password": "p"}) == {
        "username": "u", "password": "p"}


@pytest.mark.parametrize("body, field", [
    ({"username": "u"}, "password"),
    ({"password": "p"}, "username"),
    ({"username": "u", "password": ["p"]}, "password"),
    ({"username": "", "password": "p"}, "username"),
    ({"username": "u", "password": "p" * 1025}, "password"),
    ({"username": "u\n", "password": "p"}, "username"),
])
def test_bad_credentials_name_the_field_and_never_echo_the_value(body, field):
    with pytest.raises(ValidationError) as caught:
        validation.registry_credentials(body)
    assert caught.value.field == field
    assert "pp" not in str(caught.value)


def test_a_sealed_password_is_not_readable_and_opens_with_the_key():
    key = Fernet.generate_key().decode()
    vault = Vault(load_keys(key), "no key")
    token = vault.seal({"username": "alice", "password": "s3cret"})
    assert "s3cret" not in token and "alice" not in token
    assert vault.open(token) == {"username": "alice", "password": "s3cret"}


def test_rotated_keys_open_old_credentials_and_seal_with_the_first():
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    token = Vault(load_keys(old), "").seal({"username": "u", "password": "p"})
    rotated = Vault(load_keys(f"{new},{old}"), "")
    assert rotated.open(token) == {"username": "u", "password": "p"}
    assert Vault(load_keys(new), "").open(rotated.seal({"username": "u", "password": "p"}))["password"] == "p"
    with pytest.raises(CredentialsUnreadable):
        Vault(load_keys(new), "").open(token)


def test_without_a_key_credentials_are_refused_naming_the_setting():
    assert load_keys("") is None
    vault = Vault(None, "the operator must set STEVEDORE_CREDENTIALS_KEY")
    with pytest.raises(Unavailable) as caught:
        vault.seal({"username": "u", "password": "p"})
    assert caught.value.field == "password"
    assert "STEVEDORE_CREDENTIALS_KEY" in str(caught.value)
    with pytest.raises(ValueError):
        load_keys("not-a-fernet-key")


@pytest.mark.parametrize("url", ["http://127.0.0.1:8080/hook", "https://ci.example.com/h?x=1",
                                 "http://[::1]:9000/"])
def test_http_and_https_callback_urls_are_kept(url):
    params = validation.run_params({"times": 1, "callback_url": url}, max_times=10)
    assert params["callback_url"] == url


@pytest.mark.parametrize("url", ["ftp://h/x", "h/x", "https://", "http://u:p@h/", "http://h/#x",
                                 "http://h:0x/", 3.5, "http://h/\x00"])
def test_bad_callback_urls_are_refused_naming_the_field(url):
    with pytest.raises(ValidationError) as caught:
        validation.run_params({"times": 1, "callback_url": url}, max_times=10)
    assert caught.value.field == "callback_url"


def test_the_signature_is_the_hmac_sha256_of_the_raw_body():
    body = json.dumps({"result_id": "r"}).encode()
    expected = hmac.new(b"topsecret", body, hashlib.sha256).hexdigest()
    assert webhooks.signature("topsecret", body) == f"sha256={expected}"
    assert webhooks.signature("other", body) != f"sha256={expected}"


def test_webhook_backoff_doubles_and_is_capped():
    assert [webhooks.backoff(n, 2, 10) for n in (1, 2, 3, 4, 5)] == [2, 4, 8, 10, 10]


def test_a_run_with_callback_url_is_refused_while_no_secret_is_set():
    sender = webhooks.Sender(None, {"secret": "", "attempts": 3, "backoff": 1, "backoff_max": 5,
                                    "timeout": 1})
    sender.require_configured({"times": 1})
    with pytest.raises(ValidationError) as caught:
        sender.require_configured({"times": 1, "callback_url": "http://h/"})
    assert caught.value.field == "callback_url"
    assert "STEVEDORE_WEBHOOK_SECRET" in str(caught.value)
