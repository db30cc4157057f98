"""Image garbage collection on the engines Stevedore pulls onto (the registry's, each runner's), as the
kubelet's: least recently used first, above a high mark down to a low one (docs/deployment.md, "Images on
the hosts").

Which images are Stevedore's: those it pulled itself, marked at the pull by a tag of their own
(``stevedore-pulled:<image id>``, ``MARKER``), kept by the engine across restarts.  The registry pulls a task
registered by tag by that tag, and the engine keeps it: such a tag Stevedore made (absent before its pull) is
marked too (``stevedore-pulled:t<sha256 of the tag>``).  An image is collected only when every tag it has is
marked so: one the operator tagged (``docker tag``, ``docker pull name:tag`` before Stevedore pulled it), one
Stevedore found on the engine rather than pulled, ``DISK_MEASURE_IMAGE`` and every image a container of any
state uses are never removed.  With ``IMAGE_GC_REPOSITORIES`` only images all of whose names begin with one
of its prefixes are.

When it is collected: when Stevedore's images hold more than ``IMAGE_GC_HIGH_PERCENT`` of
``IMAGE_CACHE_BYTES``, or the engine's data disk (``DockerRootDir``, when this process sees it) is fuller
than ``IMAGE_GC_HIGH_PERCENT``; then images are removed, least recently used first, until both are at most
``IMAGE_GC_LOW_PERCENT``.  Never one used in the last ``IMAGE_GC_MIN_AGE`` seconds.

"Last used": the latest of the marker's tag time (a pull, or a runner's start of an execution from it: the
runner tags it again then, at most once per ``IMAGE_GC_MIN_AGE / 2``), what this process saw, and this
process's start (after a restart every image counts as used then).  An image removed and needed again is
pulled again by the runner's ordinary path (the engine no longer has it).
"""
import hashlib
import logging
import os
import time
from dataclasses import dataclass, field

import docker
import eventlet

from shared.docker_engine import explain
from shared.timeutil import parse_docker_time

log = logging.getLogger(__name__)

MARKER = "stevedore-pulled"  # the repository of the tag marking an image Stevedore pulled
NO_TAG = "<none>:<none>"


def marker_tag(image_id):
    """The tag (``repository:tag``) marking the image ``image_id`` (``sha256:...``) as Stevedore's."""
    return f"{MARKER}:{image_id.split(':', 1)[-1]}"


def tag_marker(tag):
    """The tag marking ``tag`` (``name:tag``) as made by Stevedore's pull."""
    return f"{MARKER}:t{hashlib.sha256(tag.encode()).hexdigest()}"


@dataclass
class Image:
    """An image of the engine, as the sweep weighs it."""

    id: str
    size: int
    names: list = field(default_factory=list)   # its references: RepoDigests, and RepoTags but the markers
    last_used: float = 0.0                      # epoch seconds
    markers: list = field(default_factory=list)  # its marker tags (removed last: the image goes with them)


def owned(attrs, prefixes=()):
    """Whether an image (the engine's list entry) is Stevedore's to remove: marked, no other tag, and with
    ``prefixes`` every name it has under one of them."""
    tags = {tag for tag in attrs.get("RepoTags") or [] if tag != NO_TAG}
    if marker_tag(attrs["Id"]) not in tags:
        return False
    if any(tag_marker(tag) not in tags for tag in tags if not tag.startswith(f"{MARKER}:")):
        return False  # a tag of the operator's
    if prefixes:
        digests = [ref for ref in attrs.get("RepoDigests") or [] if not ref.startswith(f"{MARKER}@")]
        return bool(digests) and all(any(ref.startswith(prefix) for prefix in prefixes) for ref in digests)
    return True


