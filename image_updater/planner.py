"""From an Application and chosen tags to file edits: which files, what they hold now, what changes.

Pure apart from reading files through a :class:`RepoView`; it never writes. The edits it returns are
functions of the file text, so a write-back can re-apply them on a newer commit after a push conflict.

Targets (SPEC sections 4 and 5):

- default: ``.argocd-source-<app>.yaml`` in the source path (``.argocd-source-<namespace>_<app>.yaml``
  for an Application outside the controller's namespace, as AIU names it), Kustomize images or Helm
  parameters as the Application's source type says;
- ``kustomization[:path]``: the kustomization file in the folder;
- ``helmvalues[:path]``: a values file (default ``values.yaml``);
- ``manifests[:path]``: every ``.yaml``/``.yml`` file under the path.

A target path starting with ``/`` is relative to the repository root, any other to the source path; a
path that leaves the repository or enters ``.git`` is refused.
"""

from __future__ import annotations

import difflib
import hashlib
import posixpath
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from image_updater.edit.argocd_source import SourceKind, edit_argocd_source, file_name, read_argocd_source_tag
from image_updater.edit.helmvalues import HelmKeys, edit_helm_values, read_helm_tag
from image_updater.edit.kustomization import edit_kustomization, read_kustomization_tag
from image_updater.edit.manifests import edit_manifests, read_manifest_tags
from image_updater.errors import EditError, WriteBackError
from image_updater.model.changes import EditResult
from image_updater.model.spec import AppSpec, ImageSpec, TargetKind

KUSTOMIZATION_NAMES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
HELM_CHART = "Chart.yaml"
#: the namespace Argo CD runs in, as AIU assumes it
DEFAULT_CONTROLLER_NAMESPACE = "argocd"


class RepoView(Protocol):
    """Read access to a checked-out repository, paths relative to its root."""

    def read(self, relative: str) -> str | None: ...

    def list_files(self, relative: str) -> list[str]:
        """Files below ``relative`` (itself if it is a file), repo-relative, sorted."""
        ...


class ReadOnce:
    """A :class:`RepoView` that reads each file, and lists each folder, once.

    Planning an Application reads its target files again for each of its images; wrap the view for the
    time the tree does not change (one Application's planning). An error is not kept: it is raised again.
    """

    def __init__(self, view: RepoView) -> None:
        self._view = view
        self._texts: dict[str, str | None] = {}
        self._listings: dict[str, list[str]] = {}

    def read(self, relative: str) -> str | None:
        if relative not in self._texts:
            self._texts[relative] = self._view.read(relative)
        return self._texts[relative]

    def list_files(self, relative: str) -> list[str]:
        if relative not in self._listings:
            self._listings[relative] = self._view.list_files(relative)
        return list(self._listings[relative])


@dataclass(frozen=True)
class FileEdit:
    """A pure edit of one file; ``apply`` gets the current text and returns the new one.

    ``create``: a missing file is edited from the empty text (``.argocd-source`` and values files).
    """

    path: str
    apply: Callable[[str], EditResult]
    create: bool = False


@dataclass(frozen=True)
class Target:
    """The files an Application's write-back edits, and for the default target which override."""

    kind: TargetKind
    files: tuple[str, ...]
    source_kind: SourceKind | None = None


def _inside(path: str, *, app: str, what: str) -> str:
    normal = posixpath.normpath(path)
    parts = normal.split("/")
    if normal == ".." or normal.startswith("../") or posixpath.isabs(normal):
        raise WriteBackError(f"{what} {path!r} leads outside the repository", app=app)
    if ".git" in parts:
        raise WriteBackError(f"{what} {path!r} leads into the .git folder", app=app)
    return normal


def target_dir_of_source(app: AppSpec) -> str:
    """The Application's source path, repo-relative."""
    return _inside(app.source.path.strip("/") or ".", app=app.name, what="source path")


def target_dir(app: AppSpec) -> str:
    """The repo-relative folder or file the write-back target names (AIU path rules)."""
    base = target_dir_of_source(app)
    path = app.write_back.target_path
    if path is None:
        joined = base
    elif path.startswith("/"):
        joined = path.lstrip("/") or "."
    else:
        joined = posixpath.join(base, path)
    return _inside(joined, app=app.name, what="write-back-target path")


def source_kind(app: AppSpec, view: RepoView) -> SourceKind:
    """Kustomize or Helm: ``status.sourceType`` (or the ``spec.source`` block) when known, else the
    files in the source path."""
    declared = (app.source.source_type or "").lower()
    if declared in ("kustomize", "helm"):
        return SourceKind(declared)
    base = target_dir_of_source(app)
    if any(view.read(posixpath.join(base, name)) is not None for name in KUSTOMIZATION_NAMES):
        return SourceKind.KUSTOMIZE
    if view.read(posixpath.join(base, HELM_CHART)) is not None:
        return SourceKind.HELM
    raise WriteBackError(
        f"cannot tell whether {base!r} is Kustomize or Helm (no kustomization.yaml or Chart.yaml there, "
        "and no status.sourceType); set write-back-target",
        app=app.name,
    )


