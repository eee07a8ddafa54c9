"""Where a node's text is, and how new YAML text is written.

What ruamel.yaml's marks are (checked against 0.19 by ``tests/unit/test_edit_layout.py``):

- ``mark.index`` is an offset in characters (code points) into the text as given: a CRLF counts two, a
  byte order mark one, any non-ASCII character one. ``line``/``column`` count CRLF as one line break.
- A node's ``start_mark`` is where its *properties* begin: ``&anchor`` and ``!tag`` are included, so the
  content start is found by skipping them (:func:`scalar_span`).
- An empty value (``key:`` with nothing after it) is a null scalar whose marks both point at the *next*
  token, possibly lines further down; its place is right after the key's ``:`` (:func:`after_colon`).
- A block scalar's ``end_mark`` lies after its trailing line breaks, and a block collection's
  ``end_mark`` at the next token, after the comments and blank lines that follow it; the end of a
  node's own text is therefore taken from its last scalar or flow collection (:func:`content_end`).
- An alias yields the anchored node itself, marks included: editing it edits the anchor.

libyaml's marks (PyYAML's trees, see :mod:`~image_updater.edit.nodes`) are the same for every node an
edit locates, in the texts :func:`~image_updater.edit.fastcompose.plain_documents` accepts (no byte
order mark, which libyaml does not count), except an empty value's: checked by
``tests/unit/test_edit_fasttrees.py``.
"""

from __future__ import annotations

import re

from ruamel.yaml.nodes import ScalarNode
from ruamel.yaml.resolver import VersionedResolver

from image_updater.edit.nodes import NULL_TAG, STR_TAG, AnyNode, Map, Scalar, line_of
from image_updater.errors import EditError

#: the data an edit writes: a string or a boolean, or lists and mappings of them
Data = str | bool | list["Data"] | dict[str, "Data"]

_RESOLVERS = (VersionedResolver(version=(1, 1)), VersionedResolver(version=(1, 2)))
for _resolver in _RESOLVERS:  # ruamel.yaml loads the rules on first use; do it now, not in two threads at once
    _resolver.resolve(ScalarNode, "warm-up", (True, False))
# What go-yaml (kustomize, Kubernetes, Helm) reads as a number where ruamel.yaml does not, e.g. ``08``.
_GO_NUMBER = re.compile(r"^[-+]?(?:\.[0-9]+|[0-9][0-9_]*(?:\.[0-9_]*)?)(?:[eE][-+]?[0-9]+)?$")
_PLAIN_SAFE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:/@+=-]*$")
_REST_OF_LINE = re.compile(r"[ \t]*(?:#[^\r\n]*)?")
_LINE_BREAK = re.compile(r"\r\n|\n|\r")


# -- locating -----------------------------------------------------------------------------------------


def is_empty(node: AnyNode) -> bool:
    """An empty plain null (``key:`` and nothing): its marks point at the next token, not at it."""
    return isinstance(node, Scalar) and node.value == "" and not node.style and node.tag == NULL_TAG


def scalar_span(text: str, node: Scalar) -> tuple[int, int]:
    """Where the content of a non-empty scalar lies: without ``&anchor``/``!tag``, without a block
    scalar's trailing line breaks. Checks that the text there looks like the scalar."""
    start, end = int(node.start_mark.index), int(node.end_mark.index)
    pos = start
    while pos < end and text[pos] in "&!":
        while pos < end and text[pos] not in " \t\r\n":
            pos += 1
        pos = _skip_blank(text, pos, end)
    if node.style in ("|", ">"):
        while end > pos and text[end - 1] in " \t\r\n":
            end -= 1
    source = text[pos:end]
    if node.style in ("'", '"'):
        plausible = len(source) >= 2 and source[0] == source[-1] == node.style
    elif not node.style:
        plausible = source == node.value or (bool(source) and _LINE_BREAK.search(source) is not None)
    else:
        plausible = source[:1] == node.style
    if not plausible:
        raise EditError(f"cannot locate the value at line {line_of(node)}")
    return pos, end


def after_colon(text: str, key: AnyNode) -> int:
    """The offset just after the ``:`` that follows ``key``."""
    end = scalar_span(text, key)[1] if isinstance(key, Scalar) else int(key.end_mark.index)
    pos = _skip_blank(text, end, len(text))
    if pos >= len(text) or text[pos] != ":":
        raise EditError(f"cannot locate the ':' after the key at line {line_of(key)}")
    return pos + 1


