"""Image manifests and indexes as the registry returns them, and content digests.

The client asks for the four current media types (Docker schema 2 manifest and manifest list, OCI
image manifest and index); the obsolete Docker schema 1 is not accepted.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"

IMAGE_MANIFEST_TYPES = frozenset({DOCKER_MANIFEST, OCI_MANIFEST})
INDEX_TYPES = frozenset({DOCKER_MANIFEST_LIST, OCI_INDEX})
MANIFEST_TYPES = IMAGE_MANIFEST_TYPES | INDEX_TYPES
MANIFEST_ACCEPT = ", ".join((OCI_INDEX, DOCKER_MANIFEST_LIST, OCI_MANIFEST, DOCKER_MANIFEST))
"""The ``Accept`` header of manifest requests."""

DIGEST_PATTERN = re.compile(r"^(?P<algorithm>[a-z0-9]+(?:[.+_-][a-z0-9]+)*):(?P<hex>[a-fA-F0-9]{32,})$")
_ALGORITHMS = {"sha256": hashlib.sha256, "sha512": hashlib.sha512}


class ManifestFormatError(ValueError):
    """A manifest body that is not what its media type promises; the client wraps it."""


def is_digest(reference: str) -> bool:
    """Whether a manifest reference is a digest (``sha256:...``) rather than a tag."""
    return bool(DIGEST_PATTERN.match(reference))


def compute_digest(data: bytes, algorithm: str = "sha256") -> str:
    """The content digest ``<algorithm>:<hex>`` of ``data``; ``KeyError`` for an unknown algorithm."""
    return f"{algorithm}:{_ALGORITHMS[algorithm](data).hexdigest()}"


def digest_algorithm(digest: str) -> str | None:
    """The algorithm of ``digest`` if it is a well-formed digest this client can compute."""
    match = DIGEST_PATTERN.match(digest)
    if match is None or match.group("algorithm") not in _ALGORITHMS:
        return None
    return match.group("algorithm")


@dataclass(frozen=True)
class ManifestDescriptor:
    """One entry of an index: a child manifest and the platform it is for (``linux/arm64/v8``)."""

    digest: str
    media_type: str | None
    size: int | None
    platform: str | None


@dataclass(frozen=True)
class Manifest:
    """A manifest or index: media type, digest, the parsed JSON and the bytes it was parsed from."""

    media_type: str
    digest: str
    content: Mapping[str, Any] = field(compare=False, repr=False)
    raw: bytes = field(compare=False, repr=False)

    @property
    def is_index(self) -> bool:
        """Whether this is a manifest list / OCI index rather than an image manifest."""
        return self.media_type in INDEX_TYPES

    @property
    def config_digest(self) -> str | None:
        """The digest of the image config blob (image manifests only)."""
        config = self.content.get("config")
        return config.get("digest") if isinstance(config, Mapping) else None

    @property
    def manifests(self) -> tuple[ManifestDescriptor, ...]:
        """The children of an index, in order (empty for an image manifest)."""
        entries = self.content.get("manifests") if self.is_index else None
        if not isinstance(entries, list):
            return ()
        return tuple(_descriptor(e) for e in entries)


def media_type_of(content_type: str | None, content: Mapping[str, Any]) -> str:
    """The manifest's media type: the ``Content-Type`` when it is one, else the body's ``mediaType``."""
    header = (content_type or "").split(";", 1)[0].strip().lower()
    if header in MANIFEST_TYPES:
        return header
    declared = content.get("mediaType")
    if isinstance(declared, str) and declared in MANIFEST_TYPES:
        return declared
    raise ManifestFormatError(
        f"unsupported manifest media type {header or declared or 'unknown'!r} "
        f"(expected one of {', '.join(sorted(MANIFEST_TYPES))})"
    )


def validate_manifest(media_type: str, content: Mapping[str, Any]) -> None:
    """Check the fields this product reads; raise :class:`ManifestFormatError` naming what is wrong."""
    if media_type in INDEX_TYPES:
        entries = content.get("manifests")
        if not isinstance(entries, list):
            raise ManifestFormatError("the index has no 'manifests' list")
        for position, entry in enumerate(entries):
            if not isinstance(entry, Mapping) or not isinstance(entry.get("digest"), str):
                raise ManifestFormatError(f"index entry {position} has no 'digest'")
    else:
        config = content.get("config")
        if not isinstance(config, Mapping) or not isinstance(config.get("digest"), str):
            raise ManifestFormatError("the manifest has no 'config.digest'")


def _descriptor(entry: Mapping[str, Any]) -> ManifestDescriptor:
    platform = entry.get("platform")
    text = None
    if isinstance(platform, Mapping) and platform.get("os") and platform.get("architecture"):
        text = f"{platform['os']}/{platform['architecture']}"
        if platform.get("variant"):
            text += f"/{platform['variant']}"
    size = entry.get("size")
    media_type = entry.get("mediaType")
    return ManifestDescriptor(
        digest=str(entry.get("digest")),
        media_type=media_type if isinstance(media_type, str) else None,
        size=size if isinstance(size, int) and not isinstance(size, bool) else None,
        platform=text,
    )
