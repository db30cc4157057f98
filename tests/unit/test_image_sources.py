"""Which registries images may be pulled from (shared/image_sources.py): the check alone, on literal addresses
and a resolver stub; no test sends traffic anywhere."""
import socket

import pytest

from services.registry.dependencies import Images, ImportFailed
from shared.egress import Refused
from shared.errors import ValidationError
from shared.image_sources import ImageSources
from shared.images import parse_image_map
from shared.settings import RegistrySettings, SettingError, parse


def registry_settings(**values):
    return parse(RegistrySettings, values)


def resolver(table):
    """A getaddrinfo stub: ``{name: [address, ...]}``; another name does not resolve."""
    def getaddrinfo(host, port, type=0):
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [(socket.AF_INET6 if ":" in a else socket.AF_INET, type, 6, "", (a, port or 0)) for a in table[host]]
    return getaddrinfo


def never_resolved(host, port, type=0):
    raise AssertionError(f"{host} was resolved")


def sources(registries="", private="allow", image_map="", names=None):
    settings = registry_settings(IMAGE_REGISTRIES=registries, IMAGE_REGISTRY_PRIVATE=private, IMAGE_MAP=image_map)
    return ImageSources(settings.image_registries, settings.image_registry_private == "allow", settings.image_map,
                        getaddrinfo=resolver(names or {}) if names is not None else never_resolved)


def refused(check, reference):
    with pytest.raises(Refused) as caught:
        check.check(reference)
    return str(caught.value)


# ------------------------------------------------------------------ the allow-list

@pytest.mark.parametrize("reference", ["busybox", "library/busybox:1.36", "team/app", "docker.io/team/app",
                                       "index.docker.io/library/alpine", "registry-1.docker.io/x/y:2"])
def test_docker_hub_names_are_allowed_iff_the_list_allows_docker_io(reference):
    sources(registries="docker.io", names={}).check(reference)
    message = refused(sources(registries="quay.io", names={}), reference)
    assert message.startswith("registry docker.io (Docker Hub: every name without a registry host) is not one")
    assert "IMAGE_REGISTRIES allows quay.io" in message


@pytest.mark.parametrize("reference", ["a.example.com/x", "a.b.example.com/team/x:1", "A.Example.com/x"])
def test_a_glob_matches_any_host_name_under_it(reference):
    sources(registries="*.example.com", names={}).check(reference)


@pytest.mark.parametrize("reference", ["example.com/x", "a.example.com:5000/x", "a.example.com.evil.org/x",
                                       "evilexample.com/x", "localhost:5000/x"])
def test_a_glob_matches_nothing_else(reference):
    assert "is not one images are pulled from here" in refused(sources(registries="*.example.com", names={}),
                                                                reference)


def test_a_port_is_matched_exactly_or_by_a_star():
    check = sources(registries="registry.example.com:5000, ghcr.io:*", names={})
    check.check("registry.example.com:5000/x")
    check.check("ghcr.io/x")
    check.check("ghcr.io:8443/x")
    for reference in ("registry.example.com/x", "registry.example.com:5001/x"):
        refused(check, reference)


def test_an_empty_list_allows_any_host():
    sources(names={}).check("quay.io/biocontainers/samtools:1.19")


@pytest.mark.parametrize("value", ["docker.io/library", "http://docker.io", "reg istry", "a.b:port", "x:123456",
                                   "[::1", "-bad.example"])
def test_a_pattern_that_does_not_parse_stops_the_registry_naming_it(value):
    with pytest.raises(SettingError, match=r"^IMAGE_REGISTRIES="):
        registry_settings(IMAGE_REGISTRIES=value)


def test_the_defaults_keep_an_installation_working():
    settings = registry_settings()
    assert settings.image_registries == () and settings.image_registry_private == "allow"
    with pytest.raises(SettingError, match=r"^IMAGE_REGISTRY_PRIVATE='deny': must be one of allow or refuse$"):
        registry_settings(IMAGE_REGISTRY_PRIVATE="deny")


# ------------------------------------------------------------------ addresses

ALWAYS_REFUSED = [
    "169.254.169.254/latest", "169.254.170.2/v2", "169.254.1.1:5000/x",   # link-local: cloud metadata
    "[fe80::1]:5000/x", "[fd00:ec2::254]/x", "[fd20:ce::254]/x",           # link-local, AWS and GCP IPv6 metadata
    "100.100.100.200/x", "168.63.129.16/x", "192.0.0.192/x",                # Alibaba, Azure WireServer, Oracle
    "[::ffff:a9fe:a9fe]/x", "[64:ff9b::a9fe:a9fe]/x", "[2002:a9fe:a9fe::1]/x",  # IPv6 forms carrying 169.254.169.254
]


