"""YAML texts in the layouts people write, for comparing parsers: Hypothesis strategies.

:func:`texts` writes data (:data:`values`, or a document the caller gives) with a layout drawn for every
node: block or flow collections (flow ones sometimes over several lines), indented or indentless lists,
compact ``- key: value`` items and ``- - x`` lists, scalars plain, quoted, in block style (``|``,
``>-``, ``|+``...) or plain over several lines, empty values, comments after values and on lines of their
own at any indentation, blank lines, several documents with ``---`` and ``...``, CRLF, no final newline,
non-ASCII text. Most texts are valid YAML; the few that are not are as useful (both parsers must refuse
them alike).
"""

from __future__ import annotations

import json
import re
from typing import Any

from hypothesis import strategies as st

_PLAIN = re.compile(r"^[A-Za-z0-9_./][A-Za-z0-9_./ é@-]*$")

words = st.text(alphabet="abcxyz019._-/é", min_size=1, max_size=8)
scalars = st.one_of(
    words,
    st.sampled_from(["1.20", "010", "true", "yes", "~", "null", "-1", "1e3", "a b c", "it's", 'say "hi"', ""]),
    st.lists(words, min_size=2, max_size=6).map(" ".join),
    st.lists(words, min_size=2, max_size=3).map("\n".join),
    st.integers(-5, 5),
    st.booleans(),
    st.none(),
)
keys = st.text(alphabet="abkn-_", min_size=1, max_size=6)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, min_size=1, max_size=4) | st.dictionaries(keys, inner, min_size=1, max_size=4),
    max_leaves=14,
)


