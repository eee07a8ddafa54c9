"""Reading and setting image tags in plain Kubernetes manifests, format-preserving.

Every document whose ``kind`` runs pods is searched: Deployment, StatefulSet, DaemonSet, ReplicaSet,
ReplicationController and Job (``spec.template.spec``), CronJob (``spec.jobTemplate.spec.template.spec``)
and Pod (``spec``); the items of a ``kind: List`` likewise. In the pod spec, the ``image`` of every
entry of ``containers``, ``initContainers`` and ``ephemeralContainers`` whose name denotes the image is
read or edited. Documents of any other kind (Service, ConfigMap, ...) are never touched, even when they
mention the image.

Decisions:

- Only the tag part changes and the name stays as written: ``nginx:1.0`` becomes ``nginx:1.1``, an
  untagged ``nginx`` becomes ``nginx:1.1``, and ``nginx:1.0@sha256:...`` becomes ``nginx:1.1`` (the old
  digest would pin the old image); a new ``tag@sha256:...`` is written whole.
- Reading lists the tag text of each matching container in file order (``1.0``, ``1.0@sha256:...``,
  or ``@sha256:...`` for a digest alone); an untagged image has no current tag and is left out, so that
  the caller can tell "no current tag" (updated only with ``force-update``) from ``latest``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from image_updater.edit.fastcompose import fast_documents
from image_updater.edit.nodes import (
    AnyNode,
    Map,
    Scalar,
    Seq,
    expect,
    get_value,
    line_of,
    mapping_documents,
    scalar_text,
)
from image_updater.edit.splice import TextEdit, edit_text
from image_updater.edit.tags import mentions, split_new_tag, tag_text
from image_updater.model.changes import Change, EditResult
from image_updater.model.ref import ImageName, same_image, split_name_suffix

#: where the pod spec is, per kind
POD_SPEC_PATHS: dict[str, tuple[str, ...]] = {
    "Pod": ("spec",),
    "Deployment": ("spec", "template", "spec"),
    "StatefulSet": ("spec", "template", "spec"),
    "DaemonSet": ("spec", "template", "spec"),
    "ReplicaSet": ("spec", "template", "spec"),
    "ReplicationController": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}
CONTAINER_LISTS = frozenset({"containers", "initContainers", "ephemeralContainers"})


def read_manifest_tags(text: str, image: ImageName) -> list[str]:
    """The tag texts of the containers running ``image``, in file order (untagged ones left out).

    A file that cannot mention the image is not parsed. Raises :class:`EditError` for a file that does
    not parse or has a document that is not a mapping or a workload of the wrong shape.
    """
    if not mentions(text, image):
        return []
    tags = []
    for _, node in _matching_images(fast_documents(text), image, ""):
        _, tag, digest = split_name_suffix(str(node.value))
        current = tag_text(tag, digest)
        if current is not None:
            tags.append(current)
    return tags


def edit_manifests(text: str, image: ImageName, new_tag: str, *, image_label: str, file: str = "") -> EditResult:
    """Set the tag of every container running ``image`` to ``new_tag`` (``tag`` or ``tag@sha256:...``).

    The changes name ``image_label``, one per distinct old tag text; containers already at ``new_tag``
    are no change. A file that cannot mention the image is returned as is, unparsed. Raises
    :class:`EditError` (and nothing is written) for a file that does not parse, a wrong shape, or an
    edit that would change anything else.
    """
    split_new_tag(new_tag)
    if not mentions(text, image):
        return EditResult(text=text)

    def plan(documents: list[AnyNode]) -> EditResult:
        edit = TextEdit(text, documents, file=file)
        changes: dict[str | None, Change] = {}
        for container, node in _matching_images(documents, image, file):
            name, tag, digest = split_name_suffix(str(node.value))
            new_value = f"{name}:{new_tag}"
            if new_value == node.value:
                continue
            edit.set_value(container, "image", new_value)
            old = tag_text(tag, digest)
            changes.setdefault(old, Change(image=image_label, old=old, new=new_tag, file=file))
        return EditResult(text=edit.apply(), changes=tuple(changes.values()))

    return edit_text(text, plan, file=file)


def _matching_images(documents: Sequence[AnyNode], image: ImageName, file: str) -> Iterator[tuple[Map, Scalar]]:
    """``(container, image node)`` for every container running ``image``, each image node once."""
    seen: set[int] = set()
    for document in mapping_documents(documents, file=file):
        for pod_spec in _pod_specs(document, file):
            for container, node in _images(pod_spec, file):
                if id(node) not in seen and same_image(str(node.value), image):
                    seen.add(id(node))
                    yield container, node


def _pod_specs(resource: Map, file: str) -> Iterator[Map]:
    kind = scalar_text(get_value(resource, "kind", file=file), "kind", file=file)
    if kind == "List":
        items = expect(get_value(resource, "items", file=file), Seq, "List items", file=file)
        for item in items.value if items is not None else ():
            entry = expect(item, Map, "a List item", file=file)
            if isinstance(entry, Map):
                yield from _pod_specs(entry, file)
        return
    path = POD_SPEC_PATHS.get(kind or "")
    node: AnyNode | None = resource
    for depth, key in enumerate(path or ()):
        assert isinstance(node, Map)
        where = f"{kind} {'.'.join(path[: depth + 1])}" if path else key
        node = expect(get_value(node, key, file=file), Map, where, file=file)
        if node is None:
            return
    if path and isinstance(node, Map):
        yield node


def _images(pod_spec: Map, file: str) -> Iterator[tuple[Map, Scalar]]:
    for key, value in pod_spec.value:
        if not (isinstance(key, Scalar) and key.value in CONTAINER_LISTS):
            continue
        containers = expect(value, Seq, str(key.value), file=file)
        for item in containers.value if isinstance(containers, Seq) else ():
            container = expect(item, Map, f"an entry of {key.value} (line {line_of(key)})", file=file)
            if not isinstance(container, Map):
                continue
            node = expect(get_value(container, "image", file=file), Scalar, "image", file=file)
            if isinstance(node, Scalar):
                yield container, node
