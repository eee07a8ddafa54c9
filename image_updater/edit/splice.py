"""The shared machinery of the format-preserving YAML editors: splice, then verify.

An edit never re-serialises a document. The editors locate the nodes to change in the composed node tree
(:mod:`image_updater.edit.nodes`), and a :class:`TextEdit` turns each intended change into a
replacement of a character range (:mod:`image_updater.edit.layout` knows where a node's text is and how to
write new text) *and* into the change it must make to the data. :meth:`TextEdit.apply` splices the
replacements in, parses the result again and compares its data with the original data plus the intended
changes: if anything else differs, the edit is refused with :class:`EditError` and the caller keeps the
old text. Everything the edit does not touch (comments, blank lines, key order, quoting, indentation,
``---``, CRLF, a missing final newline) stays byte for byte, because it is never re-written.

Data is compared at node level (:mod:`~image_updater.edit.compare`): a scalar is its resolved tag and
its text as written (``1.10`` stays ``1.10``), a collection its tag and children.

Editors plan on libyaml's tree of a plain text (:func:`edit_text`), whose marks are ruamel's for every
node they locate; wherever that could not be so (an empty value's marks), the plan is refused on that
tree, and any refusal makes the editor plan again on ruamel.yaml's tree, so that every refusal and its
message are what ruamel's tree gives.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from image_updater.edit.compare import MapData, SeqData, canon_all, data_of, same_but_replaced
from image_updater.edit.fastcompose import fast_documents, plain_documents
from image_updater.edit.layout import (
    Data,
    after_colon,
    content_end,
    is_empty,
    is_scalar,
    line_break_at,
    line_end,
    line_start,
    newline_of,
    render_block_item,
    render_block_pair,
    render_flow,
    render_scalar,
    scalar_span,
)
from image_updater.edit.nodes import (
    STR_TAG,
    AnyNode,
    Map,
    Scalar,
    Seq,
    find_pair,
    from_libyaml,
    is_null,
    line_of,
    parse_documents,
)
from image_updater.errors import EditError

T = TypeVar("T")


def edit_text(text: str, plan: Callable[[list[AnyNode]], T], *, file: str = "") -> T:
    """``plan(documents)``: on libyaml's tree when ``text`` is plain, else (or when the plan raises
    :class:`EditError` on that tree) on ruamel.yaml's, which raises the error to report."""
    documents = plain_documents(text)
    if documents is not None:
        try:
            return plan(documents)
        except EditError:
            pass  # said again, in ruamel's words and lines, or not at all
    return plan(parse_documents(text, file=file))


@dataclass(frozen=True)
class Replacement:
    """Replace ``text[start:end]`` with ``new``; ``start == end`` inserts."""

    start: int
    end: int
    new: str


def splice(text: str, replacements: Iterable[Replacement]) -> str:
    """``text`` with every replacement made; insertions at one offset keep their order. Overlapping
    replacements are an error."""
    ordered = sorted(enumerate(replacements), key=lambda item: (item[1].start, item[1].end > item[1].start, item[0]))
    pieces: list[str] = []
    pos = 0
    for _, replacement in ordered:
        if replacement.start < pos or replacement.end < replacement.start:
            raise EditError(f"overlapping edits at offset {replacement.start}")
        pieces.append(text[pos : replacement.start])
        pieces.append(replacement.new)
        pos = replacement.end
    pieces.append(text[pos:])
    return "".join(pieces)


# -- building an edit ---------------------------------------------------------------------------------

_Op = Callable[[dict[int, object]], None]