def resolve_target(
    app: AppSpec, view: RepoView, *, controller_namespace: str = DEFAULT_CONTROLLER_NAMESPACE
) -> Target:
    """The files the write-back would edit, repo-relative."""
    kind = app.write_back.target
    if kind is TargetKind.ARGOCD_SOURCE:
        name = file_name(app.name, app.namespace, controller_namespace)
        path = _inside(posixpath.join(target_dir_of_source(app), name), app=app.name, what="target")
        return Target(kind, (path,), source_kind(app, view))
    where = target_dir(app)
    if kind is TargetKind.KUSTOMIZATION:
        if posixpath.basename(where) in KUSTOMIZATION_NAMES:
            return Target(kind, (where,))
        for name in KUSTOMIZATION_NAMES:
            candidate = posixpath.normpath(posixpath.join(where, name))
            if view.read(candidate) is not None:
                return Target(kind, (candidate,))
        raise EditError(f"no kustomization.yaml in {where!r}", app=app.name)
    if kind is TargetKind.HELMVALUES:
        return Target(kind, (where,))
    files = [f for f in view.list_files(where) if f.endswith((".yaml", ".yml"))]
    if not files:
        raise EditError(f"no YAML manifests under {where!r}", app=app.name)
    return Target(kind, tuple(files))


def helm_keys(image: ImageSpec) -> HelmKeys:
    """The Helm keys of ``image`` from its ``helm.image-*`` annotations."""
    return HelmKeys.of(spec=image.helm_image_spec, name=image.helm_image_name, tag=image.helm_image_tag)


def current_tag(app: AppSpec, image: ImageSpec, view: RepoView, target: Target) -> str | None:
    """The tag the target files hold for ``image`` now, or ``None`` if they do not name it."""
    for path in target.files:
        text = view.read(path)
        if text is None:
            continue
        try:
            tag = _remembered(image, text, target, path)
        except EditError as e:
            raise EditError(e.message, path=path, app=app.name, image=image.label) from None
        if tag is not None:
            return tag
    return None


#: tags read so far, by the text's fingerprint and what reading depends on: a service reads the same
#: unchanged files every cycle, and composing them is most of a cycle's reading (bounded; errors are
#: not kept, so they are raised again)
_READ: OrderedDict[tuple[bytes, ImageSpec, TargetKind, SourceKind | None], str | None] = OrderedDict()
_READ_SIZE = 20_000


def _remembered(image: ImageSpec, text: str, target: Target, path: str) -> str | None:
    """:func:`_read_tag`, answered from memory when this text was read for this image before."""
    fingerprint = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()
    key = (fingerprint, image, target.kind, target.source_kind)
    if key in _READ:
        _READ.move_to_end(key)
        return _READ[key]
    tag = _read_tag(image, text, target, path)
    _READ[key] = tag
    if len(_READ) > _READ_SIZE:
        _READ.popitem(last=False)
    return tag


def _read_tag(image: ImageSpec, text: str, target: Target, path: str) -> str | None:
    if target.kind is TargetKind.KUSTOMIZATION:
        return read_kustomization_tag(text, image.name, kustomize_name=image.kustomize_image_name)
    if target.kind is TargetKind.HELMVALUES:
        return read_helm_tag(text, image.name, helm_keys(image))
    if target.kind is TargetKind.ARGOCD_SOURCE:
        assert target.source_kind is not None
        return read_argocd_source_tag(
            text,
            image.name,
            kind=target.source_kind,
            kustomize_name=image.kustomize_image_name,
            helm=helm_keys(image),
        )
    tags = [t for t in read_manifest_tags(text, image.name) if t]
    return tags[0] if tags else None


def plan_edits(app: AppSpec, image: ImageSpec, new_tag: str, target: Target) -> list[FileEdit]:
    """The edits that set ``image`` to ``new_tag`` in every target file."""
    create = target.kind in (TargetKind.ARGOCD_SOURCE, TargetKind.HELMVALUES)
    return [FileEdit(path, _editor(image, new_tag, target, path), create=create) for path in target.files]


def _editor(image: ImageSpec, new_tag: str, target: Target, path: str) -> Callable[[str], EditResult]:
    kind = target.kind
    if kind is TargetKind.KUSTOMIZATION:
        return lambda text: edit_kustomization(
            text,
            image.name,
            new_tag,
            image_label=image.label,
            kustomize_name=image.kustomize_image_name,
            new_name=image.written_name,
            file=path,
        )
    if kind is TargetKind.HELMVALUES:
        return lambda text: edit_helm_values(
            text,
            image.name,
            new_tag,
            keys=helm_keys(image),
            image_label=image.label,
            image_text=image.written_name,
            file=path,
        )
    if kind is TargetKind.ARGOCD_SOURCE:
        assert target.source_kind is not None
        source = target.source_kind
        return lambda text: edit_argocd_source(
            text,
            image.name,
            new_tag,
            kind=source,
            image_label=image.label,
            image_text=image.written_name,
            kustomize_name=image.kustomize_image_name,
            helm=helm_keys(image),
            file=path,
        )
    return lambda text: edit_manifests(text, image.name, new_tag, image_label=image.label, file=path)


def unified_diff(path: str, old: str, new: str) -> str:
    """A ``git diff``-style unified diff of one file (``/dev/null`` for a new file)."""
    lines = difflib.unified_diff(
        old.splitlines(keepends=True),
        new.splitlines(keepends=True),
        fromfile=f"a/{path}" if old else "/dev/null",
        tofile=f"b/{path}",
    )
    return "".join(
        line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines
    )
