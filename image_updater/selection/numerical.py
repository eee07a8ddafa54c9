"""The ``numerical`` strategy (Flux's numerical policy): the tag that reads as the highest number.

For CI build numbers (``1042``) and timestamps (``1718000000``, ``20240601123000``), usually with
``tag-extract`` to take the number out of a longer tag. A number is an optional sign, digits with an
optional fraction, and an optional exponent (``42``, ``-3``, ``1.5``, ``2e3``), compared exactly as a
decimal: unlike Flux's float64, two 20-digit timestamps that differ in the last digit never tie.
Anything else (``v1``, ``1.2.3``, ``0x1f``, ``inf``) is skipped with a reason, where Flux fails the
whole policy. Equal numbers (``7`` and ``007``) are ordered by their text, the greatest last.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation

from image_updater.selection.base import Selection, Skipped, TagInfo, count, derived

__all__ = ["NOT_A_NUMBER", "NumericalStrategy", "parse_number"]

NOT_A_NUMBER = "not a number"
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def parse_number(text: str) -> Decimal | None:
    """The value of ``text`` as an exact decimal, or ``None`` when it is not a plain number."""
    if not _NUMBER.fullmatch(text):
        return None
    try:
        value = Decimal(text)
    except InvalidOperation:
        return None
    return value if value.is_finite() else None


class NumericalStrategy:
    """Chooses the tag (or extracted value) with the highest numeric value."""

    name = "numerical"
    needs_metadata = False

    def select(self, tags: Sequence[TagInfo]) -> Selection:
        """Numbers ranked ascending, best last; non-numbers skipped (once per listing)."""
        return derived(tags, "numerical", lambda: self._select(tags))

    def _select(self, tags: Sequence[TagInfo]) -> Selection:
        candidates: list[tuple[Decimal, bytes, str]] = []
        skipped: list[Skipped] = []
        for info in tags:
            number = parse_number(info.key)
            if number is None:
                skipped.append(Skipped(info.tag, NOT_A_NUMBER))
            else:
                candidates.append((number, info.key.encode(), info.tag))
        candidates.sort()
        considered = tuple(tag for _, _, tag in candidates)
        if considered:
            reason = f"highest of {count(len(considered), 'number')}"
        elif tags:
            reason = f"no tag is a number ({count(len(tags), 'tag')})"
        else:
            reason = "no tags to choose from"
        return Selection(
            strategy=self.name,
            selected=considered[-1] if considered else None,
            reason=reason,
            considered=considered,
            skipped=tuple(skipped),
        )

    def would_downgrade(self, current: str, selected: str) -> bool:
        """True when the running value is a number above the selected one."""
        now, chosen = parse_number(current), parse_number(selected)
        return now is not None and chosen is not None and now > chosen

    def __repr__(self) -> str:
        return "NumericalStrategy()"