def content_end(text: str, node: AnyNode, *, key: AnyNode | None = None) -> int:
    """The offset just after the last character of ``node``'s own text (``key`` is its key, if any)."""
    if isinstance(node, Scalar):
        if is_empty(node):
            if key is None:
                raise EditError(f"cannot locate the empty value at line {line_of(node)}")
            return after_colon(text, key)
        return scalar_span(text, node)[1]
    if node.flow_style:
        return int(node.end_mark.index)
    if isinstance(node, Map):
        last_key, last_value = node.value[-1]
        end = content_end(text, last_value, key=last_key)
    else:
        end = content_end(text, node.value[-1])
    # A collection that ends with an alias would point back at the anchor, before the collection.
    if end <= node.start_mark.index:
        raise EditError(f"cannot add after an alias (line {line_of(node)})")
    return end


def line_end(text: str, pos: int) -> int:
    """The end of the line holding ``pos`` (before its line break), when only blanks or a comment
    follow ``pos`` on that line."""
    match = _REST_OF_LINE.match(text, pos)
    end = match.end() if match else pos
    if end < len(text) and text[end] not in "\r\n":
        raise EditError(f"cannot insert a line after {text[pos : end + 20]!r}: the line goes on")
    return end


def line_start(text: str, pos: int) -> int:
    """The offset where the line holding ``pos`` begins."""
    return max(text.rfind("\n", 0, pos), text.rfind("\r", 0, pos)) + 1


def line_break_at(text: str, pos: int) -> str:
    """The line break that starts at ``pos`` (``""`` at the end of the text)."""
    match = _LINE_BREAK.match(text, pos)
    return match.group(0) if match else ""


def newline_of(text: str) -> str:
    """The line break the text uses (its first one), ``\\n`` for a text with none."""
    match = _LINE_BREAK.search(text)
    return match.group(0) if match else "\n"


def _skip_blank(text: str, pos: int, end: int) -> int:
    """Skip spaces, line breaks and comments."""
    while pos < end:
        char = text[pos]
        if char in " \t\r\n":
            pos += 1
        elif char == "#":
            while pos < end and text[pos] not in "\r\n":
                pos += 1
        else:
            break
    return pos


# -- rendering ----------------------------------------------------------------------------------------


def reads_as_string(value: str) -> bool:
    """Whether ``value`` written plain reads back as the same string in YAML 1.1, YAML 1.2 and go-yaml
    (``1.20``, ``true``, ``yes``, ``null``, ``1e3``, ``0x10``, ``012``, ``08``, ``2024-01-01`` do not)."""
    if not _PLAIN_SAFE.match(value) or value.endswith(":") or _GO_NUMBER.match(value):
        return False
    return all(str(r.resolve(ScalarNode, value, (True, False))) == STR_TAG for r in _RESOLVERS)


def render_scalar(value: str, *, style: str | None = None) -> str:
    """``value`` as YAML text: in the quotes of ``style`` if the old value had quotes, else plain when
    it reads back as the same string, else double-quoted (``1.20`` becomes ``"1.20"``)."""
    if style == "'" and value.isprintable():
        return "'" + value.replace("'", "''") + "'"
    if style != '"' and reads_as_string(value):
        return value
    return '"' + "".join(_escape(char) for char in value) + '"'


def _escape(char: str) -> str:
    if char in '"\\':
        return "\\" + char
    if char.isprintable():
        return char
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def is_scalar(value: Data) -> bool:
    """Whether ``value`` is written as one scalar (a string or a boolean)."""
    return isinstance(value, str | bool)


def render_flow(value: Data) -> str:
    """``value`` in flow style (``{name: x, newTag: "1.20"}``); booleans as ``true``/``false``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return render_scalar(value)
    if isinstance(value, list):
        return "[" + ", ".join(render_flow(item) for item in value) + "]"
    return "{" + ", ".join(f"{render_scalar(k)}: {render_flow(v)}" for k, v in value.items()) + "}"


def render_block_pair(key: str, value: Data, indent: int) -> list[str]:
    """The lines of ``key: value`` in block style at column ``indent``; lists are indentless, as
    kustomize writes them."""
    head = " " * indent + render_scalar(key) + ":"
    if is_scalar(value) or not value:
        return [f"{head} {render_flow(value)}"]
    lines = [head]
    if isinstance(value, dict):
        for k, v in value.items():
            lines += render_block_pair(k, v, indent + 2)
    else:
        assert isinstance(value, list)
        for item in value:
            lines += render_block_item(item, indent, 2)
    return lines


def render_block_item(item: Data, dash: int, offset: int) -> list[str]:
    """The lines of one block list item, its ``-`` at column ``dash`` and its content ``offset``
    columns further right."""
    prefix = " " * dash + "-" + " " * (offset - 1)
    if not isinstance(item, dict) or not item:
        return [prefix + render_flow(item)]
    lines: list[str] = []
    for k, v in item.items():
        lines += render_block_pair(k, v, dash + offset)
    lines[0] = prefix + lines[0][dash + offset :]
    return lines
