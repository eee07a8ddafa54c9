"""Image references as validated value types, with Docker Hub normalisation.

``nginx`` is ``docker.io/library/nginx``; ``docker.io`` is reached at ``registry-1.docker.io``; the first
path component is a registry host only when it contains ``.`` or ``:`` or is ``localhost``, as Docker
decides it (``localhost:5000/app``, ``[::1]:5000/app``, ``registry.example.com/team/app``; but
``team/app`` is on Docker Hub). Docker Hub's other names (``index.docker.io``, ``registry-1.docker.io``,
``registry.hub.docker.com``) all become ``docker.io``. Malformed references raise
:class:`~image_updater.errors.ImageReferenceError` saying what is wrong.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from image_updater.errors import ImageReferenceError

DOCKER_HUB = "docker.io"
DOCKER_HUB_API_HOST = "registry-1.docker.io"
_HUB_ALIASES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"})
#: the longest name (registry and repository) the distribution reference grammar allows
MAX_NAME_LENGTH = 255

_COMPONENT = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
_HOST = re.compile(
    r"^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*"
    r"|\[[0-9a-fA-F:.]+\])(?::[0-9]+)?$"
)
TAG_PATTERN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_DIGEST = re.compile(r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-fA-F0-9]{32,}$")


@dataclass(frozen=True, order=True)
class ImageName:
    """A registry and a repository path, normalised (``docker.io/library/nginx``)."""

    registry: str
    repository: str

    @property
    def api_host(self) -> str:
        """The host that serves the registry API for this image."""
        return DOCKER_HUB_API_HOST if self.registry == DOCKER_HUB else self.registry

    def __str__(self) -> str:
        return f"{self.registry}/{self.repository}"


@dataclass(frozen=True)
class ImageRef:
    """An image name with an optional tag and digest, as written in a manifest."""

    name: ImageName
    tag: str | None = None
    digest: str | None = None

    def __str__(self) -> str:
        text = str(self.name)
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text


def is_valid_tag(tag: str) -> bool:
    """Whether ``tag`` is a valid OCI tag."""
    return bool(TAG_PATTERN.match(tag))


def normalize_registry_host(host: str) -> str:
    """A registry host as image names use it: lower case, Docker Hub's aliases as ``docker.io``."""
    lowered = host.strip().lower()
    return DOCKER_HUB if lowered in _HUB_ALIASES else lowered


def names_registry(text: str) -> bool:
    """Whether an image name (without tag) starts with a registry host rather than a Docker Hub path."""
    first, slash, _ = text.strip().partition("/")
    return bool(slash) and ("." in first or ":" in first or first == "localhost")


def split_name_suffix(text: str) -> tuple[str, str | None, str | None]:
    """Split ``name[:suffix][@digest]`` into its parts without validating them.

    The suffix is whatever follows the last ``:`` after the last ``/`` (a ``:`` before it belongs to a
    registry port).
    """
    text = text.strip()
    digest = None
    if "@" in text:
        text, digest = text.split("@", 1)
    slash = text.rfind("/")
    colon = text.rfind(":")
    if colon > slash:
        return text[:colon], text[colon + 1 :], digest
    return text, None, digest


def parse_image_name(text: str, *, default_namespace: str = "library") -> ImageName:
    """Parse and normalise an image name (no tag, no digest).

    Answers are remembered (a cycle reads the same names in thousands of target files); errors are not.
    """
    return _parse_image_name(text, default_namespace)


@functools.lru_cache(maxsize=4096)
def _parse_image_name(text: str, default_namespace: str) -> ImageName:
    raw = text.strip()
    if not raw:
        raise ImageReferenceError("empty image name")
    if "://" in raw:
        raise ImageReferenceError(f"{raw!r} is a URL; an image name has no scheme (write host/path)")
    if any(char.isspace() for char in raw):
        raise ImageReferenceError(f"invalid image name {raw!r}: it contains white space")
    parts = raw.split("/")
    if names_registry(raw):
        registry, path = parts[0], parts[1:]
        if not _HOST.match(registry):
            raise ImageReferenceError(f"invalid registry host {registry!r} in {raw!r}")
        registry = normalize_registry_host(registry)
    else:
        registry, path = DOCKER_HUB, parts
    if not path or any(not p for p in path):
        raise ImageReferenceError(f"invalid repository name in {raw!r}: empty path component")
    bad = next((p for p in path if not _COMPONENT.match(p)), None)
    if bad is not None:
        hint = " (repository names are lower case)" if bad.lower() != bad and _COMPONENT.match(bad.lower()) else ""
        raise ImageReferenceError(
            f"invalid repository name in {raw!r}: {bad!r} is not lower-case letters and digits joined by "
            f"single separators (. _ __ -){hint}"
        )
    if registry == DOCKER_HUB and len(path) == 1:
        path = [default_namespace, *path]
    name = ImageName(registry=registry, repository="/".join(path))
    if len(str(name)) > MAX_NAME_LENGTH:
        raise ImageReferenceError(f"image name {raw!r} is longer than {MAX_NAME_LENGTH} characters")
    return name


def parse_image_ref(text: str, *, default_namespace: str = "library") -> ImageRef:
    """Parse ``name[:tag][@digest]`` into an :class:`ImageRef`, validating the tag and digest."""
    name_text, tag, digest = split_name_suffix(text)
    name = parse_image_name(name_text, default_namespace=default_namespace)
    if tag is not None and not is_valid_tag(tag):
        raise ImageReferenceError(
            f"invalid tag {tag!r} in {text.strip()!r}: up to 128 letters, digits, '_', '.' and '-', "
            "not starting with '.' or '-'"
        )
    if digest is not None and not _DIGEST.match(digest):
        raise ImageReferenceError(f"invalid digest {digest!r} in {text.strip()!r} (expected e.g. sha256:<64 hex>)")
    return ImageRef(name=name, tag=tag, digest=digest)


def same_image(a: str, b: str | ImageName) -> bool:
    """Whether two image names (written in any familiar form) denote the same repository."""
    try:
        left = parse_image_name(split_name_suffix(a)[0])
        right = b if isinstance(b, ImageName) else parse_image_name(split_name_suffix(b)[0])
    except ImageReferenceError:
        return False
    return left == right
