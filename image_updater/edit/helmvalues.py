"""Reading and setting image tags in Helm values files, format-preserving.

Where the image is: ``helm.image-spec`` names one key that holds ``name:tag``; otherwise
``helm.image-name`` and ``helm.image-tag`` (AIU's defaults ``image.name`` and ``image.tag``) name the
keys of the repository and of the tag. A key is a dotted path with list indexes
(``workers[1].image.tag``); as in AIU, a key written literally at the top level (``image.tag: 1.0``) is
used before the nested path.

Writing: the tag key gets the new tag text (``1.2.0`` or ``1.2.0@sha256:...``); the spec key gets
``name:tag``, keeping the name as written when it already names the image; the name key is left alone
when it names the image already (``nginx`` is ``docker.io/library/nginx``) and set to the image as
written in ``image-list`` when it names another. Missing keys are created, nested, at the end of their
parent mapping (AIU creates them too), except a name key the user did not name: a chart that keeps its
image in ``image.repository`` must not grow AIU's default ``image.name``. A missing list item is an
error. A value reached through an alias is edited at its anchor, so every place that shares it changes
with it, as Helm would read it. Only the keys named are touched: the same image elsewhere in the file
stays as it is.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from image_updater.edit.fastcompose import fast_documents
from image_updater.edit.layout import Data
from image_updater.edit.nodes import (
    AnyNode,
    Map,
    Scalar,
    Seq,
    expect,
    find_pair,
    is_null,
    line_of,
    mapping_documents,
)
from image_updater.edit.splice import TextEdit, edit_text, write_new_document
from image_updater.edit.tags import split_new_tag, tag_text
from image_updater.errors import EditError
from image_updater.model.changes import Change, EditResult
from image_updater.model.ref import ImageName, same_image, split_name_suffix

DEFAULT_NAME_KEY = "image.name"
DEFAULT_TAG_KEY = "image.tag"
_PART = re.compile(r"^([^\[\]]+)((?:\[[0-9]+\])*)$")


@dataclass(frozen=True)
class HelmKeys:
    """The values keys of one image: ``spec`` alone, or ``name`` and ``tag``.

    ``create_name`` says whether a missing name key is created (the user named the key).
    """

    name: str | None = DEFAULT_NAME_KEY
    tag: str | None = DEFAULT_TAG_KEY
    spec: str | None = None
    create_name: bool = False

    @classmethod
    def of(cls, *, spec: str | None, name: str | None, tag: str | None) -> HelmKeys:
        """The keys the ``helm.image-*`` annotations name, with AIU's defaults."""
        if spec:
            return cls(name=None, tag=None, spec=spec)
        return cls(name=name or DEFAULT_NAME_KEY, tag=tag or DEFAULT_TAG_KEY, create_name=bool(name))


def parse_key(key: str) -> list[str | int]:
    """``a.b[0].c`` -> ``["a", "b", 0, "c"]``; a malformed key is an :class:`EditError`."""
    parts: list[str | int] = []
    for piece in key.split("."):
        match = _PART.match(piece)
        if not match:
            raise EditError(f"invalid Helm values key {key!r}: use dotted names with list indexes like a.b[0].c")
        parts.append(match.group(1))
        parts.extend(int(index) for index in re.findall(r"\[([0-9]+)\]", match.group(2)))
    return parts


@dataclass(frozen=True)
class _Slot:
    """Where one value goes: an existing scalar (``node``), or ``create`` keys below ``key`` of
    ``container`` (``key`` itself is missing, or holds null when ``exists``)."""

    container: Map | Seq
    key: str | int
    node: Scalar | None
    create: tuple[str, ...] = ()
    exists: bool = True


def _locate(root: Map, key: str, file: str) -> _Slot:
    """The slot of ``key`` in ``root``: the literal top-level key first, then the nested path."""
    if ("." in key or "[" in key) and find_pair(root, key, file=file) is not None:
        return _existing(root, key, file, key)
    parts = parse_key(key)
    container: Map | Seq = root
    for position, part in enumerate(parts):
        last = position == len(parts) - 1
        rest = parts[position + 1 :]
        if isinstance(part, int):
            if not isinstance(container, Seq):
                raise EditError(f"{key}: [{part}] indexes something that is not a list", path=file or None)
            if part >= len(container.value):
                raise EditError(f"{key}: the list at line {line_of(container)} has no item {part}", path=file or None)
            node: AnyNode = container.value[part]
        else:
            assert isinstance(container, Map)
            pair = find_pair(container, part, file=file)
            if pair is None:
                return _missing(container, part, rest, key, file, exists=False)
            node = pair[1]
        if last:
            return _existing(container, part, file, key, node)
        if is_null(node):
            if isinstance(part, int):
                raise EditError(f"{key}: item {part} of the list is empty", path=file or None)
            return _missing(container, part, rest, key, file, exists=True)
        following = rest[0]
        kind = Seq if isinstance(following, int) else Map
        what = f"{key}: the value at {part!r}"
        checked = expect(node, kind, what, file=file)
        assert isinstance(checked, Map | Seq)
        container = checked
    raise AssertionError("unreachable")


def _existing(container: Map | Seq, part: str | int, file: str, key: str, node: AnyNode | None = None) -> _Slot:
    if node is None:
        assert isinstance(container, Map) and isinstance(part, str)
        pair = find_pair(container, part, file=file)
        assert pair is not None
        node = pair[1]
    if not isinstance(node, Scalar):
        raise EditError(f"{key} (line {line_of(node)}) is not a single value", path=file or None)
    return _Slot(container, part, node)


