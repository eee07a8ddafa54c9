"""The ``alphabetical`` strategy (AIU alias ``name``): the tag that sorts last, byte by byte.

Made for sortable schemes such as calendar versions (``2024.06.01``, ``2024-06-01-1``). The order is the
bytes of the tag (of the extracted value with ``tag-extract``), as Go's ``sort.Strings`` orders them
in AIU: ``B`` sorts before ``a`` and ``10`` before ``9``. Two tags with the same extracted value are
ordered by the tag itself, so the choice never depends on the registry's listing order.
"""

from __future__ import annotations

from collections.abc import Sequence

from image_updater.selection.base import Selection, TagInfo, count, derived

__all__ = ["AlphabeticalStrategy"]


class AlphabeticalStrategy:
    """Chooses the tag whose text (or extracted value) is greatest byte-wise."""

    name = "alphabetical"
    needs_metadata = False

    def select(self, tags: Sequence[TagInfo]) -> Selection:
        """Every tag is a candidate; best last (ranked once per listing)."""
        considered = derived(tags, "alphabetical", lambda: tuple(info.tag for info in sorted(tags, key=_sort_key)))
        if considered:
            reason = f"last of {count(len(considered), 'tag')} in byte-wise order"
        else:
            reason = "no tags to choose from"
        return Selection(
            strategy=self.name,
            selected=considered[-1] if considered else None,
            reason=reason,
            considered=considered,
        )

    def would_downgrade(self, current: str, selected: str) -> bool:
        """True when the running tag (already filtered as acceptable) sorts after ``selected``."""
        return current.encode() > selected.encode()

    def __repr__(self) -> str:
        return "AlphabeticalStrategy()"


def _sort_key(info: TagInfo) -> tuple[str, str]:
    # Python orders text by code point, which is the order of its UTF-8 bytes: no need to encode.
    return info.key, info.tag
