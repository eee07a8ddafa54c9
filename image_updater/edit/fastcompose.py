"""Composing YAML for reading, fast: libyaml's parser feeding the node trees the editors know.

Every cycle reads the current tag of every image from its target file, so a cycle over 1,000
Applications composes thousands of files. ruamel.yaml's pure-Python scanner takes 1.5-3 ms for a small
manifest; libyaml (PyYAML's C extension) parses the same text twenty to forty times faster. Its events
are composed here into the trees :func:`~image_updater.edit.nodes.parse_documents` makes: ruamel node
classes, tags resolved by ruamel's YAML 1.2 resolver, one shared node for an anchor and its aliases. A
reader therefore sees the same tree either way; only the marks differ in kind (libyaml's line, column
and index, which is all a reader's error message uses).

An edit still splices text at ruamel's own marks, so only the few files a cycle edits are composed by
ruamel (the check that an edited text holds the intended data reads it back here: it compares data,
not marks). Whenever this path could disagree with ``parse_documents`` (no libyaml, a ``%YAML`` or
``%TAG`` directive, any parse error, nesting deeper than :data:`MAX_DEPTH`, text longer than
:data:`MAX_TEXT_CHARS`), the text is composed by ``parse_documents`` instead, which also words every
error. Composing is iterative, so deep nesting cannot exhaust the stack here either.
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Callable
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from ruamel.yaml.resolver import VersionedResolver
from ruamel.yaml.tag import Tag

from image_updater.edit.nodes import MAX_DEPTH, MAX_TEXT_CHARS, check_expansion, parse_documents
from image_updater.errors import EditError

try:  # PyYAML's C extension: present wherever PyYAML was built with libyaml (its wheels are)
    from yaml import YAMLError, events
    from yaml.cyaml import CParser
except ImportError:  # pragma: no cover - exercised only on a machine without libyaml
    CParser = None

__all__ = ["FAST", "load_all", "read_documents"]

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