class TextEdit:
    """The replacements to make on one text, and the data changes they are meant to make.

    Build it from the text and its parsed documents, call the ``set_value``/``add_pair``/
    ``remove_pair``/``append_item`` methods with nodes of those documents, then :meth:`apply`.
    """

    def __init__(self, text: str, documents: Sequence[AnyNode], *, file: str = "") -> None:
        self.text = text
        self.documents = documents
        self.file = file
        self.newline = newline_of(text)
        self._replacements: list[Replacement] = []
        self._replaced: dict[int, object] = {}
        self._ops: list[_Op] = []
        self._added: dict[tuple[int, str], int] = {}

    @property
    def changed(self) -> bool:
        """Whether any replacement was planned."""
        return bool(self._replacements)

    def has_added(self, mapping: Map, key: str) -> bool:
        """Whether this edit adds ``key`` to ``mapping``."""
        return (id(mapping), key) in self._added

    def _error(self, message: str) -> EditError:
        return EditError(message, path=self.file or None)

    def _pair(self, mapping: Map, key: str) -> tuple[AnyNode, AnyNode]:
        pair = find_pair(mapping, key, file=self.file)
        if pair is None:
            raise self._error(f"no key {key!r} in the mapping at line {line_of(mapping)}")
        return pair

    def _located(self, node: AnyNode) -> AnyNode:
        """``node``, whose start is needed: an empty value's libyaml marks are not ruamel's."""
        if is_empty(node) and from_libyaml(node):
            raise self._error(f"an empty value at line {line_of(node)}: left to ruamel.yaml's marks")
        return node

    def set_value(self, mapping: Map, key: str, value: Data) -> None:
        """Set the value of an existing ``key``: a scalar in place, keeping its quotes; an empty value
        (``key:``) gets ``value`` after the colon; an explicit null is replaced by flow style."""
        key_node, node = self._pair(mapping, key)
        if not isinstance(node, Scalar):
            raise self._error(f"{key!r} at line {line_of(node)} is not a single value")
        if self._planned(node, value, repr(key)):
            return
        if is_empty(node):
            pos = after_colon(self.text, key_node)
            if is_scalar(value) or mapping.flow_style or not value:
                self._replacements.append(Replacement(pos, pos, " " + render_flow(value)))
            else:
                indent = int(key_node.start_mark.column)
                lines = render_block_pair("_", value, indent)[1:]
                self._insert_lines(line_end(self.text, pos), lines)
            return
        self._replace_scalar(node, value)

    def set_item(self, sequence: Seq, index: int, value: str) -> None:
        """Set the scalar item ``index`` of ``sequence`` in place, keeping its quotes."""
        node = sequence.value[index]
        if not isinstance(node, Scalar) or is_empty(node):
            raise self._error(f"item {index} of the list at line {line_of(sequence)} is not a single value")
        if self._planned(node, value, f"item {index}"):
            return
        self._replace_scalar(node, value)

    def _planned(self, node: Scalar, value: Data, what: str) -> bool:
        """Record that ``node`` becomes ``value``; ``True`` when that was planned already."""
        previous = self._replaced.get(id(node))
        if previous is not None:
            if previous != data_of(value):
                raise self._error(f"conflicting edits of {what} at line {line_of(node)}")
            return True
        self._replaced[id(node)] = data_of(value)
        return False

    def _replace_scalar(self, node: Scalar, value: Data) -> None:
        start, end = scalar_span(self.text, node)
        if isinstance(value, str):
            new = render_scalar(value, style=node.style if node.style in ("'", '"') else None)
        else:
            new = render_flow(value)
        self._replacements.append(Replacement(start, end, new))

    def add_pair(self, mapping: Map, key: str, value: Data, *, after: str | None = None) -> None:
        """Add ``key: value`` to ``mapping``: after the pair of ``after`` (a key of the mapping, or one
        added by this edit) when given, else at its end; in the mapping's own style."""
        if find_pair(mapping, key, file=self.file) is not None:
            raise self._error(f"key {key!r} already exists in the mapping at line {line_of(mapping)}")
        first = not mapping.value and not any(added == id(mapping) for added, _ in self._added)
        if mapping.flow_style:
            pos = self._flow_position(mapping, after)
            text = f"{render_scalar(key)}: {render_flow(value)}"
            self._replacements.append(Replacement(pos, pos, text if first else ", " + text))
        else:
            pos = self._block_position(mapping, after)
            indent = int(self._located(mapping.value[0][0]).start_mark.column)
            self._insert_lines(pos, render_block_pair(key, value, indent))
        self._added[(id(mapping), key)] = pos

        def op(memo: dict[int, object]) -> None:
            target = memo[id(mapping)]
            assert isinstance(target, MapData)
            index = len(target.pairs) if after is None else target.index(after) + 1
            target.pairs.insert(index, ((STR_TAG, key), data_of(value)))

        self._ops.append(op)

    def _flow_position(self, mapping: Map, after: str | None) -> int:
        if after is not None and (id(mapping), after) in self._added:
            return self._added[(id(mapping), after)]
        if not mapping.value:
            return int(mapping.end_mark.index) - 1
        key_node, value_node = self._pair(mapping, after) if after else mapping.value[-1]
        return content_end(self.text, value_node, key=key_node)

    def _block_position(self, mapping: Map, after: str | None) -> int:
        if after is not None and (id(mapping), after) in self._added:
            return self._added[(id(mapping), after)]
        key_node, value_node = self._pair(mapping, after) if after else mapping.value[-1]
        end = content_end(self.text, value_node, key=key_node)
        if end <= key_node.start_mark.index:
            raise self._error(f"cannot add after an alias (line {line_of(key_node)})")
        return line_end(self.text, end)

    def remove_pair(self, mapping: Map, key: str) -> None:
        """Remove ``key`` and its value from ``mapping``, with its line when it has one to itself."""
        key_node, value_node = self._pair(mapping, key)
        index = next(i for i, (k, _) in enumerate(mapping.value) if k is key_node)
        assert isinstance(key_node, Scalar)  # find_pair only matches scalar keys
        key_start = scalar_span(self.text, key_node)[0]
        value_end = content_end(self.text, value_node, key=key_node)
        following = mapping.value[index + 1][0] if index + 1 < len(mapping.value) else None
        if mapping.flow_style and index > 0:
            previous_key, previous_value = mapping.value[index - 1]
            start, end = content_end(self.text, previous_value, key=previous_key), value_end
        elif following is not None and (mapping.flow_style or index == 0):
            start, end = key_start, int(self._located(following).start_mark.index)
        elif not mapping.flow_style and index > 0:
            start = line_start(self.text, key_start)
            if self.text[start:key_start].strip():
                raise self._error(f"cannot remove {key!r} at line {line_of(key_node)}")
            end = line_end(self.text, value_end)
            if end == len(self.text):
                start -= len(self.newline) if self.text[:start].endswith(self.newline) else 0
            else:
                end += len(line_break_at(self.text, end))
        else:
            raise self._error(f"cannot remove the only key {key!r} at line {line_of(key_node)}")
        self._replacements.append(Replacement(start, end, ""))

        def op(memo: dict[int, object]) -> None:
            target = memo[id(mapping)]
            assert isinstance(target, MapData)
            del target.pairs[target.index(key)]

        self._ops.append(op)

    def append_item(self, sequence: Seq, item: Data) -> None:
        """Append ``item`` to ``sequence``, laid out like its first item."""
        if sequence.flow_style:
            if sequence.value:
                pos = content_end(self.text, sequence.value[-1])
                self._replacements.append(Replacement(pos, pos, ", " + render_flow(item)))
            else:
                pos = int(sequence.end_mark.index) - 1
                self._replacements.append(Replacement(pos, pos, render_flow(item)))
        else:
            dash, offset = self._dash_layout(sequence)
            end = content_end(self.text, sequence)
            self._insert_lines(line_end(self.text, end), render_block_item(item, dash, offset))

        def op(memo: dict[int, object]) -> None:
            target = memo[id(sequence)]
            assert isinstance(target, SeqData)
            target.items.append(data_of(item))

        self._ops.append(op)

    def _dash_layout(self, sequence: Seq) -> tuple[int, int]:
        """The column of the items' ``-`` and the distance from it to the item's content."""
        first = self._located(sequence.value[0])
        start = int(first.start_mark.index)
        prefix = self.text[line_start(self.text, start) : start]
        stripped = prefix.lstrip(" ")
        if stripped.startswith("-") and not stripped[1:].strip(" ") and len(stripped) >= 2:
            dash = len(prefix) - len(stripped)
            return dash, len(prefix) - dash
        return int(sequence.start_mark.column), 2

    def _insert_lines(self, pos: int, lines: list[str]) -> None:
        """Insert whole lines after the line that ends at ``pos``."""
        block = "".join(self.newline + line for line in lines)
        self._replacements.append(Replacement(pos, pos, block))

    def apply(self) -> str:
        """The edited text, verified: its data is the original data with exactly the intended changes.
        Raises :class:`EditError` (and nothing is written) otherwise. No replacements: the text as is."""
        if not self._replacements:
            return self.text
        new_text = splice(self.text, self._replacements)
        try:
            after = fast_documents(new_text, file=self.file)  # data only: any tree will do
        except EditError as e:
            raise self._error(f"the edit would not parse ({e.message}); file left untouched") from None
        try:
            if self._ops:
                expected, memo = canon_all(self.documents, self._replaced)
                for op in self._ops:
                    op(memo)
                same = expected == canon_all(after, {})[0]
            else:  # values set in place, the usual edit
                same = same_but_replaced(self.documents, after, self._replaced)
        except RecursionError:
            raise self._error("the file nests too deeply to verify an edit; file left untouched") from None
        if not same:
            raise self._error("the edit would change more than the intended values; file left untouched")
        return new_text


def write_new_document(text: str, value: dict[str, Data], *, file: str = "") -> str:
    """``text``, which holds no data (it is empty, or comments and blank lines only), followed by
    ``value`` as a block mapping; verified by parsing it again like any other edit."""
    documents = fast_documents(text, file=file)
    where = file or None
    if any(not is_null(document) for document in documents) or len(documents) > 1:
        raise EditError("the file already holds data; refusing to write a new document into it", path=where)
    newline = newline_of(text)
    lines = [line for key, item in value.items() for line in render_block_pair(key, item, 0)]
    prefix = text if not text or text.endswith(("\n", "\r")) else text + newline
    new_text = prefix + "".join(line + newline for line in lines)
    try:
        after = fast_documents(new_text, file=file)
    except EditError as e:
        raise EditError(f"the new content would not parse ({e.message}); file left untouched", path=where) from None
    if canon_all(after, {})[0] != [data_of(value)]:
        raise EditError("the new content would not read back as written; file left untouched", path=where)
    return new_text
