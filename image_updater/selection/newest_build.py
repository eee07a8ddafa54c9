"""The ``newest-build`` strategy (AIU alias ``latest``): the tag whose image was built last.

The order is the ``created`` date of the image config, not when the tag was pushed. For an index (a
multi-arch manifest list) the registry adapter fills in the newest ``created`` among the platforms the
image allows, and marks a tag with no image for them (``TagInfo.problem``), which is skipped here with
that reason. Tags built at the same moment (one image under several tags) are ordered by the tag
name, byte-wise, the greatest last: of ``f33bacd``, ``dev`` and ``latest`` AIU's documented choice is
``latest``, and so is ours.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from image_updater.selection.base import UNREADABLE, Selection, Skipped, TagInfo, count

__all__ = ["NO_CREATED_DATE", "NewestBuildStrategy"]

NO_CREATED_DATE = "the image config has no creation date"
#: problems that say the registry failed to answer for a tag (a fault), not that its image is unsuitable
_READ_FAILURES = ("cannot be read", "no longer has this tag")


class NewestBuildStrategy:
    """Chooses the most recently built image among the tags."""

    name = "newest-build"
    needs_metadata = True

    def select(self, tags: Sequence[TagInfo]) -> Selection:
        """Rank by ``created`` then tag, best last; tags without a usable date are skipped, and those
        the registry failed to serve are named in ``extra[UNREADABLE]``."""
        candidates: list[tuple[datetime, bytes, TagInfo]] = []
        skipped: list[Skipped] = []
        for info in tags:
            if info.problem:
                skipped.append(Skipped(info.tag, info.problem))
            elif info.created is None:
                skipped.append(Skipped(info.tag, NO_CREATED_DATE))
            else:
                candidates.append((info.created, info.tag.encode(), info))
        candidates.sort(key=lambda c: (c[0], c[1]))
        considered = tuple(info.tag for _, _, info in candidates)
        if candidates:
            best = candidates[-1][2]
            when = best.created.isoformat().replace("+00:00", "Z") if best.created else "?"
            reason = f"newest of {count(len(considered), 'image')} by creation date (built {when})"
            digest = best.digest
        else:
            reason = "no tags to choose from"
            if tags:
                reason = f"no tag has a usable creation date ({count(len(tags), 'tag')})"
            digest = None
        unreadable = [i.tag for i in tags if i.problem and any(f in i.problem for f in _READ_FAILURES)]
        return Selection(
            strategy=self.name,
            selected=considered[-1] if considered else None,
            reason=reason,
            considered=considered,
            skipped=tuple(skipped),
            digest=digest,
            extra={UNREADABLE: " ".join(unreadable)} if unreadable else {},
        )

    def would_downgrade(self, current: str, selected: str) -> bool:
        """Never: a running tag missing from the listing has no date to compare with, and a listed one was
        ranked (or, when the registry failed to serve it, is named in ``extra[UNREADABLE]``)."""
        return False

    def __repr__(self) -> str:
        return "NewestBuildStrategy()"