@pytest.mark.parametrize("private", ["allow", "refuse"])
@pytest.mark.parametrize("reference", ALWAYS_REFUSED)
def test_link_local_and_metadata_addresses_are_refused_whatever_the_settings(reference, private):
    assert "link-local or cloud metadata address" in refused(sources(private=private), reference)


PRIVATE = ["127.0.0.1:5000/x", "10.0.0.5:5000/x", "172.16.3.4/x", "192.168.1.10:443/team/x", "100.64.0.1/x",
           "[::1]:80/x", "[fd12:3456::1]:5000/x", "[::ffff:a00:5]/x", "0x7f000001:2375/x", "2130706433:2375/x",
           "127.1:5000/x"]


@pytest.mark.parametrize("reference", PRIVATE)
def test_loopback_and_private_addresses_are_allowed_by_default(reference):
    sources().check(reference)


@pytest.mark.parametrize("reference", PRIVATE)
def test_loopback_and_private_addresses_are_refused_when_the_operator_says_so(reference):
    assert "IMAGE_REGISTRY_PRIVATE=refuse" in refused(sources(private="refuse"), reference)


@pytest.mark.parametrize("private", ["allow", "refuse"])
@pytest.mark.parametrize("reference", ["0.0.0.0:2375/x", "[::]:5000/x", "224.0.0.1/x", "240.0.0.1/x", "192.0.2.1/x"])
def test_other_addresses_no_registry_is_at_are_refused(reference, private):
    assert "not an address images are pulled from" in refused(sources(private=private), reference)


def test_a_global_address_is_allowed():
    sources(private="refuse").check("8.8.8.8:5000/x")
    sources(private="refuse").check("[2606:4700:4700::1111]/x")


# ------------------------------------------------------------------ names

def test_a_name_is_judged_by_every_address_it_resolves_to():
    names = {"metadata.example.org": ["169.254.169.254"], "registry.example.org": ["8.8.8.8", "10.0.0.5"],
             "localhost": ["127.0.0.1", "::1"], "public.example.org": ["8.8.8.8", "2606:4700:4700::1111"]}
    message = refused(sources(names=names), "metadata.example.org/x")
    assert message == ("registry metadata.example.org resolves to 169.254.169.254, a link-local or cloud "
                       "metadata address, never pulled from")
    sources(names=names).check("registry.example.org:5000/x")
    assert "resolves to 10.0.0.5" in refused(sources(private="refuse", names=names), "registry.example.org:5000/x")
    assert "resolves to 127.0.0.1" in refused(sources(private="refuse", names=names), "localhost:2375/x")
    sources(private="refuse", names=names).check("public.example.org/x")


def test_a_name_that_does_not_resolve_is_left_to_the_pull():
    sources(private="refuse", names={}).check("nowhere.example.org/x")


def test_a_name_image_map_sends_to_the_operators_registry_is_not_resolved():
    check = sources(registries="docker.io", private="refuse", image_map="docker.io=127.0.0.1:5000")
    check.check("alpine")  # never_resolved: neither docker.io nor 127.0.0.1 is judged
    assert "is not one images are pulled from" in refused(check, "127.0.0.1:5000/library/alpine")


# ------------------------------------------------------------------ the registry's use of it

def test_the_registry_refuses_at_the_door_naming_the_field():
    images = Images(client=None, pull_timeout=5, sources=sources(registries="docker.io", names={}))
    with pytest.raises(ValidationError) as caught:
        images.check_source("10.0.0.5:5000/team/app", "repository")
    assert caught.value.field == "repository"
    assert caught.value.message.startswith("registry 10.0.0.5:5000 is not one images are pulled from here")


def test_a_pull_is_checked_again_and_ends_the_import_saying_why(monkeypatch):
    images = Images(client=None, pull_timeout=5, image_map=parse_image_map("docker.io=localhost:5000"),
                    sources=sources(registries="quay.io", names={}))
    monkeypatch.setattr(images, "_stream_pull", lambda *args: pytest.fail("pulled"))
    with pytest.raises(ImportFailed, match=r"^not pulled: registry docker.io \(Docker Hub"):
        images.pull("alpine")
