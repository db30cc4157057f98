"""IMAGE_MAP (shared/images.py): public image names mapped to the operator's registry."""
import pytest

from services.registry.dependencies import ImportFailed, Images
from shared.images import full_name, map_reference, parse_image_map
from shared.settings import RegistrySettings, SettingError, parse

DIGEST = "sha256:" + "ab" * 32
HUB = parse_image_map("docker.io=localhost:5000")


@pytest.mark.parametrize("name, full", [
    ("alpine", "docker.io/library/alpine"),
    ("team/app", "docker.io/team/app"),
    ("index.docker.io/library/busybox", "docker.io/library/busybox"),
    ("localhost:5000/a/b", "localhost:5000/a/b"),
    ("quay.io/biocontainers/samtools", "quay.io/biocontainers/samtools"),
])
def test_a_name_is_written_out_as_docker_reads_it(name, full):
    assert full_name(name) == full


@pytest.mark.parametrize("reference, mapped", [
    ("alpine", "localhost:5000/library/alpine:latest"),
    ("ubuntu:20.04", "localhost:5000/library/ubuntu:20.04"),
    ("docker.io/library/x", "localhost:5000/library/x:latest"),
    (f"alpine@{DIGEST}", f"localhost:5000/library/alpine@{DIGEST}"),
    ("team/app:1", "localhost:5000/team/app:1"),
    ("quay.io/other/x:2", "quay.io/other/x:2"),          # no rule: unchanged
    ("localhost:5000/library/alpine:3", "localhost:5000/library/alpine:3"),
])
def test_docker_hub_names_go_to_the_operators_registry_tag_or_digest_kept(reference, mapped):
    assert map_reference(reference, HUB) == mapped


def test_the_longest_matching_source_wins_by_whole_components():
    rules = parse_image_map("docker.io=hub.local, docker.io/library=lib.local/mirror, quay.io/bio=q.local")
    assert map_reference("alpine", rules) == "lib.local/mirror/alpine:latest"
    assert map_reference("team/app", rules) == "hub.local/team/app:latest"
    assert map_reference("quay.io/bio/x:1", rules) == "q.local/x:1"
    assert map_reference("quay.io/biocontainers/x:1", rules) == "quay.io/biocontainers/x:1"  # not a component prefix


def test_no_rules_change_nothing():
    assert parse_image_map("") == ()
    assert map_reference("alpine", ()) == "alpine"


@pytest.mark.parametrize("value, words", [
    ("docker.io", "is not SOURCE=TARGET"),
    ("=localhost:5000", "is not SOURCE=TARGET"),
    ("alpine=localhost:5000", "must be a registry host"),
    ("docker.io=a b", "is not a registry host or image name prefix"),
    ("docker.io=localhost:5000/x:1", "is not a registry host or image name prefix"),
])
def test_a_rule_that_does_not_parse_stops_the_registry_naming_it(value, words):
    with pytest.raises(SettingError) as caught:
        parse(RegistrySettings, {"IMAGE_MAP": value})
    assert str(caught.value).startswith("IMAGE_MAP=") and words in str(caught.value)


def test_the_setting_is_parsed_into_rules():
    assert parse(RegistrySettings, {"IMAGE_MAP": " docker.io=127.0.0.1:5000 "}).image_map == (
        ("docker.io", "127.0.0.1:5000"),)
    assert parse(RegistrySettings, {}).image_map == ()



def test_the_registry_pulls_the_mapped_name(monkeypatch):
    images = Images(client=None, pull_timeout=5, image_map=HUB)
    seen = []

    def stream_pull(reference, name, tag, auth):
        seen.append((reference, name, tag))
        raise ImportFailed("stop here")

    monkeypatch.setattr(images, "_stream_pull", stream_pull)
    with pytest.raises(ImportFailed):
        images.pull("ubuntu:20.04")
    assert seen == [("localhost:5000/library/ubuntu:20.04", "localhost:5000/library/ubuntu", "20.04")]


def test_a_mapping_to_a_name_too_long_ends_the_import_saying_so():
    rules = parse_image_map("docker.io=" + "a" * 240 + ".example")
    images = Images(client=None, pull_timeout=5, image_map=rules)
    with pytest.raises(ImportFailed, match="IMAGE_MAP maps"):
        images.pull("team/" + "b" * 20)
