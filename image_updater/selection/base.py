"""The small protocol every update strategy implements, and the result that explains a choice."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True)
class TagInfo:
    """A tag as the registry reports it, with what the strategies may need about it.

    ``digest`` and ``created`` are filled in only for strategies that need them (they cost registry
    requests); ``problem`` says why they could not be (``no image for linux/arm64``), and a strategy
    that needs them skips the tag with that reason. ``value`` is the text ``tag-extract`` took from the
    tag; strategies compare :attr:`key` and always write :attr:`tag`.
    """

    tag: str
    digest: str | None = None
    created: datetime | None = None
    value: str | None = None
    problem: str | None = None

    @property
    def key(self) -> str:
        """What a strategy compares: the extracted value when there is one, else the tag itself."""
        return self.tag if self.value is None else self.value


@dataclass(frozen=True)
class Skipped:
    """A tag that was not a candidate, and why (``not a semantic version``, ``ignored by 'v*'``...)."""

    tag: str
    reason: str


#: the key of :attr:`Selection.extra` naming the tags (space-separated) the registry lists but failed to
#: serve: their rank is unknown, so a running one of them is not moved off (no possible downgrade)
UNREADABLE = "unreadable"


@dataclass(frozen=True)
class Selection:
    """The outcome of a strategy: the chosen tag (or ``None``), and how it came to be chosen.

    ``considered`` lists the candidate tags best-last, in the order the strategy ranked them;
    ``skipped`` says for every other tag why it was left out; ``reason`` is one human sentence.
    ``selected`` is the text to write: a tag, or ``tag@sha256:...`` for the ``digest`` strategy.
    """

    strategy: str
    selected: str | None
    reason: str
    considered: tuple[str, ...] = ()
    skipped: tuple[Skipped, ...] = ()
    digest: str | None = None
    extra: dict[str, str] = field(default_factory=dict)


class Strategy(Protocol):
    """Chooses one tag among candidates. Built from validated settings; raises on bad settings."""

    name: str
    #: whether ``select`` needs ``TagInfo.created`` / ``digest`` filled in (costs registry requests)
    needs_metadata: bool

    def select(self, tags: Sequence[TagInfo]) -> Selection:
        """Rank ``tags`` and choose one; never raises for tags it cannot use, it skips them."""
        ...

    def would_downgrade(self, current: str, selected: str) -> bool:
        """Whether moving from ``current`` to ``selected`` goes backwards although ``current`` is still
        acceptable (it would have been chosen had the registry listed it). Both are compared as the
        strategy compares tags (extracted values when ``tag-extract`` is set)."""
        ...


def count(n: int, singular: str, plural: str | None = None) -> str:
    """``1 tag``, ``2 tags``: a number with its noun."""
    return f"{n} {singular if n == 1 else plural or singular + 's'}"
