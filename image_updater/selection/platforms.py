"""Platforms (``os/arch[/variant]``) as the ``platforms`` setting names them, and AIU's match rule.

An image is wanted when its platform is one of the allowed ones, or when it has a variant and its
``os/arch`` without the variant is allowed (``linux/arm64`` admits ``linux/arm64/v8``); an allowed
``linux/arm/v7`` does not admit a plain ``linux/arm``. That is AIU's ``WantsPlatform``. A malformed
entry is an error naming the setting, where AIU keeps it as a constraint nothing can match.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from image_updater.errors import ConstraintError

__all__ = ["PLATFORMS", "Platform", "parse_platform", "parse_platforms", "wants_platform"]

PLATFORMS = "platforms"
_PART = re.compile(r"^[A-Za-z0-9_.-]+$")


@dataclass(frozen=True, order=True)
class Platform:
    """An operating system, an architecture and an optional variant."""

    os: str
    architecture: str
    variant: str = ""

    def __str__(self) -> str:
        text = f"{self.os}/{self.architecture}"
        return f"{text}/{self.variant}" if self.variant else text


def parse_platform(text: str) -> Platform:
    """Read ``os/arch`` or ``os/arch/variant``; raise :class:`ConstraintError` naming ``platforms``."""
    parts = text.strip().split("/")
    if not 2 <= len(parts) <= 3 or not all(_PART.match(part) for part in parts):
        raise ConstraintError(f"{PLATFORMS}: {text.strip()!r} is not os/arch or os/arch/variant (e.g. linux/arm64)")
    return Platform(*parts)


def parse_platforms(texts: Iterable[str]) -> tuple[Platform, ...]:
    """Parse each entry, keeping the given order and dropping repeats."""
    return tuple(dict.fromkeys(parse_platform(text) for text in texts if text.strip()))


def wants_platform(allowed: Iterable[Platform], candidate: Platform) -> bool:
    """Whether an image for ``candidate`` may be used when ``allowed`` are the wanted platforms.

    No allowed platforms at all means any platform.
    """
    wanted = set(allowed)
    if not wanted or candidate in wanted:
        return True
    return bool(candidate.variant) and Platform(candidate.os, candidate.architecture) in wanted
