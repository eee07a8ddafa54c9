"""The ``digest`` strategy: follow a mutable tag (``latest``, ``stage``) by the digest behind it.

The constraint in ``image-list`` is the tag to track (``nginx:latest``); every other tag is left out
before any registry request. The registry adapter resolves the tag's digest (a ``HEAD`` of the
manifest, its ``Docker-Content-Digest``; for a multi-arch image the index digest, so every node pulls
its own platform) and the strategy writes ``tag@sha256:...``, which pins the running image and still
says which tag it came from. An update happens whenever that text differs from what runs.
"""

from __future__ import annotations

from collections.abc import Sequence

from image_updater.errors import ConstraintError
from image_updater.model.ref import is_valid_tag
from image_updater.selection.base import Selection, Skipped, TagInfo

__all__ = ["DigestStrategy"]


class DigestStrategy:
    """Chooses ``tag@digest`` for the one tracked tag."""

    name = "digest"
    needs_metadata = True

    def __init__(self, tag: str | None) -> None:
        text = (tag or "").strip()
        if not text:
            raise ConstraintError(
                "update-strategy digest needs the tag to track after the image name in image-list (e.g. nginx:latest)"
            )
        if not is_valid_tag(text):
            raise ConstraintError(f"update-strategy digest: {text!r} in image-list is not a valid tag to track")
        self.tag = text

    def select(self, tags: Sequence[TagInfo]) -> Selection:
        """``tag@digest`` when the tracked tag is listed and resolved; otherwise why not."""
        skipped: list[Skipped] = []
        found: TagInfo | None = None
        for info in tags:
            if info.tag != self.tag:
                skipped.append(Skipped(info.tag, f"not the tracked tag {self.tag!r}"))
            elif info.problem:
                skipped.append(Skipped(info.tag, info.problem))
            elif not info.digest:
                skipped.append(Skipped(info.tag, "the registry gave no digest for it"))
            else:
                found = info
        if found is None or found.digest is None:
            problem = next((s.reason for s in skipped if s.tag == self.tag), None)
            reason = (
                f"tag {self.tag!r} cannot be used: {problem}"
                if problem
                else f"tag {self.tag!r} is not in the registry (or not allowed by the filters)"
            )
            return Selection(strategy=self.name, selected=None, reason=reason, skipped=tuple(skipped))
        return Selection(
            strategy=self.name,
            selected=f"{self.tag}@{found.digest}",
            reason=f"tag {self.tag!r} points at {found.digest}",
            considered=(self.tag,),
            skipped=tuple(skipped),
            digest=found.digest,
        )

    def would_downgrade(self, current: str, selected: str) -> bool:
        """Never: a digest has no order, any change is the update."""
        return False

    def __repr__(self) -> str:
        return f"DigestStrategy({self.tag!r})"
