"""The data of node trees, for checking that an edit changed exactly what it meant to.

Data is compared at node level: a scalar is its resolved tag and its text as written (``1.10`` stays
``1.10``), a collection its tag and children, in order; trees of either family compare alike. Aliased
nodes are shared, not copied, and the number of nodes compared is bounded by
:data:`~image_updater.edit.nodes.MAX_EXPANDED_NODES`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from image_updater.edit.layout import Data
from image_updater.edit.nodes import BOOL_TAG, MAP_TAG, SEQ_TAG, STR_TAG, AnyNode, Map, Scalar, Seq


@dataclass(eq=True)
class MapData:
    """A mapping's data: its tag and its pairs, in order."""

    tag: str
    pairs: list[tuple[object, object]] = field(default_factory=list)

    def index(self, key: str) -> int:
        """The position of the string key ``key``."""
        return next(i for i, (k, _) in enumerate(self.pairs) if k == (STR_TAG, key))


@dataclass(eq=True)
class SeqData:
    """A list's data: its tag and its items."""

    tag: str
    items: list[object] = field(default_factory=list)


def canon(node: AnyNode, memo: dict[int, object], replaced: dict[int, object]) -> object:
    """The data of ``node`` (``replaced`` gives it for some nodes): scalars as ``(tag, text)``; aliases
    stay shared objects."""
    key = id(node)
    if key in memo:
        return memo[key]
    if key in replaced:
        memo[key] = replaced[key]
    elif isinstance(node, Scalar):
        memo[key] = (str(node.tag), str(node.value))
    elif isinstance(node, Seq):
        seq = memo[key] = SeqData(str(node.tag))
        seq.items.extend(canon(item, memo, replaced) for item in node.value)
    else:
        mapping = memo[key] = MapData(str(node.tag))
        mapping.pairs.extend((canon(k, memo, replaced), canon(v, memo, replaced)) for k, v in node.value)
    return memo[key]


def data_of(value: Data) -> object:
    """Data an edit writes, as :func:`canon` would read it back."""
    if isinstance(value, bool):
        return (BOOL_TAG, "true" if value else "false")
    if isinstance(value, str):
        return (STR_TAG, value)
    if isinstance(value, list):
        return SeqData(SEQ_TAG, [data_of(item) for item in value])
    return MapData(MAP_TAG, [((STR_TAG, k), data_of(v)) for k, v in value.items()])


def canon_all(documents: Sequence[AnyNode], replaced: dict[int, object]) -> tuple[list[object], dict[int, object]]:
    """The data of every document, and the data of each node by its ``id``."""
    memo: dict[int, object] = {}
    return [canon(document, memo, replaced) for document in documents], memo


def same_but_replaced(before: Sequence[AnyNode], after: Sequence[AnyNode], replaced: dict[int, object]) -> bool:
    """Whether ``after`` holds the data of ``before`` with the nodes of ``replaced`` replaced: what
    comparing :func:`canon_all` of both says, found by walking the two trees side by side (no data is
    built). Each pair of collections is walked once: there are at most as many pairs as nodes of
    ``before`` with aliases expanded."""
    if len(before) != len(after):
        return False
    pending = list(zip(before, after, strict=True))
    walked: set[tuple[int, int]] = set()  # pairs of collections (an alias shares one)
    while pending:
        old, new = pending.pop()
        if id(old) in replaced:
            if canon(new, {}, {}) != replaced[id(old)]:
                return False
        elif isinstance(old, Scalar):  # a tag compares with a tag or its text, either family
            if not isinstance(new, Scalar) or old.value != new.value or old.tag != new.tag:
                return False
        elif (id(old), id(new)) not in walked:
            walked.add((id(old), id(new)))
            kind = Seq if isinstance(old, Seq) else Map
            if not isinstance(new, kind) or len(old.value) != len(new.value) or old.tag != new.tag:
                return False
            if kind is Seq:
                pending.extend(zip(old.value, new.value, strict=True))
            else:
                for (old_key, old_value), (new_key, new_value) in zip(old.value, new.value, strict=True):
                    pending.append((old_key, new_key))
                    pending.append((old_value, new_value))
    return True