def _missing(container: Map, part: str | int, rest: Sequence[str | int], key: str, file: str, *, exists: bool) -> _Slot:
    if any(isinstance(p, int) for p in rest):
        raise EditError(f"{key}: cannot create a list item that does not exist", path=file or None)
    return _Slot(container, part, None, tuple(str(p) for p in rest), exists)


def _root(documents: Sequence[AnyNode], file: str) -> Map | None:
    roots = list(mapping_documents(documents, file=file))
    if len(roots) > 1:
        raise EditError("a Helm values file holds one document, this one holds several", path=file or None)
    return roots[0] if roots else None


def _read(root: Map | None, key: str, file: str) -> str | None:
    if root is None:
        return None
    slot = _locate(root, key, file)
    if slot.node is None or is_null(slot.node):
        return None
    return str(slot.node.value)


def read_helm_tag(text: str, image: ImageName, keys: HelmKeys, *, file: str = "") -> str | None:
    """The tag text the values hold for ``image``: the tag key's value, or the tag part of the spec
    key's value when it names ``image``; ``None`` when there is none.

    Raises :class:`EditError` for a file that does not parse or a key whose shape is wrong.
    """
    root = _root(fast_documents(text, file=file), file)
    if keys.spec:
        spec = _read(root, keys.spec, file)
        if spec is None:
            return None
        name, tag, digest = split_name_suffix(spec)
        return tag_text(tag, digest) if same_image(name, image) else None
    assert keys.tag is not None
    return _read(root, keys.tag, file)


def edit_helm_values(
    text: str,
    image: ImageName,
    new_tag: str,
    *,
    keys: HelmKeys,
    image_label: str,
    image_text: str | None = None,
    file: str = "",
) -> EditResult:
    """Set ``image`` to ``new_tag`` at the keys of ``keys`` (see the module docstring).

    ``image_text`` is the image as written in ``image-list`` (default ``image_label``), written where a
    key names another image or none. An empty file gets a new document. Raises :class:`EditError` (and
    nothing is written) for a file that does not parse, a key of the wrong shape, or an edit that would
    change anything else.
    """
    split_new_tag(new_tag)
    written = image_text or image_label

    def plan(documents: list[AnyNode]) -> EditResult:
        root = _root(documents, file)
        writes: list[tuple[str, str]] = []
        if keys.spec:
            current = _read(root, keys.spec, file)
            name, tag, digest = split_name_suffix(current or "")
            if current is not None and same_image(name, image):
                old = tag_text(tag, digest)
                writes.append((keys.spec, f"{name}:{new_tag}"))
            else:
                old = None
                writes.append((keys.spec, f"{written}:{new_tag}"))
        else:
            assert keys.tag is not None and keys.name is not None
            old = _read(root, keys.tag, file)
            writes.append((keys.tag, new_tag))
            current_name = _read(root, keys.name, file)
            if (current_name is None and keys.create_name) or (
                current_name is not None and not same_image(current_name, image)
            ):
                writes.insert(0, (keys.name, written))
        if old == new_tag:
            return EditResult(text=text)
        change = Change(image=image_label, old=old, new=new_tag, file=file)
        if root is None:
            tree: dict[str, Data] = {}
            for key, value in writes:
                _merge(tree, [str(p) for p in parse_key(key)], value, key, file)
            return EditResult(text=write_new_document(text, tree, file=file), changes=(change,))
        edit = TextEdit(text, documents, file=file)
        _apply(edit, root, writes, file)
        return EditResult(text=edit.apply(), changes=(change,))

    return edit_text(text, plan, file=file)


def _apply(edit: TextEdit, root: Map, writes: list[tuple[str, str]], file: str) -> None:
    """Plan every write: existing scalars in place, missing keys grouped per parent mapping."""
    created: dict[tuple[int, str | int], tuple[_Slot, dict[str, Data]]] = {}
    plain: dict[tuple[int, str | int], tuple[_Slot, str]] = {}
    for key, value in writes:
        slot = _locate(root, key, file)
        if slot.node is not None:
            if isinstance(slot.container, Seq):
                assert isinstance(slot.key, int)
                edit.set_item(slot.container, slot.key, value)
            else:
                assert isinstance(slot.key, str)
                edit.set_value(slot.container, slot.key, value)
        elif not slot.create:
            plain[(id(slot.container), slot.key)] = (slot, value)
        else:
            _, tree = created.setdefault((id(slot.container), slot.key), (slot, {}))
            _merge(tree, list(slot.create), value, key, file)
    for slot, item in [*plain.values(), *created.values()]:
        assert isinstance(slot.container, Map) and isinstance(slot.key, str)
        if slot.exists:
            edit.set_value(slot.container, slot.key, item)
        else:
            edit.add_pair(slot.container, slot.key, item)


def _merge(tree: dict[str, Data], path: list[str], value: str, key: str, file: str) -> None:
    """Put ``value`` at ``path`` in a tree of new mappings."""
    node = tree
    for part in path[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise EditError(f"{key}: {part!r} would be both a value and a mapping", path=file or None)
        node = child
    if path[-1] in node and node[path[-1]] != value:
        raise EditError(f"{key}: two different values for one key", path=file or None)
    node[path[-1]] = value
