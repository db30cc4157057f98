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
import ipaddress
import socket
from urllib.parse import urlsplit

import eventlet
import urllib3

DELIVERED = "delivered"
REFUSED = "refused"          # the address is not one deliveries may go to: nothing was sent
UNREACHABLE = "unreachable"  # no such host, or no connection could be made
TIMEOUT = "timeout"          # no full answer within the attempt's bound
FAILED = "failed"            # the connection broke, TLS failed, or the answer was not HTTP


class Refused(Exception):
    """The callback's host is, or resolves to, an address deliveries may not go to."""


def _embedded_ipv4(ip):
    """The IPv4 address an IPv6 address carries (mapped, 6to4, Teredo client), if any."""
    if ip.version != 6:
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    return None


def address_allowed(address, allowed=()):
    """Whether a delivery may connect to ``address`` (an IP address, as text or object)."""
    ip = ipaddress.ip_address(address)
    if any(ip.version == net.version and ip in net for net in allowed):
        return True
    inner = _embedded_ipv4(ip)
    if inner is not None:
        return address_allowed(inner, allowed)
    return ip.is_global and not ip.is_multicast


def literal_address(host):
    """The IP address a URL's host spells out, or None for a name.

    Besides the usual forms, the legacy IPv4 spellings that resolvers still
    accept (``0x7f000001``, ``2130706433``, ``127.1``) are addresses too.
    """
    host = host.strip("[]")
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if host and all(ch in "0123456789abcdefxABCDEFX." for ch in host) and host[0].isdigit():
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def check_literal(url, allowed=()):
    """Refuse a ``callback_url`` whose host is a literal address deliveries may not go to.

    Names are resolved at each delivery instead (what a name resolves to can change).
    """
    ip = literal_address(urlsplit(url).hostname or "")
    if ip is not None and not address_allowed(ip, allowed):
        raise Refused(f"{ip} is not an address webhooks may be sent to (loopback, private, link-local, "
                      "multicast and unspecified addresses are refused unless the operator allows "
                      "their network in WEBHOOK_ALLOW_NETWORKS)")


def resolve(host, port, allowed=()):
    """The addresses ``host`` resolves to, every one of them allowed; else Refused / OSError."""
    ip = literal_address(host)
    if ip is not None:
        addresses = [str(ip)]
    else:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        addresses = list(dict.fromkeys(info[4][0] for info in infos))
    refused = [a for a in addresses if not address_allowed(a, allowed)]
    if refused or not addresses:
        raise Refused(f"{host} resolves to {', '.join(refused) or 'nothing'}")
    return addresses


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
