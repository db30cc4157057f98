"""Where webhooks may go (the address check alone: no test sends traffic off loopback) and how they are signed."""
import time
from datetime import datetime, timedelta, timezone

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from services.scheduler import egress, webhooks
from shared.errors import ValidationError
from shared.settings import SchedulerSettings, SettingError, parse


def allowed_networks(text):
    """WEBHOOK_ALLOW_NETWORKS as the scheduler parses it at start."""
    return parse(SchedulerSettings, {"WEBHOOK_ALLOW_NETWORKS": text}).webhook_allow_networks


REFUSED = [
    "127.0.0.1", "127.8.9.10", "::1",                        # loopback
    "10.1.2.3", "172.16.0.1", "172.31.255.254", "192.168.1.1", "fc00::1", "fd12:3456::1",  # private
    "169.254.169.254", "fe80::1",                            # link-local (cloud metadata)
    "100.64.0.1",                                            # shared address space
    "224.0.0.1", "239.255.255.250", "ff02::1",               # multicast
    "0.0.0.0", "::",                                         # unspecified
    "192.0.2.1", "2001:db8::1", "240.0.0.1", "255.255.255.255",  # documentation, reserved, broadcast
    "::ffff:127.0.0.1", "::ffff:169.254.169.254",            # IPv4-mapped
    "2002:7f00:1::1", "2002:a9fe:a9fe::1",                   # 6to4 of 127.0.0.1 and 169.254.169.254
    # the other IPv6 forms that carry an IPv4 address a translator or tunnel would reach: NAT64's well-known
    # and local-use prefixes (RFC 6052, 8215; an IPv6-only network's NAT64 gateway reaches its private
    # IPv4 ones), IPv4-translated (SIIT, ::ffff:0:0/96) and IPv4-compatible (::/96) addresses
    "64:ff9b::a00:5", "64:ff9b::a9fe:a9fe", "64:ff9b::7f00:1", "64:ff9b:1::a00:5", "64:ff9b:1:2:3::c0a8:101",
    "::ffff:0:a00:5", "::ffff:0:a9fe:a9fe", "::10.0.0.5", "::127.0.0.1", "::169.254.169.254",
]


@pytest.mark.parametrize("address", REFUSED)
def test_an_internal_address_is_refused(address):
    assert egress.address_allowed(address) is False


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8",
                                     "64:ff9b::808:808"])
def test_a_global_address_is_allowed(address):
    assert egress.address_allowed(address) is True


def test_the_operator_allows_named_networks_only():
    allowed = allowed_networks("10.20.0.0/16, 127.0.0.1")
    assert egress.address_allowed("10.20.1.5", allowed)
    assert egress.address_allowed("::ffff:10.20.1.5", allowed)
    assert egress.address_allowed("127.0.0.1", allowed)
    assert not egress.address_allowed("127.0.0.2", allowed)
    assert not egress.address_allowed("10.21.0.1", allowed)
    assert not egress.address_allowed("169.254.169.254", allowed)


def test_a_bad_allowed_network_names_the_setting_and_the_entry():
    with pytest.raises(SettingError, match=r"^WEBHOOK_ALLOW_NETWORKS='.*': '10\.0\.0\.0/33' is not"):
        allowed_networks("127.0.0.0/8,10.0.0.0/33")


@pytest.mark.parametrize("url", ["http://169.254.169.254/latest/meta-data/", "http://[::1]:8080/h",
                                 "https://10.0.0.1/", "http://0.0.0.0:15672/api/",
                                 "http://0x7f000001/", "http://2130706433/", "http://127.1/",
                                 "http://0251.0376.0251.0376/"])
def test_a_literal_internal_address_is_refused_at_submit(url):
    with pytest.raises(egress.Refused):
        egress.check_literal(url)


def test_a_host_name_is_left_to_the_delivery():
    egress.check_literal("https://ci.example.com/hooks")  # resolved at each attempt instead
    egress.check_literal("https://0xdeadbeef.example.com/hooks")
    assert egress.literal_address("8.8.8.8").is_global
    assert egress.literal_address("deadbeef") is None


def sender(secret, **settings):
    return webhooks.Sender(None, {"secret": secret, "attempts": 3, "backoff": 1, "backoff_max": 5,
                                  "timeout": 1, **settings})


def test_a_run_with_callback_url_to_an_internal_address_is_a_400_naming_it():
    with pytest.raises(ValidationError) as caught:
        sender("s").require_configured({"callback_url": "http://169.254.169.254/"})
    assert caught.value.field == "callback_url"
    sender("s", allowed=allowed_networks("169.254.0.0/16")).require_configured(
        {"callback_url": "http://169.254.169.254/"})


@pytest.mark.parametrize("secret, receiver_key", [
    ("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
    ("an older free-text secret", b"an older free-text secret"),
])
def test_a_delivery_verifies_with_the_standard_webhooks_library(secret, receiver_key):
    body = b'{"result_id":"r1","status":"COMPLETE"}'
    headers = sender(secret).headers("r1", body)
    assert Webhook(receiver_key).verify(body, headers) == {"result_id": "r1", "status": "COMPLETE"}
    assert headers["webhook-id"] == webhooks.message_id("r1")
    with pytest.raises(WebhookVerificationError):
        Webhook(receiver_key).verify(body.replace(b"COMPLETE", b"ERROR"), headers)


def test_a_delivery_signed_long_ago_is_rejected_as_stale():
    body = b"{}"
    headers = sender("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").headers("r1", body, at=time.time() - 600)
    with pytest.raises(WebhookVerificationError, match="too old"):
        Webhook("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").verify(body, headers)


def test_every_attempt_of_a_result_has_the_same_id_and_its_own_timestamp():
    first = sender("s").headers("r1", b"{}", at=1000)
    again = sender("s").headers("r1", b"{}", at=1060)
    assert first["webhook-id"] == again["webhook-id"]
    assert (first["webhook-timestamp"], again["webhook-timestamp"]) == ("1000", "1060")


def test_the_older_signature_header_goes_while_the_operator_keeps_it():
    body = b"{}"
    assert sender("s").headers("r1", body)[webhooks.SIGNATURE_HEADER] == webhooks.signature("s", body)
    assert webhooks.SIGNATURE_HEADER not in sender("s", legacy=False).headers("r1", body)