class _Writer:
    """Writes one text, drawing every layout choice."""

    def __init__(self, draw: st.DrawFn) -> None:
        self.draw = draw
        self.step = draw(st.sampled_from([2, 2, 4]))

    def maybe(self, p: float = 0.25) -> bool:
        return self.draw(st.floats(0, 1)) < p

    def comment(self) -> str:
        return "  # " + self.draw(st.sampled_from(["note", "é: x", "- y", "#", "k: [1]"])) if self.maybe(0.2) else ""

    def between(self, indent: int) -> list[str]:
        """Blank lines and comment lines that may come between two entries."""
        lines: list[str] = []
        if self.maybe(0.15):
            lines.append("")
        if self.maybe(0.15):
            lines.append(" " * self.draw(st.integers(0, indent + 4)) + "# " + self.draw(words))
        return lines

    # -- scalars ------------------------------------------------------------------------------------

    def scalar(self, value: Any, indent: int, *, flow: bool) -> tuple[str, list[str]]:
        """What follows ``key:`` on its line, and the lines after it."""
        if value is None:
            return self.draw(st.sampled_from(["", "~", "null"] if not flow else ["~", "null"])), []
        if isinstance(value, bool | int):
            return str(value).lower(), []
        text = str(value)
        styles = ["single", "double"]
        if _PLAIN.match(text) and not text.endswith(" ") and text == text.strip():
            styles += ["plain", "plain"]
        if (
            not flow
            and text.strip()
            and not text.startswith((" ", "\n"))
            and not any(line.startswith(" ") for line in text.split("\n"))
        ):
            styles += ["literal", "folded"]
        if not flow and " " in text and "plain" in styles:
            styles.append("multiline")
        style = self.draw(st.sampled_from(styles))
        if style == "plain":
            return text, []
        if style == "single":
            return "'" + text.replace("'", "''") + "'", []
        if style == "double":
            return json.dumps(text, ensure_ascii=self.maybe(0.5)), []
        if style == "multiline":
            first, *rest = text.split(" ")
            pad = " " * (indent + self.step)
            return first, [pad + word for word in rest if word] or []
        head = ("|" if style == "literal" else ">") + self.draw(st.sampled_from(["", "-", "+"]))
        pad = " " * (indent + self.step)
        lines = [pad + line if line else "" for line in text.split("\n")]
        if self.maybe(0.3):
            lines.append("")
        return head + self.comment(), lines

    # -- collections --------------------------------------------------------------------------------

    def flow(self, value: Any) -> str:
        if isinstance(value, dict):
            return "{" + ", ".join(f"{k}: {self.flow(v)}" for k, v in value.items()) + "}"
        if isinstance(value, list):
            return "[" + ", ".join(self.flow(v) for v in value) + "]"
        return self.scalar(value, 0, flow=True)[0]

    def value(self, value: Any, indent: int) -> tuple[str, list[str]]:
        """``value`` as the value of a key at column ``indent``."""
        if isinstance(value, dict | list) and value:
            if self.maybe(0.2):
                inline = self.flow(value)
                if self.maybe(0.3) and len(inline) > 2:  # a flow collection over two lines
                    cut = inline.index(",") + 1 if "," in inline else 1
                    return inline[:cut], [" " * (indent + self.step) + inline[cut:].lstrip()]
                return inline + self.comment(), []
            if isinstance(value, dict):
                return self.comment(), self.mapping(value, indent + self.step)
            inner = indent if self.maybe(0.5) else indent + self.step
            return self.comment(), self.sequence(value, inner)
        if isinstance(value, dict | list):
            return ("{}" if isinstance(value, dict) else "[]") + self.comment(), []
        inline, lines = self.scalar(value, indent, flow=False)
        return inline + (self.comment() if not lines else ""), lines

    def mapping(self, mapping: dict[str, Any], indent: int, *, compact: bool = False) -> list[str]:
        """The lines of a block mapping at column ``indent`` (``compact``: its first line goes after a
        ``- ``, so nothing comes before it)."""
        lines: list[str] = []
        for number, (key, item) in enumerate(mapping.items()):
            if number or not compact:
                lines += self.between(indent)
            inline, after = self.value(item, indent)
            written = key if self.maybe(0.8) else json.dumps(key)
            space = " " if inline and not inline.startswith("  #") else ""
            lines.append(" " * indent + f"{written}:{space}{inline}")
            lines += after
        return lines

    def sequence(self, sequence: list[Any], indent: int, *, compact: bool = False) -> list[str]:
        """The lines of a block list whose ``-`` are at column ``indent``."""
        lines: list[str] = []
        for number, item in enumerate(sequence):
            if number or not compact:
                lines += self.between(indent)
            pad = " " * indent + "- "
            if isinstance(item, dict) and item and self.maybe(0.7):  # - key: value
                first, *rest = self.mapping(item, indent + 2, compact=True)
                lines += [pad + first[indent + 2 :], *rest]
            elif isinstance(item, list) and item and self.maybe(0.3):  # - - x
                first, *rest = self.sequence(item, indent + 2, compact=True)
                lines += [pad + first[indent + 2 :], *rest]
            else:
                inline, after = self.value(item, indent)
                lines.append(pad + inline if inline and not inline.startswith("  #") else pad.rstrip() + inline)
                lines += after
        return lines


@st.composite
def texts(draw: st.DrawFn, documents: st.SearchStrategy[Any] | None = None) -> str:
    """A YAML text of one to three documents (mappings, mostly) in a drawn layout."""
    strategy = documents if documents is not None else st.dictionaries(keys, values, min_size=1, max_size=5)
    count = draw(st.integers(1, 3)) if documents is None else 1
    writer = _Writer(draw)
    lines: list[str] = []
    if writer.maybe(0.3):
        lines.append("# " + draw(words))
    for number in range(count):
        if number or writer.maybe(0.3):
            lines.append("---" + (" # doc" if writer.maybe(0.2) else ""))
        document = draw(strategy)
        if isinstance(document, dict):
            lines += writer.mapping(document, 0)
        elif isinstance(document, list):
            lines += writer.sequence(document, draw(st.sampled_from([0, 2])))
        else:
            lines.append(writer.scalar(document, 0, flow=False)[0])
        if writer.maybe(0.1):
            lines.append("...")
    newline = "\r\n" if writer.maybe(0.15) else "\n"
    text = newline.join(lines)
    return text if writer.maybe(0.1) else text + newline
