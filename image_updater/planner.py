"""From an Application and chosen tags to file edits: which files, what they hold now, what changes.

Pure apart from reading files through a :class:`RepoView`; it never writes. The edits it returns are
functions of the file text, so a write-back can re-apply them on a newer commit after a push conflict.
"""

from __future__ import annotations

import difflib
import posixpath
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from image_updater.edit.kustomization import edit_kustomization, read_kustomization_tag
from image_updater.edit.manifests import edit_manifests, read_manifest_tags
from image_updater.errors import EditError, WriteBackError
from image_updater.model.changes import EditResult
from image_updater.model.spec import AppSpec, ImageSpec, TargetKind

KUSTOMIZATION_NAMES = ("kustomization.yaml", "kustomization.yml", "Kustomization")


class RepoView(Protocol):
    """Read access to a checked-out repository, paths relative to its root."""

    def read(self, relative: str) -> str | None: ...

    def list_files(self, relative: str) -> list[str]:
        """Files below ``relative`` (itself if it is a file), repo-relative, sorted."""
        ...


@dataclass(frozen=True)
class FileEdit:
    """A pure edit of one file; ``apply`` gets the current text and returns the new one."""

    path: str
    apply: Callable[[str], EditResult]


def target_dir(app: AppSpec) -> str:
    """The repo-relative folder or file the write-back target names (AIU path rules).

    A target path starting with ``/`` is relative to the repository root, any other relative to the
    Application's source path; a path that leaves the repository is refused.
    """
    base = app.source.path.strip("/") or "."
    path = app.write_back.target_path
    if path is None:
        joined = base
    elif path.startswith("/"):
        joined = path.lstrip("/") or "."
    else:
        joined = posixpath.join(base, path)
    normal = posixpath.normpath(joined)
    if normal == ".." or normal.startswith("../") or posixpath.isabs(normal):
        raise WriteBackError(f"write-back-target path {path!r} leads outside the repository", app=app.name)
    return normal


def target_files(app: AppSpec, view: RepoView) -> list[str]:
    """The files the write-back would edit, repo-relative."""
    where = target_dir(app)
    kind = app.write_back.target
    if kind is TargetKind.KUSTOMIZATION:
        if posixpath.basename(where) in KUSTOMIZATION_NAMES:
            return [where]
        for name in KUSTOMIZATION_NAMES:
            candidate = posixpath.normpath(posixpath.join(where, name))
            if view.read(candidate) is not None:
                return [candidate]
        raise EditError(f"no kustomization.yaml in {where!r}", app=app.name)
    if kind is TargetKind.MANIFESTS:
        files = [f for f in view.list_files(where) if f.endswith((".yaml", ".yml"))]
        if not files:
            raise EditError(f"no YAML manifests under {where!r}", app=app.name)
        return files
    raise WriteBackError(f"write-back target {kind.value!r} is not supported by this version", app=app.name)


def current_tag(app: AppSpec, image: ImageSpec, view: RepoView, files: list[str]) -> str | None:
    """The tag the target files hold for ``image`` now, or ``None`` if they do not name it."""
    for path in files:
        text = view.read(path)
        if text is None:
            continue
        try:
            if app.write_back.target is TargetKind.KUSTOMIZATION:
                tag = read_kustomization_tag(text, image.name, kustomize_name=image.kustomize_image_name)
                if tag is not None:
                    return tag
            else:
                tags = [t for t in read_manifest_tags(text, image.name) if t]
                if tags:
                    return tags[0]
        except EditError as e:
            raise EditError(e.message, path=path, app=app.name, image=image.label) from None
    return None


def plan_edits(app: AppSpec, image: ImageSpec, new_tag: str, files: list[str]) -> list[FileEdit]:
    """The edits that set ``image`` to ``new_tag`` in every target file."""
    edits = []
    for path in files:
        if app.write_back.target is TargetKind.KUSTOMIZATION:

            def apply(text: str, path: str = path) -> EditResult:
                return edit_kustomization(
                    text,
                    image.name,
                    new_tag,
                    image_label=image.label,
                    kustomize_name=image.kustomize_image_name,
                    file=path,
                )

        else:

            def apply(text: str, path: str = path) -> EditResult:
                return edit_manifests(text, image.name, new_tag, image_label=image.label, file=path)

        edits.append(FileEdit(path=path, apply=apply))
    return edits


def unified_diff(path: str, old: str, new: str) -> str:
    """A ``git diff``-style unified diff of one file."""
    lines = difflib.unified_diff(
        old.splitlines(keepends=True),
        new.splitlines(keepends=True),
        fromfile=f"a/{path}",
        tofile=f"b/{path}",
    )
    return "".join(
        line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines
    )
