"""The gateway's request rate and failed-authentication bounds (services/gateway/throttle.py), on a clock of
the test's own."""
import logging

from services.gateway.throttle import Buckets, Failures, Refused, Throttle, address_key, retry_after
from shared.settings import GatewaySettings, parse


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_a_client_gets_its_burst_at_once_then_the_rate():
    clock = Clock()
    buckets = Buckets(rate=2, burst=5, clock=clock)
    assert [buckets.take("a") for _ in range(5)] == [0] * 5
    assert buckets.take("a") == 0.5            # empty: one token comes in half a second
    clock.now += 0.5
    assert buckets.take("a") == 0              # it came
    assert buckets.take("a") == 0.5
    clock.now += 60                            # a quiet spell refills the bucket to its burst, no more
    assert [buckets.take("a") for _ in range(6)] == [0] * 5 + [0.5]


def test_a_refused_request_takes_no_token():
    clock = Clock()
    buckets = Buckets(rate=1, burst=1, clock=clock)
    assert buckets.take("a") == 0
    for _ in range(100):                       # hammering an empty bucket does not push its refill back
        assert buckets.take("a") == 1.0
    clock.now += 1
    assert buckets.take("a") == 0


def test_one_client_emptying_its_bucket_leaves_the_others_theirs():
    buckets = Buckets(rate=1, burst=2, clock=Clock())
    assert [buckets.take("flood") for _ in range(3)] == [0, 0, 1.0]
    assert [buckets.take("other") for _ in range(2)] == [0, 0]


def test_a_rate_of_zero_is_no_limit():
    buckets = Buckets(rate=0, burst=1, clock=Clock())
    assert all(buckets.take("a") == 0 for _ in range(1000))
    assert not buckets.buckets


def test_the_buckets_keep_at_most_size_clients_the_least_recently_seen_dropped():
    buckets = Buckets(rate=1, burst=1, size=3, clock=Clock())
    for n in range(10000):                     # a client spraying source addresses
        buckets.take(f"10.0.{n // 256}.{n % 256}")
    assert len(buckets.buckets) == 3
    buckets.take("a")
    buckets.take("b")
    buckets.take("a")
    buckets.take("c")
    buckets.take("d")                          # b is the least recently seen: dropped
    assert list(buckets.buckets) == ["a", "c", "d"]


def test_an_address_failing_too_often_is_locked_until_its_oldest_failure_leaves_the_window():
    clock = Clock()
    failures = Failures(limit=3, window=60, clock=clock)
    for step in range(3):
        assert failures.locked("a") == 0
        failures.failed("a")
        clock.now += 10
    assert failures.locked("a") == 30          # the first failure, 30 s ago, leaves the window in 30 s
    assert failures.locked("b") == 0           # another address is not
    clock.now += 30
    assert failures.locked("a") == 0           # one more try ...
    failures.failed("a")
    assert failures.locked("a") == 10          # ... and its second failure is still in the window
    clock.now += 100
    assert failures.locked("a") == 0


