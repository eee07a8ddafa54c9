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
    _precedence: semver.Version = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        # Built once: comparisons during a sort would otherwise rebuild it at every step.
        object.__setattr__(
            self,
            "_precedence",
            semver.Version(self.major, self.minor, self.patch, self.prerelease or None, self.build or None),
        )

    @property
    def precedence(self) -> semver.Version:
        """The version as a ``semver.Version``, whose ordering is semver 2.0 precedence."""
        return self._precedence

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

    def compare_precedence(self, other: Version) -> int:
        """-1, 0 or 1 as ``self`` has lower, equal or higher semver precedence; build is ignored."""
        return self._precedence.compare(other._precedence)

    def sort_key(self) -> tuple[semver.Version, str, str, str]:
        """Precedence first, then the tag string, so that equal-precedence tags still sort one way.

        ``v1.2.0``, ``1.2`` and ``1.2.0+b7`` share a precedence and sort by their tag text. The build
        and pre-release strings come last only so that hand-built instances stay totally ordered.
        """
        return (self._precedence, self.original, self.build, self.prerelease)

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


def parse_version(text: str) -> Version | None:
    """Read ``text`` as Masterminds ``NewVersion`` would; ``None`` when it is not a version.

    Never raises, whatever it is given.
    """
    if not isinstance(text, str) or len(text.encode("utf-8", "surrogatepass")) > MAX_VERSION_LENGTH:
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
