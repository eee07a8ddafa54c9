"""What an edit changed: the typed result that commit messages and dry-run output are made from."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Change:
    """One value changed in one file: ``image`` went from ``old`` to ``new``.

    ``old`` and ``new`` are the tag texts (``1.0.0``, or ``1.0.0@sha256:...`` for digests); ``old`` is
    ``None`` when the entry did not exist before.
    """

    image: str
    old: str | None
    new: str
    file: str = ""

    def describe(self) -> str:
        """``image: old -> new``, the form used in commit messages and logs."""
        return f"{self.image}: {self.old or '(none)'} -> {self.new}"


@dataclass(frozen=True)
class EditResult:
    """The new text of a file and the changes that produced it (empty when nothing changed)."""

    text: str
    changes: tuple[Change, ...] = ()

    @property
    def changed(self) -> bool:
        return bool(self.changes)
