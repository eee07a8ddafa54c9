"""Tag filters applied before a strategy ranks tags: ``allow-tags`` and ``ignore-tags``."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Sequence
from dataclasses import dataclass

from image_updater.errors import ConstraintError
from image_updater.model.ref import is_valid_tag
from image_updater.selection.base import Skipped, TagInfo


@dataclass(frozen=True)
class TagFilter:
    """``allow-tags`` (``regexp:<re>``, unanchored as in AIU, or ``any``) and ``ignore-tags`` globs."""

    allow: re.Pattern[str] | None = None
    allow_text: str | None = None
    ignore: tuple[str, ...] = ()

    @classmethod
    def build(cls, allow_tags: str | None, ignore_tags: Sequence[str] = ()) -> TagFilter:
        """Compile the filter; an invalid regexp or an unknown form is a :class:`ConstraintError`."""
        pattern = None
        text = (allow_tags or "").strip()
        if text and text != "any":
            if not text.startswith("regexp:"):
                raise ConstraintError(f"allow-tags {text!r} must be 'any' or 'regexp:<expression>'")
            try:
                pattern = re.compile(text[len("regexp:") :])
            except re.error as e:
                raise ConstraintError(f"allow-tags {text!r} is not a valid regular expression: {e}") from e
        return cls(allow=pattern, allow_text=text or None, ignore=tuple(ignore_tags))

    def apply(self, tags: Sequence[TagInfo]) -> tuple[list[TagInfo], list[Skipped]]:
        """Split tags into the ones kept and the ones skipped, each with its reason."""
        kept: list[TagInfo] = []
        skipped: list[Skipped] = []
        for info in tags:
            if not is_valid_tag(info.tag):
                skipped.append(Skipped(info.tag, "not a valid OCI tag"))
                continue
            glob = next((g for g in self.ignore if fnmatch.fnmatchcase(info.tag, g)), None)
            if glob is not None:
                skipped.append(Skipped(info.tag, f"matches ignore-tags {glob!r}"))
            elif self.allow is not None and not self.allow.search(info.tag):
                skipped.append(Skipped(info.tag, f"does not match allow-tags {self.allow_text!r}"))
            else:
                kept.append(info)
        return kept, skipped