def to_free(ours, cache_bytes, disk, high, low):
    """(bytes to free, why) by the two bounds: ``ours`` bytes held by Stevedore's images against
    ``cache_bytes`` (0: none); ``disk``, (total, used) bytes of the engine's data disk (None: unknown)."""
    need, why = 0, ""
    if cache_bytes and ours * 100 > cache_bytes * high:
        need = ours - cache_bytes * low // 100
        why = (f"Stevedore's images hold {ours} bytes, over IMAGE_GC_HIGH_PERCENT ({high}%) of "
               f"IMAGE_CACHE_BYTES ({cache_bytes})")
    if disk is not None and disk[0] > 0 and disk[1] * 100 > disk[0] * high:
        excess = disk[1] - disk[0] * low // 100
        if excess > need:
            need = excess
            why = (f"the engine's data disk is {disk[1] * 100 // disk[0]}% used, over IMAGE_GC_HIGH_PERCENT "
                   f"({high}%)")
    return need, why


def choose(images, need, in_use, keep, now, min_age):
    """The images to remove, least recently used first, until their sizes add up to ``need``: none in
    ``in_use`` or ``keep`` (ids), none used within ``min_age`` seconds of ``now``."""
    chosen, freed = [], 0
    for image in sorted(images, key=lambda image: (image.last_used, image.id)):
        if freed >= need:
            break
        if image.id in in_use or image.id in keep or now - image.last_used < min_age:
            continue
        chosen.append(image)
        freed += image.size
    return chosen


