"""Composing YAML fast with libyaml: its own composer for plain texts, its events for the others.

Every cycle reads the current tag of every image from its target file, so a cycle over 1,000
Applications composes thousands of files. ruamel.yaml's pure-Python scanner takes 1.5-3 ms for a small
manifest; libyaml (PyYAML's C extension) parses the same text twenty to forty times faster.

Plain texts, nearly every target file (:func:`plain_documents`), are composed by libyaml's own
composer, in C, into PyYAML's nodes (the other family of :mod:`~image_updater.edit.nodes`), with tags
from ruamel's YAML 1.2 table: half the CPU time of composing libyaml's events in Python below. A text is
plain when nothing in it needs more care: no ``&``, ``*`` or ``!`` anywhere (so no anchor, alias or
tag; a URL's ``&`` costs only speed), no directive, byte order mark or YAML 1.1 line break, at most
:data:`PLAIN_MAX_CHARS` characters (too few to expand past the node limit without aliases), and nesting
that :func:`depth_bound` keeps below :data:`PLAIN_MAX_DEPTH` (libyaml's composer recurses in C, so the
depth is bounded from the text before it runs). Readers take these trees (:func:`fast_documents`), and
so do editors: libyaml's marks are ruamel's for every node an edit locates in a plain text (see
:mod:`~image_updater.edit.layout`), and an edit refused on such a tree is planned again on ruamel's
(:func:`~image_updater.edit.splice.edit_text`).

Other texts are composed from libyaml's events here (:func:`read_documents`) into the trees
:func:`~image_updater.edit.nodes.parse_documents` makes: ruamel node classes, tags resolved by ruamel's
YAML 1.2 resolver, one shared node for an anchor and its aliases; only the marks differ in kind
(libyaml's line, column and index, which is all a reader's error message uses). Editors take ruamel's
own tree of such a text. Whenever this path could disagree with ``parse_documents`` (no libyaml, a
``%YAML`` or ``%TAG`` directive, any parse error, nesting deeper than :data:`MAX_DEPTH`, text longer
than :data:`MAX_TEXT_CHARS`), the text is composed by ``parse_documents`` instead, which also words
every error. Composing is iterative, so deep nesting cannot exhaust the stack here either. A plain text
that does not parse takes the same way.
"""

from __future__ import annotations

import functools
import operator
import re
import threading
from collections.abc import Callable
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from ruamel.yaml.resolver import VersionedResolver
from ruamel.yaml.tag import Tag
from yaml import nodes as pyyaml

from image_updater.edit.nodes import (
    MAP_TAG,
    MAX_DEPTH,
    MAX_EXPANDED_NODES,
    MAX_TEXT_CHARS,
    SEQ_TAG,
    AnyNode,
    check_expansion,
    parse_documents,
)
from image_updater.errors import EditError

try:  # PyYAML's C extension: present wherever PyYAML was built with libyaml (its wheels are)
    from yaml import YAMLError, events
    from yaml.cyaml import CParser
except ImportError:  # pragma: no cover - exercised only on a machine without libyaml
    CParser = None

__all__ = ["FAST", "fast_documents", "load_all", "plain_documents", "read_documents"]

#: whether libyaml is there to use
FAST = CParser is not None
_DIRECTIVE = re.compile(r"^%", re.M)
_RESOLVER = VersionedResolver()
_IMPLICIT: dict[str | None, list[tuple[str, re.Pattern[str]]]] = _RESOLVER.versioned_resolver
_NON_SPECIFIC = (None, "!")
_local = threading.local()


class _Fallback(Exception):
    """This text is for ``parse_documents``."""


def read_documents(text: str, *, file: str = "") -> list[Node]:
    """The documents of ``text`` as node trees, for reading; see the module docstring.

    Raises :class:`EditError` exactly when :func:`parse_documents` would. The trees of one text are
    cached (a file is read once for each of its images), so they must not be changed.
    """
    try:
        return _cached(text, file)
    except RecursionError:
        raise EditError("not valid YAML: nested too deeply", path=file or None) from None


@functools.lru_cache(maxsize=256)
def _cached(text: str, file: str) -> list[Node]:
    if FAST and len(text) <= MAX_TEXT_CHARS and not _DIRECTIVE.search(text):
        try:
            documents = _compose(text)
        except _Fallback:
            pass
        else:
            check_expansion(documents, file=file)
            return documents
    return parse_documents(text, file=file)


