"""Semantic versions read from image tags the way Masterminds/semver v3 ``NewVersion`` reads them.

Argo CD Image Updater parses tags with Masterminds/semver v3, which is lenient where the semver 2.0
grammar is strict, so this module follows the library rather than the spec:

- one optional lowercase ``v`` prefix (``v1.2.3``; ``V1.2.3`` is not a version);
- short versions: ``1`` is ``1.0.0`` and ``1.2`` is ``1.2.0``, also with a pre-release (``1.2-beta``);
- leading zeros in major, minor and patch are accepted and dropped (``01.02.03`` is ``1.2.3``), as
  ``NewVersion`` does by default since v3.4.0 (``CoerceNewVersion = true``);
- a numeric pre-release identifier with a leading zero (``1.2.3-rc.01``) is rejected, as everywhere;
- pre-release and build identifiers are non-empty ``[0-9A-Za-z-]`` runs separated by dots;
- a numeric part above 2**64-1, a fourth part (``1.2.3.4``) or a tag longer than 256 bytes is no version.

A tag that is not a version gives ``None``; callers skip it, it is never an error. Precedence is semver
2.0's (build metadata ignored), computed by the ``semver`` package; equal precedence is broken by the
original tag string so that sorting tags is total and deterministic.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from typing import Any

import semver

__all__ = ["MAX_VERSION_LENGTH", "Version", "parse_version"]

#: Masterminds ``MaxVersionLen``: longer text is refused before parsing (OCI tags stop at 128 anyway).
MAX_VERSION_LENGTH = 256
_MAX_SEGMENT = 2**64 - 1  # Masterminds parses each part with strconv.ParseUint(..., 64)

_IDENTIFIERS = r"[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*"
_VERSION = re.compile(
    rf"v?(?P<major>[0-9]+)(?:\.(?P<minor>[0-9]+))?(?:\.(?P<patch>[0-9]+))?"
    rf"(?:-(?P<pre>{_IDENTIFIERS}))?(?:\+(?P<build>{_IDENTIFIERS}))?"
)
_NUMERIC = re.compile(r"[0-9]+")
#: how many parsed tags :func:`parse_version` remembers (a few MB at most)
PARSE_CACHE_SIZE = 1 << 16

#: semver precedence as a plain tuple, see :func:`precedence_key`
PrecedenceKey = tuple[Any, ...]


@dataclass(frozen=True)
class Version:
    """A parsed version and the tag it came from.

    ``prerelease`` and ``build`` are empty strings when absent (as in Masterminds); ``original`` is the
    tag exactly as the registry listed it, which is what gets written back. ``==`` compares all fields
    (``1.2`` and ``1.2.0`` differ); ``<`` follows ``sort_key``; ``compare_precedence`` is semver alone.
    """

    major: int
    minor: int
    patch: int
    prerelease: str = ""
    build: str = ""
    original: str = ""
    _key: PrecedenceKey = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        # Built once, as a plain tuple: a sort compares it in C, where comparing semver.Version objects
        # runs Python code at every step (a cycle sorts the tags of thousands of images).
        object.__setattr__(self, "_key", precedence_key(self.major, self.minor, self.patch, self.prerelease))

    @property
    def precedence(self) -> semver.Version:
        """The version as a ``semver.Version``, whose ordering is semver 2.0 precedence."""
        return semver.Version(self.major, self.minor, self.patch, self.prerelease or None, self.build or None)

    @property
    def is_prerelease(self) -> bool:
        """Whether the version has a pre-release part (``1.2.3-rc.1``)."""
        return bool(self.prerelease)

    @property
    def normalized(self) -> str:
        """The canonical form, as Masterminds ``String()`` gives it: ``v1.2-rc`` is ``1.2.0-rc``."""
        text = f"{self.major}.{self.minor}.{self.patch}"
        if self.prerelease:
            text += f"-{self.prerelease}"
        if self.build:
            text += f"+{self.build}"
        return text

    @property
    def precedence_key(self) -> PrecedenceKey:
        """The version's precedence as a plain tuple (see :func:`precedence_key`): equal for equal
        precedence, ordered as precedence is."""
        return self._key

    def compare_precedence(self, other: Version) -> int:
        """-1, 0 or 1 as ``self`` has lower, equal or higher semver precedence; build is ignored."""
        return (self._key > other._key) - (self._key < other._key)

    def sort_key(self) -> tuple[PrecedenceKey, str, str, str]:
        """Precedence first, then the tag string, so that equal-precedence tags still sort one way.

        ``v1.2.0``, ``1.2`` and ``1.2.0+b7`` share a precedence and sort by their tag text. The build
        and pre-release strings come last only so that hand-built instances stay totally ordered.
        """
        return (self._key, self.original, self.build, self.prerelease)

    def __lt__(self, other: Any) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self.sort_key() < other.sort_key()

    def __le__(self, other: Any) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self.sort_key() <= other.sort_key()

    def __gt__(self, other: Any) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self.sort_key() > other.sort_key()

    def __ge__(self, other: Any) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self.sort_key() >= other.sort_key()

    def __str__(self) -> str:
        return self.original or self.normalized


def precedence_key(major: int, minor: int, patch: int, prerelease: str) -> PrecedenceKey:
    """A tuple that orders as semver 2.0 precedence (build metadata plays no part).

    A release ranks above its pre-releases (``(1,)`` against ``(0, ...)``); pre-release identifiers
    compare one by one, numeric ones as numbers and below alphanumeric ones, which compare as ASCII
    text; more identifiers rank higher when all before them are equal (a longer tuple).
    """
    if not prerelease:
        return (major, minor, patch, (1,))
    parts = tuple((0, int(p), "") if p.isdigit() and p.isascii() else (1, 0, p) for p in prerelease.split("."))
    return (major, minor, patch, (0, *parts))


def parse_version(text: str) -> Version | None:
    """Read ``text`` as Masterminds ``NewVersion`` would; ``None`` when it is not a version.

    Never raises, whatever it is given. Answers are remembered (the same tags are read every cycle,
    by every image of a repository): at most :data:`PARSE_CACHE_SIZE` of them.
    """
    if not isinstance(text, str):
        return None
    return _parse_version(text)


@functools.lru_cache(maxsize=PARSE_CACHE_SIZE)
def _parse_version(text: str) -> Version | None:
    if len(text.encode("utf-8", "surrogatepass")) > MAX_VERSION_LENGTH:
        return None
    # fullmatch, not `$`: Python's `$` would also accept a trailing newline, Go's does not.
    match = _VERSION.fullmatch(text)
    if match is None:
        return None
    major = int(match["major"])
    minor = int(match["minor"] or 0)
    patch = int(match["patch"] or 0)
    if max(major, minor, patch) > _MAX_SEGMENT:
        return None
    prerelease = match["pre"] or ""
    if prerelease and not _valid_prerelease(prerelease):
        return None
    return Version(major, minor, patch, prerelease, match["build"] or "", text)


def _valid_prerelease(prerelease: str) -> bool:
    """Numeric pre-release identifiers must not have leading zeros (Masterminds ``validatePrerelease``)."""
    return not any(len(part) > 1 and part[0] == "0" and _NUMERIC.fullmatch(part) for part in prerelease.split("."))