def test_at_most_limit_failures_a_window_whatever_the_pace():
    clock = Clock()
    failures = Failures(limit=5, window=60, clock=clock)
    tries = 0
    while clock.now < 1000 + 600:              # a guesser trying whenever it is let
        if not failures.locked("a"):
            failures.failed("a")
            tries += 1
        clock.now += 0.25
    assert tries <= 5 * (600 // 60 + 1)


def test_failures_of_zero_is_no_limit():
    failures = Failures(limit=0, window=60, clock=Clock())
    for _ in range(100):
        failures.failed("a")
    assert failures.locked("a") == 0 and not failures.failures


def test_the_failures_keep_at_most_size_addresses():
    failures = Failures(limit=2, window=60, size=100, clock=Clock())
    for n in range(5000):
        failures.failed(f"2001:db8::{n:x}")
    assert len(failures.failures) == 100
    assert all(len(times) == 1 for times in failures.failures.values())


def test_retry_after_is_whole_seconds_rounded_up_at_least_one():
    assert [retry_after(s) for s in (0.01, 0.5, 1.0, 1.2, 39.99, 40)] == [1, 1, 1, 2, 40, 40]


def test_refusals_are_logged_as_counts_bounded_by_client(caplog):
    refused = Refused()
    for n in range(5000):
        refused.note(f"10.1.{n // 256}.{n % 256}", "rate")
    for _ in range(50):
        refused.note("10.1.0.0", "rate")
    assert len(refused.counts) == 1000
    with caplog.at_level(logging.WARNING, logger="services.gateway.throttle"):
        refused.report()
        refused.report()                       # nothing since: no line
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and "51 from 10.1.0.0 (rate)" in lines[0]


def throttle(**config):
    made = Throttle()
    made.container = type("Container", (), {"config": {k: str(v) for k, v in config.items()},
                                            "service_name": "gateway"})()
    made.setup()
    return made


def test_the_throttle_answers_the_seconds_to_wait_and_a_message_naming_the_field():
    made = throttle(HTTP_RATE_LIMIT=0.5, HTTP_RATE_BURST=1, HTTP_AUTH_FAILURES=1, HTTP_AUTH_WINDOW=30)
    assert made.take(("client", "address", "a"), "a") is None
    seconds, message = made.take(("client", "address", "a"), "a")
    assert seconds == 2 and message.startswith("rate: at most 0.5 requests a second per client, 1 at once")
    assert made.check_address("a") is None
    made.failed("a")
    seconds, message = made.check_address("a")
    assert 29 <= seconds <= 30 and message.startswith("authorization: 1 failed tokens or sign-ins")
    assert made.refused.counts == {("a", "rate"): 1, ("a", "authentication"): 1}


def test_the_settings_default_to_generous_limits_and_zero_turns_them_off():
    settings = parse(GatewaySettings, {})
    assert (settings.http_rate_limit, settings.http_rate_burst) == (100, 400)
    assert (settings.http_auth_failures, settings.http_auth_window) == (20, 60)
    off = parse(GatewaySettings, {"HTTP_RATE_LIMIT": "0", "HTTP_AUTH_FAILURES": "0"})
    assert (off.http_rate_limit, off.http_auth_failures) == (0, 0)


def test_waiting_tells_the_seconds_to_a_token_without_taking_one():
    clock = Clock()
    buckets = Buckets(rate=2, burst=2, clock=clock)
    assert buckets.waiting("a") == 0 and not buckets.buckets   # an unknown client: full, and not stored
    assert [buckets.take("a") for _ in range(2)] == [0, 0]
    assert buckets.waiting("a") == 0.5 and buckets.waiting("a") == 0.5
    clock.now += 0.5
    assert buckets.waiting("a") == 0 and buckets.take("a") == 0
    assert Buckets(rate=0, burst=1, clock=clock).waiting("a") == 0


def test_requests_failing_to_authenticate_without_a_bearer_token_are_a_rate_of_their_address():
    made = throttle(HTTP_RATE_LIMIT=1, HTTP_RATE_BURST=2, HTTP_AUTH_FAILURES=1, HTTP_AUTH_WINDOW=30)
    for _ in range(2):
        assert made.check_unauthenticated("a") is None
        made.unauthenticated("a")
    seconds, message = made.check_unauthenticated("a")
    assert seconds == 1 and message.startswith("rate: at most 1 requests a second per client")
    assert made.check_unauthenticated("b") is None                  # another address: its own
    assert made.take(("client", "address", "a"), "a") is None       # the address's other requests: theirs
    assert made.check_address("a") is None                          # and no lockout of its bearer tokens


def test_an_ipv6_address_counts_as_its_64_so_rotating_addresses_of_one_host_dodges_nothing():
    assert address_key("2001:db8:1:2::1") == address_key("2001:db8:1:2:ffff:1:2:3") == "2001:db8:1:2::/64"
    assert address_key("2001:db8:1:3::1") == "2001:db8:1:3::/64"          # another /64: another client
    assert address_key("::ffff:198.51.100.7") == address_key("198.51.100.7") == "198.51.100.7"
    assert address_key("127.0.0.1") == "127.0.0.1" and address_key(None) is None
    assert address_key("not an address") == "not an address"
    made = throttle(HTTP_RATE_LIMIT=1, HTTP_RATE_BURST=1, HTTP_AUTH_FAILURES=1, HTTP_AUTH_WINDOW=30)
    made.failed(address_key("2001:db8::1"))
    assert made.check_address(address_key("2001:db8::2")) is not None
