"""Where a webhook may go, and one bounded attempt to get it there.

A ``callback_url`` is named by whoever submits a RUN, so a delivery is a
request the scheduler makes on a stranger's behalf from inside the network.
Before any connection the host is resolved and every address it resolves to
must be *global*: loopback, private (RFC 1918, fc00::/7), link-local
(169.254/16 with the clouds' metadata services, fe80::/10), shared (100.64/10),
multicast, unspecified, reserved and documentation ranges are refused, and so
are IPv4-mapped, 6to4 and Teredo IPv6 addresses embedding such an IPv4
address, unless the operator allows a network explicitly
(``WEBHOOK_ALLOW_NETWORKS``, e.g. ``10.20.0.0/16,127.0.0.1/32``).

The attempt then connects to the very address that was checked (no second
lookup a resolver could answer differently), sends the URL's host in the
``Host`` header and, for https, as the TLS server name, verifying the
certificate against it.  It ignores proxy variables, follows no redirect,
is bounded in total by ``timeout`` seconds (a receiver trickling a byte at a
time cannot hold it longer), and reads nothing of the response but its status
line and headers.

What is recorded is a coarse outcome, so the deliveries shown on a result say
nothing more about a receiver than whether it took the delivery.
"""
from urllib.parse import urlsplit

import eventlet
import urllib3

from shared.egress import Refused, address_allowed, check_literal, literal_address, resolve  # noqa: F401

DELIVERED = "delivered"
REFUSED = "refused"          # the address is not one deliveries may go to: nothing was sent
UNREACHABLE = "unreachable"  # no such host, or no connection could be made
TIMEOUT = "timeout"          # no full answer within the attempt's bound
FAILED = "failed"            # the connection broke, TLS failed, or the answer was not HTTP


def post(url, body, headers, allowed=(), timeout=10.0):
    """One delivery attempt: ``{"outcome": ...}``, one of the outcomes above or ``http Nxx``."""
    parts = urlsplit(url)
    host, https = parts.hostname, parts.scheme == "https"
    port = parts.port or (443 if https else 80)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    headers = {**headers, "Host": parts.netloc}
    try:
        with eventlet.Timeout(timeout):
            try:
                addresses = resolve(host, port, allowed)
            except Refused:
                return {"outcome": REFUSED}
            except OSError:
                return {"outcome": UNREACHABLE}
            last = UNREACHABLE
            for address in addresses:
                try:
                    return _post_to(address, port, https, host, target, body, headers, timeout)
                except urllib3.exceptions.NewConnectionError:
                    last = UNREACHABLE
                except (urllib3.exceptions.ConnectTimeoutError, urllib3.exceptions.ReadTimeoutError):
                    return {"outcome": TIMEOUT}
                except (urllib3.exceptions.HTTPError, OSError):
                    return {"outcome": FAILED}
            return {"outcome": last}
    except eventlet.Timeout:
        return {"outcome": TIMEOUT}


def _post_to(address, port, https, host, target, body, headers, timeout):
    options = {"timeout": urllib3.Timeout(connect=timeout, read=timeout), "retries": False, "maxsize": 1}
    if https:
        pool = urllib3.HTTPSConnectionPool(address, port, cert_reqs="CERT_REQUIRED",
                                           server_hostname=host, assert_hostname=host, **options)
    else:
        pool = urllib3.HTTPConnectionPool(address, port, **options)
    try:
        response = pool.urlopen("POST", target, body=body, headers=headers, redirect=False,
                                preload_content=False, assert_same_host=False)
        code = response.status
        response.close()  # the body, however large or slow, is never read
    finally:
        pool.close()
    return {"outcome": DELIVERED if 200 <= code < 300 else f"http {code // 100}xx"}
