"""Composing YAML into node trees, bounded, and reading them.

The editors work on ruamel.yaml's node trees (``compose``), never on constructed Python objects: composing
is cheaper, keeps every node's marks (where its text is), and leaves aliases as shared nodes instead of
expanding them.

The work is bounded: text longer than :data:`MAX_TEXT_CHARS` is refused before it is parsed (composing
costs about 4 s per MB here), and nesting deeper than :data:`MAX_DEPTH`, recursive aliases and files that
would expand past :data:`MAX_EXPANDED_NODES` nodes (alias bombs) are refused with :class:`EditError` in
time linear in the size of the text.

Trees come in two families with the same attributes (``tag``, ``value``, ``start_mark``/``end_mark``
with ``index``, ``line`` and ``column``, a scalar's ``style``, a collection's ``flow_style``):
ruamel.yaml's nodes (:func:`parse_documents`, and :mod:`~image_updater.edit.fastcompose` for a text it
composes from libyaml's events) and PyYAML's nodes (libyaml's own composer, which fastcompose uses for
plain texts). Code that takes trees checks kinds with :data:`Scalar`, :data:`Map` and :data:`Seq`,
which stand for either family. Two differences: a tag is a ``Tag`` in one and a ``str`` in the other
(compare with ``==`` or ``str()``), and a plain scalar's ``style`` is ``None`` in one and ``""`` in the
other (test it with ``not node.style``).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml import nodes as pyyaml

from image_updater.errors import EditError

STR_TAG = "tag:yaml.org,2002:str"
NULL_TAG = "tag:yaml.org,2002:null"
BOOL_TAG = "tag:yaml.org,2002:bool"
SEQ_TAG = "tag:yaml.org,2002:seq"
MAP_TAG = "tag:yaml.org,2002:map"

#: deepest nesting accepted (Kubernetes manifests stay far below it)
MAX_DEPTH = 100
#: most nodes a file may hold once aliases are expanded; beyond it the file is an alias bomb
MAX_EXPANDED_NODES = 200_000
#: longest text composed (2 MiB: ten times the largest Helm values files in common charts)
MAX_TEXT_CHARS = 2 << 20

#: a node of either family (see the module docstring); for annotations and ``isinstance``
AnyNode = Node | pyyaml.Node
Scalar = ScalarNode | pyyaml.ScalarNode
Map = MappingNode | pyyaml.MappingNode
Seq = SequenceNode | pyyaml.SequenceNode

_local = threading.local()
_KIND_NAMES = {Map: "a mapping", Seq: "a list", Scalar: "a single value"}


def kind_name(node: AnyNode) -> str:
    """What ``node`` is, in words: "a mapping", "a list" or "a single value"."""
    return next((name for kind, name in _KIND_NAMES.items() if isinstance(node, kind)), "a value")


def from_libyaml(node: AnyNode) -> bool:
    """Whether ``node`` was composed by libyaml's own composer (PyYAML's family)."""
    return isinstance(node, pyyaml.Node)


def parse_documents(text: str, *, file: str = "") -> list[Node]:
    """Compose every document of ``text`` into a node tree (an empty document is a null scalar).

    Raises :class:`EditError` when the text is too long, is not YAML, nests too deep, or expands too far.
    """
    if len(text) > MAX_TEXT_CHARS:
        raise EditError(
            f"refusing to parse {len(text)} characters of YAML (the limit is {MAX_TEXT_CHARS})", path=file or None
        )
    path = file or None
    try:
        yaml = _loader()
        yaml.doc_infos.clear()  # it keeps one entry per call otherwise
        try:
            documents = list(yaml.compose_all(text))
        except BaseException:
            _local.yaml = None  # its composer stopped half-way and would start the next text there
            raise
    except MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        raise EditError(f"not valid YAML: {e.problem or e.context}{where}", path=path) from None
    except YAMLError as e:
        first_line = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise EditError(f"not valid YAML: {first_line}", path=path) from None
    except RecursionError:
        raise EditError("not valid YAML: nested too deeply", path=path) from None
    try:
        check_expansion(documents, file=file)
    except RecursionError:
        raise EditError("not valid YAML: nested too deeply", path=path) from None
    return documents


def _loader() -> YAML:
    """This thread's composer. Making a ``YAML`` object looks for plug-ins on disk, which costs more
    than composing a small file, so each thread keeps one (one object must not compose in two threads
    at once)."""
    yaml: YAML | None = getattr(_local, "yaml", None)
    if yaml is None:
        yaml = _local.yaml = YAML(typ="safe", pure=True)
        yaml.max_depth = MAX_DEPTH
        # Re-defining an anchor is valid YAML; ruamel.yaml would only warn about it.
        yaml.composer.warn_double_anchors = False
    return yaml


def check_expansion(documents: Sequence[AnyNode], *, file: str = "") -> int:
    """The number of nodes of ``documents`` with aliases expanded, counting each shared node once (so
    in linear time); recursive aliases and more than :data:`MAX_EXPANDED_NODES` nodes are errors."""
    sizes: dict[int, int] = {}
    active: set[int] = set()
    path = file or None

    def size(node: AnyNode) -> int:
        key = id(node)
        known = sizes.get(key)
        if known is not None:
            return known
        if isinstance(node, Scalar):
            return 1
        if key in active:
            raise EditError(f"refusing a recursive alias (line {node.start_mark.line + 1})", path=path)
        active.add(key)
        total = 1
        for child in children(node):
            total += size(child)
            if total > MAX_EXPANDED_NODES:
                raise EditError(
                    f"refusing YAML that expands past {MAX_EXPANDED_NODES} nodes (aliases counted expanded)", path=path
                )
        active.discard(key)
        sizes[key] = total
        return total

    total = 0
    for document in documents:
        total += size(document)
        if total > MAX_EXPANDED_NODES:
            raise EditError(
                f"refusing YAML that expands past {MAX_EXPANDED_NODES} nodes (aliases counted expanded)", path=path
            )
    return total


def children(node: AnyNode) -> Iterator[AnyNode]:
    """The direct children of a node: keys and values of a mapping, items of a list."""
    if isinstance(node, Map):
        for key, value in node.value:
            yield key
            yield value
    elif isinstance(node, Seq):
        yield from node.value


def is_null(node: AnyNode | None) -> bool:
    """Whether ``node`` is absent or a null scalar (``~``, ``null``, or nothing at all)."""
    return node is None or (isinstance(node, Scalar) and node.tag == NULL_TAG)


def line_of(node: AnyNode) -> int:
    """The 1-based line where ``node`` starts."""
    return int(node.start_mark.line) + 1


def mapping_documents(documents: Sequence[AnyNode], *, file: str = "") -> Iterator[Map]:
    """The documents that are mappings; empty documents are skipped, any other kind is an error."""
    for number, document in enumerate(documents, start=1):
        if is_null(document):
            continue
        if not isinstance(document, Map):
            kind = kind_name(document)
            raise EditError(f"document {number} (line {line_of(document)}) is {kind}, not a mapping", path=file or None)
        yield document


def find_pair(mapping: Map, key: str, *, file: str = "") -> tuple[AnyNode, AnyNode] | None:
    """The ``(key, value)`` nodes of ``key`` in ``mapping``; a duplicated key is an error."""
    found = None
    for key_node, value_node in mapping.value:
        # the text first: it rules out nearly every pair, and comparing it is the cheapest test
        if key_node.value == key and isinstance(key_node, Scalar) and key_node.tag == STR_TAG:
            if found is not None:
                raise EditError(f"duplicate key {key!r} (line {line_of(key_node)})", path=file or None)
            found = (key_node, value_node)
    return found


def get_value(mapping: Map, key: str, *, file: str = "") -> AnyNode | None:
    """The value node of ``key`` in ``mapping``, or ``None`` when the key is absent."""
    pair = find_pair(mapping, key, file=file)
    return None if pair is None else pair[1]


def expect(node: AnyNode | None, kind: type[AnyNode], what: str, *, file: str = "") -> AnyNode | None:
    """``node`` if it is of ``kind`` (:data:`Scalar`, :data:`Map` or :data:`Seq`), ``None`` if it is null
    or absent; an :class:`EditError` naming ``what`` otherwise."""
    if node is None or is_null(node):
        return None
    if not isinstance(node, kind):
        raise EditError(f"{what} (line {line_of(node)}) is not {_KIND_NAMES[kind]}", path=file or None)
    return node


def scalar_text(node: AnyNode | None, what: str, *, file: str = "") -> str | None:
    """The text of a scalar as written (``1.10`` stays ``1.10``), ``None`` when null or absent."""
    scalar = expect(node, Scalar, what, file=file)
    return None if scalar is None else str(scalar.value)