class ImageCache:
    """One process's part in collecting its engine's images: marks what it pulls, notes what it uses,
    sweeps (``sweep``).  ``settings`` has the IMAGE_GC_* and IMAGE_CACHE_BYTES settings."""

    def __init__(self, client, settings, keep=(), local_engine=True, clock=time.time):
        self.client = client
        self.on = settings.image_gc
        self.high, self.low = settings.image_gc_high_percent, settings.image_gc_low_percent
        self.cache_bytes = settings.image_cache_bytes
        self.min_age = settings.image_gc_min_age
        self.prefixes = tuple(sorted(settings.image_gc_repositories))
        self.keep = tuple(ref for ref in keep if ref)  # references never removed (DISK_MEASURE_IMAGE)
        self.local_engine = local_engine  # whether the engine's DockerRootDir is this host's
        self.clock = clock
        self.started = clock()
        self.uses = {}  # reference -> when this process last started something from it (pruned by sweep)

    def pulled(self, reference, tag=None):
        """Mark the image just pulled as ``reference`` as Stevedore's (tagged again: its use time too); and
        ``tag``, the tag the pull made (see ``tag_is_ours``).  With IMAGE_GC off, nothing is marked: the engine's
        images are left as the pull left them (those pulled meanwhile are not collected once it is on)."""
        if not self.on:
            return
        try:
            image_id = self.client.api.inspect_image(reference)["Id"]
            if tag is not None:
                self.client.api.tag(image_id, *tag_marker(tag).split(":"))
            self.client.api.tag(image_id, MARKER, image_id.split(":", 1)[-1])
        except docker.errors.DockerException as exc:  # unmarked, it is merely never collected
            log.warning("could not mark image %s as pulled by Stevedore: %s", reference, explain(exc))

    def tag_is_ours(self, tag):
        """Whether a pull of ``tag`` (``name:tag``) about to be made makes it Stevedore's: absent from the
        engine, or already marked.  False for the operator's tag, and when the engine cannot say."""
        try:
            tags = self.client.api.inspect_image(tag).get("RepoTags") or []
        except docker.errors.ImageNotFound:
            return True
        except docker.errors.DockerException:
            return False
        return tag_marker(tag) in tags

    def used(self, reference):
        """An execution starts from ``reference``: its use noted, and told the engine (the marker tagged
        again, in the background) when it was not for ``IMAGE_GC_MIN_AGE / 2``."""
        if not self.on:  # nothing sweeps: nothing to note (the notes are pruned by the sweep)
            return
        now = self.clock()
        before = self.uses.get(reference)
        self.uses[reference] = now
        if before is None or now - before >= self.min_age / 2:
            eventlet.spawn_n(self._touch, reference)

    def _touch(self, reference):
        try:
            image = self.client.api.inspect_image(reference)
            if marker_tag(image["Id"]) in (image.get("RepoTags") or []):
                self.client.api.tag(image["Id"], MARKER, image["Id"].split(":", 1)[-1])
        except Exception as exc:  # noqa: BLE001 -- best effort: the in-memory use stands
            log.debug("could not note the use of image %s: %s", reference, exc)

    def sweep(self):
        """Remove least recently used images of Stevedore's while over a bound; [(image, bytes, why)]."""
        if not self.on:
            return []
        listed = self.client.api.images()
        ours = [entry for entry in listed if owned(entry, self.prefixes)]
        self._prune(listed)
        need, why = to_free(sum(entry.get("Size") or 0 for entry in ours), self.cache_bytes, self._disk(),
                            self.high, self.low)
        if need <= 0:
            return []
        in_use = {entry.get("ImageID") for entry in self.client.api.containers(all=True)}
        images = [self._weighed(entry) for entry in ours]
        removed = []
        for image in choose(images, need, in_use, self._kept(), self.clock(), self.min_age):
            if self._remove(image):
                log.info("removed image %s (%d bytes): %s; least recently used (%s)", " ".join(image.names) or
                         image.id, image.size, why, time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                  time.gmtime(image.last_used)))
                removed.append((image, image.size, why))
        return removed

    def _weighed(self, entry):
        names = [ref for ref in (entry.get("RepoDigests") or []) + (entry.get("RepoTags") or [])
                 if ref != NO_TAG and not ref.startswith(f"{MARKER}:") and not ref.startswith(f"{MARKER}@")]
        last = max([self.started] + [self.uses[ref] for ref in names + [entry["Id"]] if ref in self.uses])
        try:
            tagged = parse_docker_time(self.client.api.inspect_image(entry["Id"])["Metadata"].get("LastTagTime"))
        except (docker.errors.DockerException, KeyError, TypeError):
            tagged = None
        markers = sorted((tag for tag in entry.get("RepoTags") or [] if tag.startswith(f"{MARKER}:")),
                         key=lambda tag: tag == marker_tag(entry["Id"]))  # the image's own marker last
        return Image(entry["Id"], entry.get("Size") or 0, names, max(last, tagged or 0), markers)

    def _kept(self):
        kept = set()
        for ref in self.keep:
            try:
                kept.add(self.client.api.inspect_image(ref)["Id"])
            except docker.errors.DockerException:
                pass
        return kept

    def _prune(self, listed):
        """Forget the uses of references the engine no longer has (the notes stay bounded)."""
        present = {entry["Id"] for entry in listed}
        for entry in listed:
            present.update(entry.get("RepoDigests") or [])
            present.update(entry.get("RepoTags") or [])
        for ref in [ref for ref in self.uses if ref not in present]:
            del self.uses[ref]

    def _disk(self):
        """(total, used) bytes of the engine's data disk, or None when this process does not see it."""
        if not self.local_engine:
            return None
        try:
            root = self.client.info().get("DockerRootDir")
            if not root or not os.path.isdir(root):
                return None
            stat = os.statvfs(root)
        except (docker.errors.DockerException, OSError):
            return None
        total = stat.f_blocks * stat.f_frsize
        return total, total - stat.f_bfree * stat.f_frsize

    def _remove(self, image):
        """Remove the image's references, the marker last (the image goes with the last one); False when the
        engine refused (a container took it meanwhile: 409) or it could not be asked."""
        if self.client.api.containers(all=True, filters={"ancestor": image.id}):
            return False
        try:
            for ref in [*image.names, *(image.markers or [marker_tag(image.id)])]:
                try:
                    self.client.api.remove_image(ref, force=False, noprune=False)
                except docker.errors.NotFound:
                    pass
        except docker.errors.APIError as exc:
            log.info("image %s kept: %s", image.id, explain(exc))
            return False
        except docker.errors.DockerException as exc:
            log.warning("could not remove image %s: %s", image.id, explain(exc))
            return False
        return True
