"""Tag filters applied before a strategy ranks tags: ``allow-tags``, ``ignore-tags`` and the tracked tag.

``allow-tags`` is ``any`` or ``regexp:<re>`` (unanchored, as in AIU; both words case-insensitive, as
AIU's parser lowers them). Anything else is an error naming the annotation, where AIU matches no tag at
all and only logs a warning. ``ignore-tags`` are Go ``filepath.Match`` globs (see :mod:`.patterns`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from image_updater.errors import ConstraintError
from image_updater.model.ref import TAG_PATTERN, is_valid_tag
from image_updater.selection.base import LazySkips, Listing, Skipped, TagInfo, derived
from image_updater.selection.patterns import compile_glob, compile_regexp

ALLOW_TAGS = "allow-tags"
IGNORE_TAGS = "ignore-tags"
INVALID_TAG = "not a valid OCI tag"


@dataclass(frozen=True)
class TagFilter:
    """Which listed tags a strategy may consider, and why the others may not.

    ``only`` keeps the one tag the ``digest`` strategy tracks.
    """

    allow: re.Pattern[str] | None = None
    allow_text: str | None = None
    ignore: tuple[tuple[str, re.Pattern[str]], ...] = ()
    only: str | None = None

    @classmethod
    def build(cls, allow_tags: str | None, ignore_tags: Sequence[str] = (), *, only: str | None = None) -> TagFilter:
        """Compile the filter; an invalid regexp, glob or form is a :class:`ConstraintError`."""
        return cls(
            allow=parse_allow_tags(allow_tags),
            allow_text=(allow_tags or "").strip() or None,
            ignore=tuple((glob, compile_glob(glob, what=IGNORE_TAGS)) for glob in ignore_tags),
            only=only,
        )

    def accepts(self, tag: str) -> bool:
        """Whether ``tag`` passes this filter (it would be a candidate if listed)."""
        return self._reason(tag) is None

    def apply(self, tags: Sequence[TagInfo]) -> tuple[Listing, Sequence[Skipped]]:
        """Split tags into the ones kept and the ones skipped, each with its reason.

        Done once per listing and filter (:func:`~image_updater.selection.base.derived`); the kept tags
        are a :class:`Listing` again, so what is derived from them is remembered too. The reasons are
        worked out when first read.
        """
        return derived(tags, ("filter", self), lambda: self._apply(tags))

    def _apply(self, tags: Sequence[TagInfo]) -> tuple[Listing, Sequence[Skipped]]:
        valid, invalid = derived(tags, "valid", lambda: _split_valid(tags))
        if self.allow is None and not self.ignore and self.only is None:
            return valid, tuple(Skipped(tag, INVALID_TAG) for tag in invalid)  # no filter set: most images
        if not self.ignore and self.only is None:
            assert self.allow is not None
            search = self.allow.search
            kept = Listing([info for info in valid if search(info.tag)])
        else:
            kept = Listing([info for info in valid if self._reason(info.tag) is None])
        return kept, LazySkips(lambda: [Skipped(i.tag, r) for i in tags if (r := self._reason(i.tag)) is not None])

    def _reason(self, tag: str) -> str | None:
        if not is_valid_tag(tag):
            return INVALID_TAG
        if self.only is not None and tag != self.only:
            return f"not the tracked tag {self.only!r}"
        glob = next((text for text, pattern in self.ignore if pattern.fullmatch(tag)), None)
        if glob is not None:
            return f"matches ignore-tags {glob!r}"
        if self.allow is not None and not self.allow.search(tag):
            return f"does not match allow-tags {self.allow_text!r}"
        return None


def _split_valid(tags: Sequence[TagInfo]) -> tuple[Listing, tuple[str, ...]]:
    """The tags that are valid OCI tags (a :class:`Listing`), and the others' texts, in listing order."""
    valid = TAG_PATTERN.match
    return Listing([info for info in tags if valid(info.tag)]), tuple(i.tag for i in tags if not valid(i.tag))


def parse_allow_tags(text: str | None) -> re.Pattern[str] | None:
    """``None`` for no filter (absent, empty or ``any``), else the compiled ``regexp:`` expression."""
    value = (text or "").strip()
    if not value or value.lower() == "any":
        return None
    kind, sep, expression = value.partition(":")
    if not sep or kind.lower() != "regexp":
        hint = f" (did you mean 'regexp:{value}'?)" if not sep else ""
        raise ConstraintError(f"{ALLOW_TAGS} {value!r} must be 'any' or 'regexp:<expression>'{hint}")
    return compile_regexp(expression, what=ALLOW_TAGS)