def load_all(text: str) -> list[Any]:
    """Every document of ``text`` as Python data, as ``YAML(typ="safe").load_all`` gives it.

    For reading many small manifests (the ``files`` source): the nodes come from libyaml when it can
    compose the text (see the module docstring), and ruamel.yaml's own safe constructor builds the data,
    so the types are ruamel's (YAML 1.2: ``yes`` is a string, ``010`` is ten). Errors are ruamel.yaml's,
    from composing the text again its way.
    """
    if FAST and not _DIRECTIVE.search(text):
        try:
            documents = _compose(text)
        except _Fallback:
            pass
        else:
            return _with_loader(lambda yaml: [yaml.constructor.construct_document(d) for d in documents])
    return _with_loader(lambda yaml: list(yaml.load_all(text)))


def _with_loader(use: Callable[[YAML], list[Any]]) -> list[Any]:
    """``use(loader)`` with this thread's ruamel.yaml loader; a loader that failed half-way is dropped
    (its constructor would remember nodes of the failed text)."""
    try:
        return use(_yaml())
    except BaseException:
        _local.yaml = None
        raise


def _yaml() -> YAML:
    """This thread's ruamel.yaml loader (making one looks for plug-ins on disk, so it is kept)."""
    yaml: YAML | None = getattr(_local, "yaml", None)
    if yaml is None:
        yaml = _local.yaml = YAML(typ="safe", pure=True)
    yaml.doc_infos.clear()  # one entry per load otherwise
    return yaml


@functools.lru_cache(maxsize=4096)
def _scalar_tag(value: str, plain: bool, quoted: bool) -> Tag:
    """The tag ruamel.yaml's YAML 1.2 resolver gives a scalar: the same rules, read from its table once
    (its ``resolve`` looks the YAML version up through raised exceptions for every scalar)."""
    if plain:
        for tag, regexp in _IMPLICIT.get(value[:1], []) + _IMPLICIT.get(None, []):
            if regexp.match(value):
                return Tag(suffix=tag)
    return _RESOLVER.DEFAULT_SCALAR_TAG


def _compose(text: str) -> list[Node]:
    """Compose every document of ``text`` from libyaml's events (iteratively, depth-bounded)."""
    parser: Any = CParser(text)
    documents: list[Node] = []
    anchors: dict[str, Node] = {}
    #: the collections being composed, innermost last; for a mapping, the key waiting for its value
    stack: list[list[Any]] = []
    root: list[Node] = []

    def attach(node: Node) -> None:
        if not stack:
            root.append(node)
            return
        frame = stack[-1]
        if isinstance(frame[0], SequenceNode):
            frame[0].value.append(node)
        elif frame[1] is None:
            frame[1] = node
        else:
            frame[0].value.append((frame[1], node))
            frame[1] = None

    try:
        while True:
            event = parser.get_event()
            kind = type(event)
            if kind is events.ScalarEvent:
                if len(stack) >= MAX_DEPTH:
                    raise _Fallback
                tag = event.tag
                resolved = _scalar_tag(event.value, *event.implicit) if tag in _NON_SPECIFIC else Tag(suffix=tag)
                node: Node = ScalarNode(
                    resolved, event.value, event.start_mark, event.end_mark, style=event.style or None
                )
                if event.anchor is not None:
                    anchors[event.anchor] = node
                attach(node)
            elif kind is events.MappingStartEvent or kind is events.SequenceStartEvent:
                if len(stack) >= MAX_DEPTH:
                    raise _Fallback
                cls = MappingNode if kind is events.MappingStartEvent else SequenceNode
                tag = event.tag
                resolved = _RESOLVER.resolve(cls, None, event.implicit) if tag in _NON_SPECIFIC else Tag(suffix=tag)
                node = cls(resolved, [], event.start_mark, None, flow_style=event.flow_style)
                if event.anchor is not None:
                    anchors[event.anchor] = node
                stack.append([node, None])
            elif kind is events.MappingEndEvent or kind is events.SequenceEndEvent:
                node = stack.pop()[0]
                node.end_mark = event.end_mark
                attach(node)
            elif kind is events.AliasEvent:
                if event.anchor not in anchors:
                    raise _Fallback
                attach(anchors[event.anchor])
            elif kind is events.DocumentStartEvent:
                anchors = {}
                root.clear()
            elif kind is events.DocumentEndEvent:
                documents.extend(root)
                root.clear()
            elif kind is events.StreamEndEvent:
                return documents
    except YAMLError:
        raise _Fallback from None
    finally:
        parser.dispose()


# -- plain texts: libyaml's own composer ------------------------------------------------------------

