"""The small protocol every update strategy implements, and the result that explains a choice."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple, Protocol, TypeVar, overload

T = TypeVar("T")


class TagInfo(NamedTuple):
    """A tag as the registry reports it, with what the strategies may need about it.

    ``digest`` and ``created`` are filled in only for strategies that need them (they cost registry
    requests); ``problem`` says why they could not be (``no image for linux/arm64``), and a strategy
    that needs them skips the tag with that reason. ``value`` is the text ``tag-extract`` took from the
    tag; strategies compare :attr:`key` and always write :attr:`tag`.

    A named tuple, immutable as the frozen dataclass it was, and made three times faster: a cycle
    makes one for every tag of every repository it lists (60,000 at 200 repositories of 300 tags).
    Change one with ``_replace``.
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


class Listing(list[TagInfo]):
    """The tags of one repository as one cycle listed them, with a memo of what is derived from them.

    Every image of a repository is selected from the same listing, and filtering, extracting values and
    ranking depend only on the tags and on settings: each is done once per listing and settings
    (:func:`derived`), not once per image. A listing must not be changed once something was derived.
    """

    def __init__(self, tags: Sequence[TagInfo] = ()) -> None:
        super().__init__(tags)
        self.memo: dict[Hashable, Any] = {}


_MISSING = object()


def derived(tags: Sequence[TagInfo], key: Hashable, make: Callable[[], T]) -> T:
    """``make()``, remembered on ``tags`` under ``key`` when ``tags`` is a :class:`Listing`.

    ``key`` must name everything ``make`` depends on besides the tags (the settings, as hashable values).
    """
    if not isinstance(tags, Listing):
        return make()
    found = tags.memo.get(key, _MISSING)
    if found is _MISSING:
        found = tags.memo[key] = make()
    return found  # type: ignore[no-any-return]


class LazySkips(Sequence[Skipped]):
    """The tags a selection left out, with their reasons, worked out when first asked for.

    A cycle makes thousands of selections and only ``image-updater test`` reads every reason, so
    strategies hand a function that explains instead of the explanations. Compares equal to a tuple
    with the same items.
    """

    __slots__ = ("_items", "_make")

    def __init__(self, make: Callable[[], Sequence[Skipped]]) -> None:
        self._make: Callable[[], Sequence[Skipped]] | None = make
        self._items: tuple[Skipped, ...] = ()

    def _all(self) -> tuple[Skipped, ...]:
        if self._make is not None:
            self._items = tuple(self._make())
            self._make = None
        return self._items

    @overload
    def __getitem__(self, index: int) -> Skipped: ...

    @overload
    def __getitem__(self, index: slice) -> tuple[Skipped, ...]: ...

    def __getitem__(self, index: int | slice) -> Skipped | tuple[Skipped, ...]:
        return self._all()[index]

    def __len__(self) -> int:
        return len(self._all())

    def __iter__(self) -> Iterator[Skipped]:
        return iter(self._all())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, LazySkips):
            return self._all() == other._all()
        if isinstance(other, tuple | list):
            return self._all() == tuple(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __add__(self, other: Sequence[Skipped]) -> tuple[Skipped, ...]:
        return self._all() + tuple(other)

    def __radd__(self, other: Sequence[Skipped]) -> tuple[Skipped, ...]:
        return tuple(other) + self._all()

    def __repr__(self) -> str:
        return f"LazySkips({self._all()!r})"


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
    #: a tuple, or a :class:`LazySkips` that explains when first read
    skipped: Sequence[Skipped] = ()
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
