"""``tag-extract``: the value a strategy compares, taken from the tag by the ``allow-tags`` regexp.

This is Flux's ``filterTags.extract``. The template follows Go's ``Regexp.Expand``: ``$1`` or ``${1}``
is a numbered group, ``$name`` or ``${name}`` a named one (``(?P<name>...)``), ``$$`` a literal ``$``;
in the bare form the name is as long as possible (``$1x`` is ``${1x}``), and a ``$`` not followed by a
name is copied as it is. With tags ``main-3f2a9c1-1718000000`` and
``allow-tags: regexp:^main-[0-9a-f]+-(?P<ts>[0-9]+)$``, ``tag-extract: $ts`` with the ``numerical``
strategy picks the highest timestamp and writes the whole tag.

Unlike Go (and Flux), a reference to a group the regexp does not have is an error when the selector is
built, not an empty string at every tag.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from image_updater.errors import ConstraintError
from image_updater.selection.base import Listing, Skipped, TagInfo, derived

TAG_EXTRACT = "tag-extract"

#: a piece of a parsed template: literal text, or a group reference (int index or str name)
Piece = str | int | tuple[str]

# Go takes Unicode letters, digits and "_" for a name; only an ASCII-digit name is a group number.
_NAME = re.compile(r"\w+")


@dataclass(frozen=True)
class TagExtractor:
    """Applies a ``tag-extract`` template to each tag's ``allow-tags`` match."""

    pattern: re.Pattern[str]
    template: str
    pieces: tuple[Piece, ...]

    @classmethod
    def build(cls, template: str, pattern: re.Pattern[str] | None) -> TagExtractor:
        """Check the template against the regexp; raise :class:`ConstraintError` naming ``tag-extract``."""
        if pattern is None:
            raise ConstraintError(f"{TAG_EXTRACT} {template!r} needs an allow-tags 'regexp:' whose groups it refers to")
        pieces = parse_template(template)
        refs = [p for p in pieces if not isinstance(p, str)]
        if not refs:
            raise ConstraintError(f"{TAG_EXTRACT} {template!r} refers to no group ($1, $name) of the allow-tags regexp")
        for ref in refs:
            if isinstance(ref, int):
                if ref > pattern.groups:
                    raise ConstraintError(
                        f"{TAG_EXTRACT} {template!r}: the allow-tags regexp has no group {ref} "
                        f"(it has {pattern.groups})"
                    )
            elif ref[0] not in pattern.groupindex:
                known = ", ".join(sorted(pattern.groupindex)) or "none"
                raise ConstraintError(
                    f"{TAG_EXTRACT} {template!r}: the allow-tags regexp has no group named {ref[0]!r} "
                    f"(named groups: {known})"
                )
        return cls(pattern=pattern, template=template, pieces=tuple(pieces))

    def value(self, tag: str) -> str | None:
        """The extracted value of ``tag``; ``None`` when the regexp does not match or the value is empty."""
        match = self.pattern.search(tag)
        if match is None:
            return None
        parts: list[str] = []
        for piece in self.pieces:
            if isinstance(piece, str):
                parts.append(piece)
            else:
                group = match.group(piece if isinstance(piece, int) else piece[0])
                parts.append(group or "")
        return "".join(parts) or None

    def apply(self, tags: Sequence[TagInfo]) -> tuple[Listing, tuple[Skipped, ...]]:
        """Each tag with its extracted value; tags that give no value are skipped with the reason (once per
        listing and template, see :func:`~image_updater.selection.base.derived`)."""
        return derived(tags, ("extract", self), lambda: self._apply(tags))

    def _apply(self, tags: Sequence[TagInfo]) -> tuple[Listing, tuple[Skipped, ...]]:
        kept = Listing()
        skipped: list[Skipped] = []
        for info in tags:
            extracted = self.value(info.tag)
            if extracted is None:
                skipped.append(Skipped(info.tag, f"{TAG_EXTRACT} {self.template!r} gives an empty value"))
            else:
                kept.append(info._replace(value=extracted))
        return kept, tuple(skipped)


def parse_template(template: str) -> list[Piece]:
    """Split a Go ``Expand`` template into literal text and group references."""
    pieces: list[Piece] = []
    literal: list[str] = []
    i = 0
    while i < len(template):
        char = template[i]
        if char != "$":
            literal.append(char)
            i += 1
            continue
        if template.startswith("$$", i):
            literal.append("$")
            i += 2
            continue
        name, end = _reference(template, i + 1)
        if name is None:
            literal.append("$")  # malformed: Go copies the $ as it is
            i += 1
            continue
        if literal:
            pieces.append("".join(literal))
            literal = []
        pieces.append(int(name) if name.isascii() and name.isdigit() else (name,))
        i = end
    if literal:
        pieces.append("".join(literal))
    return pieces


def _reference(template: str, i: int) -> tuple[str | None, int]:
    """The group name after a ``$`` at ``i`` (bare or in braces) and where it ends."""
    if template.startswith("{", i):
        close = template.find("}", i + 1)
        name = template[i + 1 : close] if close >= 0 else ""
        if close < 0 or not _NAME.fullmatch(name):
            return None, i
        return name, close + 1
    match = _NAME.match(template, i)
    if match is None:
        return None, i
    return match.group(0), match.end()