#: longest plain text: a text without aliases holds about one node per character at most (``?`` alone on
#: each line: a key and a value per two characters), so this one cannot expand past the node limit
PLAIN_MAX_CHARS = MAX_EXPANDED_NODES // 4
#: deepest nesting a plain text may have by :func:`depth_bound`: below :data:`MAX_DEPTH`, with room
PLAIN_MAX_DEPTH = MAX_DEPTH - 10
#: what makes a text not plain, besides a directive and a lone carriage return: an anchor, alias or tag
#: indicator, a byte order mark, the line breaks of YAML 1.1 that are not ``\n`` or ``\r``
_NOT_PLAIN = ("&", "*", "!", "\ufeff", "\x85", "\u2028", "\u2029")
#: the characters a nested block collection may start after, from the start of a line
_PREFIX = "[ \t?:-]"


def depth_bound(text: str) -> int:
    """An upper bound of the nesting depth of any tree ``text`` composes to, from the text alone.

    A block collection starts at the beginning of a line's content or after the ``-``, ``?``, ``:``
    (or ``---``) that begin the line, and one nested in it starts further right, but for a list that is
    a mapping's value at the mapping's column: so each column up to the widest such prefix holds at
    most two levels along a path. A flow collection that is not empty opens with ``[`` or ``{``, and a
    ``[`` may also hold a one-pair mapping without braces. Add the scalar or empty collection at the
    bottom. (Lines start after ``\n`` or ``\r``: a text with other line breaks is not plain.)
    """
    widest = max(len(re.match(f"{_PREFIX}*", line)[0]) for line in re.split(r"\r\n|\r|\n", text))
    return 2 * (widest + 1) + _flow_levels(text) + 1


def _flow_levels(text: str) -> int:
    return 2 * (text.count("[") - text.count("[]")) + text.count("{") - text.count("{}")


@functools.lru_cache(maxsize=128)
def _prefix(width: int) -> tuple[re.Pattern[str], re.Pattern[str]]:
    """Patterns of a first line and of any later line that begin with ``width`` prefix characters."""
    return re.compile(f"{_PREFIX}{{{width}}}"), re.compile(f"\n{_PREFIX}{{{width}}}")


def _shallow(text: str) -> bool:
    """Whether ``depth_bound(text) <= PLAIN_MAX_DEPTH``, found with a few scans of the text."""
    widest = (PLAIN_MAX_DEPTH - 1 - _flow_levels(text)) // 2 - 1  # the widest prefix allowed
    if widest < 0:
        return False
    first, later = _prefix(widest + 1)
    return not (first.match(text) or later.search(text))


def is_plain(text: str) -> bool:
    """Whether ``text`` is plain (see the module docstring): libyaml's composer may compose it."""
    if len(text) > PLAIN_MAX_CHARS or any(char in text for char in _NOT_PLAIN):
        return False
    if text.startswith("%") or "\n%" in text or "\r%" in text:
        return False
    if "\r" in text and text.count("\r") != text.count("\r\n"):
        return False
    return _shallow(text)


@functools.lru_cache(maxsize=8192)
def _resolve(kind: type, value: str | None, implicit: Any) -> str:
    """The tag of a node without one, by :func:`_scalar_tag`'s rules (cached: a C call when known)."""
    if kind is pyyaml.ScalarNode:
        assert value is not None
        return str(_scalar_tag(value, *implicit))
    return MAP_TAG if kind is pyyaml.MappingNode else SEQ_TAG


if FAST:

    class _Composer(CParser):  # type: ignore[misc,valid-type]
        """libyaml's composer with YAML 1.2 tags and no path resolvers (its hooks are C callables)."""

        resolve = staticmethod(_resolve)
        descend_resolver = staticmethod(operator.is_)  # any C function of two arguments, result unused
        ascend_resolver = staticmethod(tuple)  # of none


def plain_documents(text: str) -> list[AnyNode] | None:
    """The documents of ``text`` composed by libyaml's composer when the text is plain (see the module
    docstring) and parses, else ``None``. Cached like :func:`read_documents`; the trees must not be
    changed."""
    return _plain(text) if FAST else None


@functools.lru_cache(maxsize=8)
def _plain(text: str) -> list[AnyNode] | None:
    if not is_plain(text):
        return None
    parser = _Composer(text)
    try:
        documents = []
        while parser.check_node():
            documents.append(parser.get_node())
        return documents
    except YAMLError:
        return None
    finally:
        parser.dispose()


def fast_documents(text: str, *, file: str = "") -> list[AnyNode]:
    """The documents of ``text`` for reading: :func:`plain_documents`, else :func:`read_documents`.

    Raises :class:`EditError` exactly when :func:`parse_documents` would. The trees must not be changed.
    """
    documents = plain_documents(text)
    return read_documents(text, file=file) if documents is None else documents
