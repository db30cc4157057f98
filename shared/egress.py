"""Which addresses a request made on a stranger's behalf may reach: the egress rule of webhooks
(services/scheduler/egress.py) and of TES inputs fetched by URL (services/runner/tes_files.py); the
registry hosts images are pulled from build their own rule on its parts (shared/image_sources.py).

Every address a host resolves to must be *global*: loopback, private (RFC 1918,
fc00::/7), link-local (169.254/16 with the clouds' metadata services,
fe80::/10), shared (100.64/10), multicast, unspecified, reserved and
documentation ranges are refused, and so are IPv4-mapped, 6to4, Teredo, NAT64
(64:ff9b::/96), IPv4-translated and IPv4-compatible IPv6 addresses embedding such
an IPv4 address, and NAT64's local-use prefix (64:ff9b:1::/48), unless the operator
allows a network explicitly (``allowed``).
"""
import ipaddress
import socket
from urllib.parse import urlsplit


class Refused(Exception):
    """The callback's host is, or resolves to, an address deliveries may not go to."""


# IPv6 prefixes whose last 32 bits are an IPv4 address a translator or tunnel reaches: NAT64's well-known
# prefix (RFC 6052: an IPv6-only network's NAT64 gateway reaches private IPv4 addresses through it too),
# IPv4-translated (SIIT, RFC 2765: ::ffff:0:a.b.c.d) and the deprecated IPv4-compatible addresses (::/96)
_LAST_32_BITS = tuple(ipaddress.ip_network(net) for net in ("64:ff9b::/96", "::ffff:0:0:0/96", "::/96"))
# NAT64's local-use prefix (RFC 8215): a network's own translator, never a destination out of it
# (Python 3.11 takes it for global)
_LOCAL_USE = ipaddress.ip_network("64:ff9b:1::/48")


def embedded_ipv4(ip):
    """The IPv4 address an IPv6 address carries (mapped, 6to4, Teredo client, NAT64, SIIT,
    IPv4-compatible), if any."""
    if ip.version != 6:
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if any(ip in net for net in _LAST_32_BITS):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def address_allowed(address, allowed=()):
    """Whether a delivery may connect to ``address`` (an IP address, as text or object)."""
    ip = ipaddress.ip_address(address)
    if any(ip.version == net.version and ip in net for net in allowed):
        return True
    inner = embedded_ipv4(ip)
    if inner is not None:
        return address_allowed(inner, allowed)
    return ip.is_global and not ip.is_multicast and ip not in _LOCAL_USE


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


def addresses_of(host, port, getaddrinfo=None):
    """The addresses ``host`` spells out or resolves to (by ``getaddrinfo``: socket's), each once; OSError if
    it does not resolve."""
    ip = literal_address(host)
    if ip is not None:
        return [str(ip)]
    infos = (getaddrinfo or socket.getaddrinfo)(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(info[4][0] for info in infos))


def resolve(host, port, allowed=()):
    """The addresses ``host`` resolves to, every one of them allowed; else Refused / OSError."""
    addresses = addresses_of(host, port)
    refused = [a for a in addresses if not address_allowed(a, allowed)]
    if refused or not addresses:
        raise Refused(f"{host} resolves to {', '.join(refused) or 'nothing'}")
    return addresses
