"""Reading and setting image overrides in Argo CD's ``.argocd-source-<app>.yaml`` files, format-preserving.

Argo CD merges such a file into the Application's source when it renders the path it lies in. It
holds parameter overrides in one of two shapes (the file is merged with what it holds: other images,
other parameters and other keys stay as they are)::

    kustomize:
      images:
      - nginx:1.25.4                     # image:tag
      - web=ghcr.io/acme/web:3.2.0       # kustomize name=image:tag (kustomize.image-name)
    helm:
      parameters:
      - name: image.name
        value: nginx
        forcestring: true
      - name: image.tag
        value: "1.20"
        forcestring: true

Kustomize: an entry matches when its name (before ``=``, or the image itself) or its image denotes the
tracked image, or, with a ``kustomize.image-name``, when its name is exactly that; every match is
edited in place, keeping the name and image as written and changing only the ``:tag`` (and
``@digest``) after them. A missing entry is appended once. Helm: the parameters named by
``helm.image-spec``, or ``helm.image-name`` and ``helm.image-tag`` (defaults ``image.name`` and
``image.tag``), are set, or appended when missing. Every parameter written carries ``forcestring:
true``, as AIU writes it, so that Helm reads a tag like ``1.20`` as text; the spelling already used in
the file (``forceString`` or ``forcestring``) is kept.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from enum import StrEnum

from image_updater.edit.fastcompose import fast_documents
from image_updater.edit.helmvalues import HelmKeys
from image_updater.edit.layout import Data
from image_updater.edit.nodes import (
    AnyNode,
    Map,
    Scalar,
    Seq,
    expect,
    find_pair,
    get_value,
    is_null,
    line_of,
    mapping_documents,
    scalar_text,
)
from image_updater.edit.splice import TextEdit, edit_text, write_new_document
from image_updater.edit.tags import split_new_tag, tag_text
from image_updater.errors import EditError
from image_updater.model.changes import Change, EditResult
from image_updater.model.ref import ImageName, same_image, split_name_suffix

FORCE_STRING_KEYS = ("forcestring", "forceString")
DEFAULT_HELM_KEYS = HelmKeys()


class SourceKind(StrEnum):
    """Which override an Application takes: Kustomize images or Helm parameters."""

    KUSTOMIZE = "kustomize"
    HELM = "helm"


def file_name(app_name: str, app_namespace: str, controller_namespace: str) -> str:
    """AIU's file name: ``.argocd-source-<app>.yaml`` for an Application in the controller's
    namespace, ``.argocd-source-<namespace>_<app>.yaml`` for one in another namespace."""
    if not app_namespace or app_namespace == controller_namespace:
        return f".argocd-source-{app_name}.yaml"
    return f".argocd-source-{app_namespace}_{app_name}.yaml"


# -- kustomize images ---------------------------------------------------------------------------------


def _split_entry(text: str) -> tuple[str, str, str]:
    """``name=image:tag`` -> ``("name=", "image", ":tag")``; ``image:tag`` -> ``("", "image", ":tag")``."""
    prefix, sep, rest = text.partition("=")
    if not sep:
        prefix, rest = "", text
    else:
        prefix += "="
    name, tag, digest = split_name_suffix(rest)
    return prefix, name, rest[len(name) :] if (tag or digest) else ""


def _entry_matches(text: str, image: ImageName, kustomize_name: str | None) -> bool:
    prefix, name, _ = _split_entry(text)
    if kustomize_name is not None:
        return (prefix[:-1] if prefix else name) == kustomize_name
    return same_image(name, image) or (bool(prefix) and same_image(prefix[:-1], image))


def _kustomize_images(root: Map | None, file: str) -> Seq | None:
    if root is None:
        return None
    kustomize = expect(get_value(root, "kustomize", file=file), Map, "kustomize", file=file)
    if not isinstance(kustomize, Map):
        return None
    images = expect(get_value(kustomize, "images", file=file), Seq, "kustomize.images", file=file)
    return images if isinstance(images, Seq) else None


def _image_entries(
    root: Map | None, image: ImageName, kustomize_name: str | None, file: str
) -> Iterator[tuple[Seq, int, str]]:
    images = _kustomize_images(root, file)
    for index, item in enumerate(images.value if images is not None else ()):
        if not isinstance(item, Scalar) or is_null(item):
            raise EditError(f"kustomize.images item at line {line_of(item)} is not an image text", path=file or None)
        if _entry_matches(str(item.value), image, kustomize_name):
            assert images is not None
            yield images, index, str(item.value)


def _entry_tag(text: str) -> str | None:
    _, tag, digest = split_name_suffix(text.partition("=")[2] or text)
    return tag_text(tag, digest)


# -- helm parameters ----------------------------------------------------------------------------------


def _parameters(root: Map | None, file: str) -> list[Map]:
    if root is None:
        return []
    helm = expect(get_value(root, "helm", file=file), Map, "helm", file=file)
    if not isinstance(helm, Map):
        return []
    params = expect(get_value(helm, "parameters", file=file), Seq, "helm.parameters", file=file)
    found = []
    for item in params.value if isinstance(params, Seq) else ():
        if not isinstance(item, Map):
            raise EditError(f"helm.parameters item at line {line_of(item)} is not a mapping", path=file or None)
        found.append(item)
    return found


def _parameter(params: Sequence[Map], name: str, file: str) -> Map | None:
    for param in params:
        if scalar_text(get_value(param, "name", file=file), "parameter name", file=file) == name:
            return param
    return None


def _value(param: Map | None, file: str) -> str | None:
    if param is None:
        return None
    return scalar_text(get_value(param, "value", file=file), "parameter value", file=file)


def _force_key(params: Sequence[Map], file: str) -> str:
    for param in params:
        for key in FORCE_STRING_KEYS:
            if find_pair(param, key, file=file) is not None:
                return key
    return FORCE_STRING_KEYS[0]


# -- reading and editing ------------------------------------------------------------------------------


def _root(documents: Sequence[AnyNode], file: str) -> Map | None:
    roots = list(mapping_documents(documents, file=file))
    if len(roots) > 1:
        raise EditError("an .argocd-source file holds one document, this one holds several", path=file or None)
    return roots[0] if roots else None


def read_argocd_source_tag(
    text: str,
    image: ImageName,
    *,
    kind: SourceKind,
    kustomize_name: str | None = None,
    helm: HelmKeys = DEFAULT_HELM_KEYS,
    file: str = "",
) -> str | None:
    """The tag text the file overrides ``image`` with, or ``None`` when it does not name it."""
    root = _root(fast_documents(text, file=file), file)
    if kind is SourceKind.KUSTOMIZE:
        for _, _, entry in _image_entries(root, image, kustomize_name, file):
            return _entry_tag(entry)
        return None
    params = _parameters(root, file)
    if helm.spec:
        spec = _value(_parameter(params, helm.spec, file), file)
        name, tag, digest = split_name_suffix(spec or "")
        return tag_text(tag, digest) if spec and same_image(name, image) else None
    assert helm.tag is not None
    return _value(_parameter(params, helm.tag, file), file)


def edit_argocd_source(
    text: str,
    image: ImageName,
    new_tag: str,
    *,
    kind: SourceKind,
    image_label: str,
    image_text: str | None = None,
    kustomize_name: str | None = None,
    helm: HelmKeys = DEFAULT_HELM_KEYS,
    file: str = "",
) -> EditResult:
    """Override ``image`` with ``new_tag`` in an ``.argocd-source`` file (empty or missing: ``""``).

    ``image_text`` is the image as written in ``image-list`` (default ``image_label``), written where
    the file names it nowhere. Raises :class:`EditError` (and nothing is written) for a file that does
    not parse, a wrong shape, or an edit that would change anything else.
    """
    split_new_tag(new_tag)
    written = image_text or image_label

    def plan(documents: list[AnyNode]) -> EditResult:
        root = _root(documents, file)
        edit = TextEdit(text, documents, file=file) if root is not None else None
        changes: dict[str | None, Change] = {}
        new: dict[str, Data] = {}
        if kind is SourceKind.KUSTOMIZE:
            matched = False
            for images, index, entry in _image_entries(root, image, kustomize_name, file):
                matched = True
                old = _entry_tag(entry)
                if old == new_tag:
                    continue
                prefix, name, _ = _split_entry(entry)
                if kustomize_name is not None and not same_image(name, image):
                    name = written
                assert edit is not None
                edit.set_item(images, index, f"{prefix}{name}:{new_tag}")
                changes.setdefault(old, Change(image=image_label, old=old, new=new_tag, file=file))
            if not matched:
                entry_text = f"{kustomize_name}={written}:{new_tag}" if kustomize_name else f"{written}:{new_tag}"
                new = {"kustomize": {"images": [entry_text]}}
                changes[None] = Change(image=image_label, old=None, new=new_tag, file=file)
        else:
            old, wanted = _helm_writes(root, image, new_tag, helm, written, file)
            if old != new_tag:
                changes[old] = Change(image=image_label, old=old, new=new_tag, file=file)
                new = _set_parameters(edit, root, wanted, file)
        if not changes:
            return EditResult(text=text)
        if edit is None:
            return EditResult(text=write_new_document(text, new, file=file), changes=tuple(changes.values()))
        if new:
            _add_missing(edit, root, new, file)
        return EditResult(text=edit.apply(), changes=tuple(changes.values()))

    return edit_text(text, plan, file=file)


def _helm_writes(
    root: Map | None, image: ImageName, new_tag: str, helm: HelmKeys, written: str, file: str
) -> tuple[str | None, list[tuple[str, str]]]:
    """The current tag and the parameters to set, name before tag."""
    params = _parameters(root, file)
    if helm.spec:
        spec = _value(_parameter(params, helm.spec, file), file)
        name, tag, digest = split_name_suffix(spec or "")
        if spec and same_image(name, image):
            return tag_text(tag, digest), [(helm.spec, f"{name}:{new_tag}")]
        return None, [(helm.spec, f"{written}:{new_tag}")]
    assert helm.name is not None and helm.tag is not None
    current_name = _value(_parameter(params, helm.name, file), file)
    name = current_name if current_name and same_image(current_name, image) else written
    return _value(_parameter(params, helm.tag, file), file), [(helm.name, name), (helm.tag, new_tag)]


def _set_parameters(
    edit: TextEdit | None, root: Map | None, wanted: list[tuple[str, str]], file: str
) -> dict[str, Data]:
    """Set existing parameters in place; return the ones to append as ``{"helm": {"parameters": [...]}}``."""
    params = _parameters(root, file)
    force = _force_key(params, file)
    appended: list[Data] = []
    for name, value in wanted:
        param = _parameter(params, name, file)
        if param is None:
            appended.append({"name": name, "value": value, force: True})
            continue
        assert edit is not None
        if find_pair(param, "value", file=file) is None:
            edit.add_pair(param, "value", value, after="name")
        elif _value(param, file) != value:
            edit.set_value(param, "value", value)
        pair = next((p for p in (find_pair(param, k, file=file) for k in FORCE_STRING_KEYS) if p), None)
        if pair is None:
            edit.add_pair(param, force, True, after="value")
        elif not (isinstance(pair[1], Scalar) and str(pair[1].value).lower() == "true"):
            key = str(pair[0].value) if isinstance(pair[0], Scalar) else force
            edit.set_value(param, key, True)
    return {"helm": {"parameters": appended}} if appended else {}


def _add_missing(edit: TextEdit, root: Map | None, new: dict[str, Data], file: str) -> None:
    """Add ``{section: {list_key: [items]}}`` to the file: appended to the list when it exists, else
    the list, else the section is created."""
    assert root is not None
    ((section, body),) = new.items()
    assert isinstance(body, dict)
    ((list_key, items),) = body.items()
    assert isinstance(items, list)
    pair = find_pair(root, section, file=file)
    if pair is None:
        edit.add_pair(root, section, body)
        return
    if is_null(pair[1]):
        edit.set_value(root, section, body)
        return
    mapping = pair[1]
    assert isinstance(mapping, Map)  # checked when the entries were read
    inner = find_pair(mapping, list_key, file=file)
    if inner is None:
        edit.add_pair(mapping, list_key, items)
    elif is_null(inner[1]):
        edit.set_value(mapping, list_key, items)
    else:
        assert isinstance(inner[1], Seq)
        for item in items:
            edit.append_item(inner[1], item)
