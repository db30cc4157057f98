"""IMAGE_REGISTRIES and IMAGE_REGISTRY_PRIVATE: the registries images may be pulled from.

A task's ``repository`` (and a TES executor's ``image``) is named by whoever registers it, and the
registry's Docker engine, then the runners', connect to the registry host it names: a request made on
a stranger's behalf from inside the network (``169.254.169.254/x``, ``10.0.0.5:5000/x``,
``localhost:2375/x``: a blind server-side request forgery).  So before a pull, the registry host as
Docker reads the name (``busybox`` and ``library/x`` are Docker Hub's, ``docker.io``) must:

1. match ``IMAGE_REGISTRIES``, when set: comma-separated ``host[:port]`` patterns where ``*`` stands for
   any part of a host name (``*.example.com``); a pattern without a port matches the host named
   without one, ``host:*`` any port.  Empty: any host.
2. be, and resolve to, addresses a pull may go to: never link-local (169.254/16, fe80::/10) nor a
   cloud's metadata or platform service (``METADATA``), whatever the settings; loopback, private
   (RFC 1918, fc00::/7) and shared (100.64/10) ones only with ``IMAGE_REGISTRY_PRIVATE=allow`` (the
   default: an internal registry is common, and the allow-list is the control that holds);
   other non-global ones (multicast, unspecified, reserved, documentation) never.  The IPv6 forms that
   carry an IPv4 address (mapped, 6to4, NAT64, ...) are judged as that address (shared/egress.py).

A name that does not resolve here is not refused (the pull fails, or the engine's resolver knows it:
what a name resolves to may change between this check and the pull, which is why the allow-list is
the real control).  A name ``IMAGE_MAP`` rewrites is pulled from the operator's registry, not from the
host it names: its host must match the allow-list, and is not resolved.
"""
import ipaddress
import re

from shared.egress import Refused, address_allowed, addresses_of, embedded_ipv4
from shared.images import HUB, HUB_ALIASES, full_name, map_reference
from stevedore_jobs.contract.checks import parse_reference

PATTERNS_MAX = 100
SHOWN_PATTERNS = 10
# never pulled from: link-local networks, and the metadata and platform services clouds put elsewhere
# (AWS's IPv6 one, GCP's IPv6 one, Alibaba Cloud's, Oracle Cloud's, Azure's WireServer)
LINK_LOCAL = ("169.254.0.0/16", "fe80::/10")
METADATA = ("fd00:ec2::254/128", "fd20:ce::254/128", "100.100.100.200/32", "192.0.0.192/32", "168.63.129.16/32")
NEVER = tuple(ipaddress.ip_network(net) for net in LINK_LOCAL + METADATA)
# loopback, private and shared networks: pulled from with IMAGE_REGISTRY_PRIVATE=allow
PRIVATE = tuple(ipaddress.ip_network(net) for net in (
    "127.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "::1/128", "fc00::/7"))
_PATTERN = re.compile(r"(?P<host>[a-z0-9*](?:[a-z0-9*.-]*[a-z0-9*])?|\[[0-9a-f:*]+\])(?::(?P<port>[0-9]{1,5}|\*))?")


def split_host(host):
    """(host name or address, port or None) of a registry host as a reference writes it."""
    if host.startswith("["):
        inside, _, rest = host[1:].partition("]")
        return f"[{inside}]", rest[1:] or None
    name, sep, port = host.partition(":")
    return name, port if sep else None


def parse_registries(value):
    """The patterns of an ``IMAGE_REGISTRIES`` value: a tuple of (text, host regex, port or "*" or None).

    Raises ValueError naming the pattern that does not parse.
    """
    patterns = {}
    for item in str(value or "").split(","):
        text = item.strip().lower()
        if not text:
            continue
        match = _PATTERN.fullmatch(text)
        if not match:
            raise ValueError(f"{item.strip()!r} is not a registry host[:port] pattern (docker.io, "
                             "registry.example.com:5000, *.example.com)")
        host = HUB if match.group("host") in HUB_ALIASES else match.group("host")
        port = match.group("port")
        regex = re.compile("[^:/]*".join(re.escape(part) for part in host.split("*")))
        patterns[text] = (text, regex, port if port in (None, "*") else str(int(port)))
        if len(patterns) > PATTERNS_MAX:
            raise ValueError(f"at most {PATTERNS_MAX} patterns")
    return tuple(patterns.values())


def registry_host(reference):
    """The registry host ``reference`` is pulled from as Docker reads it (lower-case; Docker Hub's is docker.io)."""
    name, _, _ = parse_reference(reference)
    return full_name(name).split("/")[0].lower()


def listed(host, patterns):
    """Whether ``host`` matches one of ``patterns`` (``parse_registries``'s; none: every host does)."""
    name, port = split_host(host)
    port = None if port is None else str(int(port))
    return not patterns or any(regex.fullmatch(name) and wanted in ("*", port) for _, regex, wanted in patterns)


def refusal(address, private):
    """Why a pull may not go to ``address`` (an IP address), or None if it may."""
    ip = ipaddress.ip_address(address)
    if any(candidate in net for candidate in (ip, embedded_ipv4(ip)) if candidate is not None for net in NEVER):
        return "a link-local or cloud metadata address, never pulled from"
    if address_allowed(ip, PRIVATE if private else ()):
        return None
    if address_allowed(ip, PRIVATE):
        return "a loopback or private address, not pulled from here (IMAGE_REGISTRY_PRIVATE=refuse)"
    return "not an address images are pulled from (multicast, unspecified, reserved or documentation)"


class ImageSources:
    """The rule above, as the registry applies it (``check``)."""

    def __init__(self, patterns=(), private=True, image_map=(), getaddrinfo=None):
        self.patterns = patterns
        self.private = private
        self.image_map = image_map
        self.getaddrinfo = getaddrinfo  # socket's by default; the registry's is bounded in time

    def check(self, reference):
        """Raise ``Refused`` (a message for a 400 naming the reference's field) unless ``reference``
        (valid: ``parse_reference``) may be pulled from the registry it names."""
        host = registry_host(reference)
        if not listed(host, self.patterns):
            shown = ", ".join(text for text, _, _ in self.patterns[:SHOWN_PATTERNS])
            more = f" and {len(self.patterns) - SHOWN_PATTERNS} more" if len(self.patterns) > SHOWN_PATTERNS else ""
            hub = " (Docker Hub: every name without a registry host)" if host == HUB else ""
            raise Refused(f"registry {host}{hub} is not one images are pulled from here: IMAGE_REGISTRIES "
                          f"allows {shown}{more}")
        if map_reference(reference, self.image_map) != reference:
            return  # IMAGE_MAP pulls it from the operator's registry: nothing goes to the host it names
        name, _ = split_host(host)
        try:
            addresses = addresses_of(name, None, self.getaddrinfo)
        except OSError:
            return  # no such name here: nothing to judge (the allow-list holds whatever a resolver says)
        for address in addresses:
            why = refusal(address, self.private)
            if why:
                resolves = "is" if address == name.strip("[]") else f"resolves to {address},"
                raise Refused(f"registry {host} {resolves} {why}")
