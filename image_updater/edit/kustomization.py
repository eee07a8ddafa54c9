"""Reading and setting image tags in a kustomization (``images:`` entries), format-preserving.

An entry is ``{name, newName, newTag, digest}``; ``name`` says which image it rewrites. It matches the
image when ``name`` denotes the same repository (``nginx`` is ``docker.io/library/nginx``), or when its
``newName`` does (a placeholder name renamed to the image: AIU would append a duplicate entry there);
with a ``kustomize.image-name``, it matches when ``name`` is exactly that text. Every matching entry of
every document is edited in place, keeping its other fields; an image without an entry gets one,
appended once to the first ``images:`` list (or to a new ``images:`` block at the end of the first
document).

``newName``: an entry matched by its own name keeps its ``newName`` as written (a mirror stays a
mirror). With a ``kustomize.image-name``, the entry renames that name to the tracked image, as AIU's
``name=image:tag`` override does: a missing ``newName`` is added after ``name``, and one that denotes
another image is set to the tracked image; one that already denotes it stays as written.

Digests: the current tag text of an entry is ``newTag``, ``newTag@digest`` when it has a ``digest``, or
``@digest`` with a digest alone. Writing ``tag@sha256:...`` sets ``newTag`` and ``digest``; writing a
plain tag removes a stale ``digest`` (kustomize would otherwise keep pinning the old image).

Reading skips parsing a file in which the image's last path component (or the ``kustomize.image-name``)
does not occur. Editing cannot: an image without an entry gets one, so the file is always parsed.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from image_updater.edit.fastcompose import fast_documents
from image_updater.edit.layout import Data
from image_updater.edit.nodes import (
    AnyNode,
    Map,
    Seq,
    expect,
    find_pair,
    get_value,
    is_null,
    mapping_documents,
    scalar_text,
)
from image_updater.edit.splice import TextEdit, edit_text
from image_updater.edit.tags import mentions, split_new_tag, tag_text
from image_updater.errors import EditError
from image_updater.model.changes import Change, EditResult
from image_updater.model.ref import ImageName, same_image


def read_kustomization_tag(text: str, image: ImageName, *, kustomize_name: str | None = None) -> str | None:
    """The current tag text of the first ``images:`` entry for ``image``; ``None`` when there is no
    such entry or it sets no tag.

    A file that cannot mention the image is not parsed. Raises :class:`EditError` for a file that does
    not parse or whose ``images:`` is not a list of mappings with a ``name``.
    """
    if not mentions(text, kustomize_name or image):
        return None
    documents = fast_documents(text)
    for _, entry in _matching_entries(documents, image, kustomize_name, ""):
        return _entry_tag(entry, "")
    return None


def edit_kustomization(
    text: str,
    image: ImageName,
    new_tag: str,
    *,
    image_label: str,
    kustomize_name: str | None = None,
    new_name: str | None = None,
    file: str = "",
) -> EditResult:
    """Set the tag of ``image`` to ``new_tag`` (``tag`` or ``tag@sha256:...``) in a kustomization.

    Matching entries keep every other field; a missing ``newTag`` is added after ``name``. With no
    matching entry, one is added named ``kustomize_name`` or else ``image_label``. With a
    ``kustomize_name``, ``new_name`` (the tracked image as written; default ``image_label``) is the
    ``newName`` the entry must have (see the module docstring). The changes name ``image_label``, one
    per distinct old tag text; an entry already at ``new_tag`` is no change.
    Raises :class:`EditError` (and nothing is written) for a file that does not parse, a wrong shape,
    or an edit that would change anything else.
    """
    tag, digest = split_new_tag(new_tag)
    rename = None
    if kustomize_name is not None and not same_image(kustomize_name, image):
        rename = new_name or image_label

    def plan(documents: list[AnyNode]) -> EditResult:
        edit = TextEdit(text, documents, file=file)
        changes: dict[str | None, Change] = {}
        matched = False
        for _, entry in _matching_entries(documents, image, kustomize_name, file):
            matched = True
            old = _entry_tag(entry, file)
            if old == new_tag:
                continue
            if rename is not None:
                _set_new_name(edit, entry, rename, image, file)
            _set_entry(edit, entry, tag, digest, file)
            changes.setdefault(old, Change(image=image_label, old=old, new=new_tag, file=file))
        if not matched:
            item: dict[str, Data] = {"name": kustomize_name or image_label}
            if rename is not None:
                item["newName"] = rename
            item["newTag"] = tag
            if digest:
                item["digest"] = digest
            _add_entry(edit, documents, item, file)
            changes[None] = Change(image=image_label, old=None, new=new_tag, file=file)
        return EditResult(text=edit.apply(), changes=tuple(changes.values()))

    return edit_text(text, plan, file=file)


def _images(document: Map, file: str) -> Seq | None:
    node = expect(get_value(document, "images", file=file), Seq, "images", file=file)
    assert node is None or isinstance(node, Seq)
    return node


def _entries(documents: Sequence[AnyNode], file: str) -> Iterator[tuple[str, Map]]:
    """Every ``images:`` entry of every document, with its ``name``."""
    for document in mapping_documents(documents, file=file):
        images = _images(document, file)
        for item in images.value if images is not None else ():
            entry = expect(item, Map, "an images entry", file=file)
            if entry is None:
                raise EditError(f"an images entry (line {item.start_mark.line + 1}) is empty", path=file or None)
            assert isinstance(entry, Map)
            name = scalar_text(get_value(entry, "name", file=file), "an images entry's name", file=file)
            if not name:
                raise EditError(f"the images entry at line {entry.start_mark.line + 1} has no name", path=file or None)
            yield name, entry


def _matching_entries(
    documents: Sequence[AnyNode], image: ImageName, kustomize_name: str | None, file: str
) -> Iterator[tuple[str, Map]]:
    for name, entry in _entries(documents, file):
        if kustomize_name is not None:
            matches = name == kustomize_name
        else:
            new_name = scalar_text(get_value(entry, "newName", file=file), "newName", file=file)
            matches = same_image(name, image) or (new_name is not None and same_image(new_name, image))
        if matches:
            yield name, entry


def _set_new_name(edit: TextEdit, entry: Map, new_name: str, image: ImageName, file: str) -> None:
    pair = find_pair(entry, "newName", file=file)
    if pair is None:
        edit.add_pair(entry, "newName", new_name, after="name")
    elif not same_image(scalar_text(pair[1], "newName", file=file) or "", image):
        edit.set_value(entry, "newName", new_name)


def _entry_tag(entry: Map, file: str) -> str | None:
    tag = scalar_text(get_value(entry, "newTag", file=file), "newTag", file=file)
    digest = scalar_text(get_value(entry, "digest", file=file), "digest", file=file)
    return tag_text(tag, digest)


def _set_entry(edit: TextEdit, entry: Map, tag: str, digest: str | None, file: str) -> None:
    if find_pair(entry, "newTag", file=file) is None:
        after = "newName" if edit.has_added(entry, "newName") else "name"
        edit.add_pair(entry, "newTag", tag, after=after)
    elif scalar_text(get_value(entry, "newTag", file=file), "newTag", file=file) != tag:
        edit.set_value(entry, "newTag", tag)
    old_digest = find_pair(entry, "digest", file=file)
    if digest is None:
        if old_digest is not None:
            edit.remove_pair(entry, "digest")
    elif old_digest is None:
        edit.add_pair(entry, "digest", digest, after="newTag")
    elif scalar_text(old_digest[1], "digest", file=file) != digest:
        edit.set_value(entry, "digest", digest)


def _add_entry(edit: TextEdit, documents: Sequence[AnyNode], item: dict[str, Data], file: str) -> None:
    """Append ``item`` to the first ``images:`` list, or give the first document an ``images:`` key."""
    first: Map | None = None
    for document in mapping_documents(documents, file=file):
        first = first or document
        pair = find_pair(document, "images", file=file)
        if pair is None:
            continue
        if is_null(pair[1]):
            edit.set_value(document, "images", [item])
        else:
            images = _images(document, file)
            assert images is not None
            edit.append_item(images, item)
        return
    if first is None:
        raise EditError("no kustomization document to add an images entry to", path=file or None)
    edit.add_pair(first, "images", [item])
