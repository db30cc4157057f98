"""The image collection's choices (shared/image_gc.py): whose images, how much, which first."""
import types

import docker
import pytest

from shared.image_gc import MARKER, Image, ImageCache, choose, marker_tag, owned, tag_marker, to_free
from shared.settings import RunnerSettings, SettingError, parse

A, B, C = (f"sha256:{letter * 64}" for letter in "abc")


def entry(image_id, tags=(), digests=(), size=100, marked=True):
    return {"Id": image_id, "Size": size, "RepoDigests": list(digests),
            "RepoTags": [*tags, *([marker_tag(image_id)] if marked else [])]}


def test_an_image_stevedore_pulled_and_nobody_tagged_is_its_own():
    assert owned(entry(A, digests=["reg:5000/job@sha256:1"]))


def test_an_image_stevedore_did_not_mark_is_never_its_own():
    assert not owned(entry(A, digests=["reg:5000/job@sha256:1"], marked=False))
    assert not owned(entry(A, tags=["<none>:<none>"], marked=False))


def test_an_image_the_operator_tagged_is_not_its_own_even_if_stevedore_pulled_it():
    assert not owned(entry(A, tags=["mine:latest"], digests=["reg:5000/job@sha256:1"]))


def test_a_tag_stevedores_pull_made_is_its_own_one_of_the_operators_is_not():
    pulled = entry(A, tags=["reg:5000/job:1", tag_marker("reg:5000/job:1")], digests=["reg:5000/job@sha256:1"])
    assert owned(pulled)
    pulled["RepoTags"].append("reg:5000/job:latest")  # tagged since by the operator
    assert not owned(pulled)


def test_a_marker_of_another_image_does_not_make_an_image_stevedores():
    other = entry(A)
    other["RepoTags"] = [marker_tag(B)]
    assert not owned(other)


def test_with_repository_prefixes_only_images_all_named_under_them_are_its_own():
    prefixes = ("reg:5000/mine/",)
    assert owned(entry(A, digests=["reg:5000/mine/job@sha256:1"]), prefixes)
    assert not owned(entry(A, digests=["reg:5000/theirs/job@sha256:1"]), prefixes)
    assert not owned(entry(A, digests=["reg:5000/mine/job@sha256:1", "reg:5000/theirs/x@sha256:1"]), prefixes)
    assert not owned(entry(A), prefixes)  # no name at all: not known to be under them


def test_nothing_is_freed_below_the_high_marks():
    assert to_free(85, 100, None, 85, 80) == (0, "")
    assert to_free(10, 0, (100, 85), 85, 80) == (0, "")


def test_past_the_cache_bound_it_frees_down_to_the_low_mark():
    need, why = to_free(90, 100, None, 85, 80)
    assert need == 10 and "IMAGE_CACHE_BYTES" in why


def test_a_full_disk_frees_down_to_its_low_mark_whichever_bound_asks_more():
    need, why = to_free(90, 100, (1000, 900), 85, 80)
    assert need == 100 and "disk is 90% used" in why
    assert to_free(10, 0, (1000, 900), 85, 80)[0] == 100  # no cache bound: the disk's alone


def image(image_id, last_used, size=10):
    return Image(image_id, size, [f"reg/{image_id[-1]}@sha256:1"], last_used)


def test_the_least_recently_used_go_first_until_enough_is_freed():
    images = [image(A, 300), image(B, 100), image(C, 200)]
    assert [i.id for i in choose(images, 15, set(), set(), 1000, 60)] == [B, C]
    assert [i.id for i in choose(images, 10, set(), set(), 1000, 60)] == [B]


def test_an_image_in_use_kept_or_used_within_the_minimum_age_is_never_chosen():
    images = [image(A, 100), image(B, 150), image(C, 950)]
    assert choose(images, 1000, {A}, {B}, 1000, 60) == []  # C used 50 s ago, under the minimum age of 60
    assert [i.id for i in choose(images, 1000, set(), {B}, 1000, 40)] == [A, C]


def test_a_low_mark_not_below_the_high_one_stops_the_service_naming_it():
    with pytest.raises(SettingError, match="IMAGE_GC_LOW_PERCENT=85: must be below IMAGE_GC_HIGH_PERCENT"):
        parse(RunnerSettings, {"IMAGE_GC_LOW_PERCENT": "85"})
    assert parse(RunnerSettings, {"IMAGE_CACHE_BYTES": "1000"}).image_cache_bytes == 1000
    assert parse(RunnerSettings, {"IMAGE_CACHE_BYTES": "0"}).image_cache_bytes == 0


class Api:
    """The engine's image and container calls, as the sweep makes them."""

    def __init__(self, images, containers=(), refuse=()):
        self.listed = images
        self.running = list(containers)
        self.refuse = set(refuse)  # references whose removal the engine refuses (409)
        self.removed = []

    def images(self):
        return self.listed

    def containers(self, all=False, filters=None):
        if filters:
            return [c for c in self.running if c["ImageID"] == filters["ancestor"]]
        return self.running

    def inspect_image(self, ref):
        found = next((e for e in self.listed if ref in (e["Id"], *e["RepoDigests"], *e["RepoTags"])), None)
        if found is None:
            raise docker.errors.ImageNotFound(ref)
        return {**found, "Metadata": {"LastTagTime": "0001-01-01T00:00:00Z"}}

    def remove_image(self, ref, force=False, noprune=False):
        assert not force
        if ref in self.refuse:
            raise docker.errors.APIError("conflict", response=types.SimpleNamespace(status_code=409, reason="x"),
                                         explanation="conflict: unable to remove: container is using it")
        self.removed.append(ref)


def cache_over(api, now, **settings):
    values = {"IMAGE_CACHE_BYTES": "250", "IMAGE_GC_MIN_AGE": "60", **settings}
    client = types.SimpleNamespace(api=api, info=lambda: {})
    return ImageCache(client, parse(RunnerSettings, values), keep=("stevedore:local",), local_engine=False,
                      clock=lambda: now[0])


def test_a_sweep_removes_the_least_recently_used_of_its_own_and_nothing_else():
    now = [1000.0]
    ours = [entry(i, digests=[f"reg/{i[-1]}@sha256:1"]) for i in (A, B, C)]
    theirs = entry("sha256:" + "d" * 64, tags=["mine:latest"], size=10 ** 6, marked=False)
    measure = entry("sha256:" + "e" * 64, tags=["stevedore:local"], size=10 ** 6, marked=False)
    api = Api([*ours, theirs, measure], containers=[{"ImageID": C}])
    cache = cache_over(api, now)
    cache.used("reg/a@sha256:1")
    now[0] = 1100.0
    cache.used("reg/b@sha256:1")
    now[0] = 1200.0
    removed = cache.sweep()
    # 300 bytes of its own, over 85% of 250: A (used first) goes; C is in use; B enough since 200 <= 200
    assert [image.id for image, _, _ in removed] == [A]
    assert api.removed == ["reg/a@sha256:1", f"{MARKER}:{'a' * 64}"]


def test_a_removal_the_engine_refuses_is_kept_quietly():
    now = [1000.0]
    api = Api([entry(A, digests=["reg/a@sha256:1"], size=300)], refuse=[marker_tag(A)])
    assert cache_over(api, now).sweep() == []
