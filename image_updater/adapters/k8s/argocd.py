"""The ``argocd`` write-back: patch the Application's own spec through the Kubernetes API.

As AIU does, a Kustomize Application gets ``spec.source.kustomize.images`` entries (``name:tag``, or
``name=newname:tag`` with ``kustomize.image-name``; the entry for the same image is replaced, the others
are kept), a Helm Application ``spec.source.helm.parameters`` (``image.name``/``image.tag`` by default,
or the names in ``helm.image-name``/``helm.image-tag``, or one ``helm.image-spec``; ``forceString`` so
``1.20`` stays a string). Which of the two comes from ``status.sourceType``, else from the spec. For an
Application with several ``sources``, the first Helm or Kustomize source is the one changed.

The patch is a JSON merge patch carrying the ``metadata.resourceVersion`` that was read, so a change
made meanwhile (Argo CD refreshing the status, a user editing) answers ``409 Conflict``; the
Application is then read again and the same updates re-applied, a bounded number of times.
"""

from __future__ import annotations

import asyncio
import copy
import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from lightkube import AsyncClient
from lightkube.types import PatchType

from image_updater.adapters.k8s.client import (
    API_ERRORS,
    DEFAULT_RETRY,
    ApiRetry,
    Sleep,
    call_api,
    status_code,
    translate,
)
from image_updater.adapters.k8s.resources import Application
from image_updater.errors import WriteBackError
from image_updater.model.changes import Change
from image_updater.model.ref import same_image, split_name_suffix
from image_updater.model.spec import ImageSpec

DEFAULT_HELM_IMAGE_NAME = "image.name"
DEFAULT_HELM_IMAGE_TAG = "image.tag"
KUSTOMIZE, HELM = "Kustomize", "Helm"


@dataclass(frozen=True)
class ImageUpdate:
    """One image of an Application and the tag (with the digest, for the digest strategy) to run."""

    image: ImageSpec
    tag: str
    digest: str | None = None

    @property
    def version(self) -> str:
        """``tag`` or ``tag@digest``, as AIU writes it."""
        return f"{self.tag}@{self.digest}" if self.digest else self.tag


@dataclass(frozen=True)
class PatchOutcome:
    """What a write-back did: the changes (none when all was current), tries, and the new version."""

    changes: tuple[Change, ...]
    attempts: int
    resource_version: str | None
    uid: str | None = None


def source_type(manifest: Mapping[str, Any]) -> str | None:
    """``Kustomize`` or ``Helm`` from ``status.sourceType`` (``sourceTypes`` for several sources), else
    from which of ``kustomize``/``helm`` the source has; ``None`` when neither tells."""
    status = manifest.get("status") or {}
    known = [status.get("sourceType"), *(status.get("sourceTypes") or [])]
    for kind in known:
        if kind in (KUSTOMIZE, HELM):
            return str(kind)
    if any(known):
        return None  # Directory or Plugin: Argo CD says it is neither
    _, source = _source(manifest)
    if source.get("kustomize") is not None:
        return KUSTOMIZE
    if source.get("helm") is not None:
        return HELM
    return None


def _source(manifest: Mapping[str, Any]) -> tuple[int | None, Mapping[str, Any]]:
    """(index in ``spec.sources`` or ``None`` for ``spec.source``, the source to change)."""
    spec = manifest.get("spec") or {}
    if spec.get("source"):
        return None, spec["source"]
    sources = spec.get("sources") or []
    for index, source in enumerate(sources):
        if isinstance(source, Mapping) and (source.get("helm") is not None or source.get("kustomize") is not None):
            return index, source
    if sources and isinstance(sources[0], Mapping):
        return 0, sources[0]
    return None, {}


def plan_patch(
    manifest: Mapping[str, Any], updates: Sequence[ImageUpdate]
) -> tuple[dict[str, Any] | None, tuple[Change, ...]]:
    """The ``spec`` of a merge patch that applies ``updates`` to the Application, and the changes.

    ``(None, ())`` when every image is already current. Pure; raises :class:`WriteBackError` when the
    Application is neither Kustomize nor Helm.
    """
    app = str((manifest.get("metadata") or {}).get("name") or "")
    kind = source_type(manifest)
    if kind is None:
        status = (manifest.get("status") or {}).get("sourceType") or "unknown"
        raise WriteBackError(
            f"the argocd write-back needs a Kustomize or Helm Application (source type: {status})", app=app
        )
    index, original = _source(manifest)
    source = copy.deepcopy(dict(original))
    changes: list[Change] = []
    for update in updates:
        change = _set_kustomize(source, update) if kind == KUSTOMIZE else _set_helm(source, update)
        if change is not None:
            changes.append(change)
    if not changes:
        return None, ()
    if index is None:
        section = "kustomize" if kind == KUSTOMIZE else "helm"
        return {"source": {section: source[section]}}, tuple(changes)
    sources = [copy.deepcopy(dict(s)) for s in (manifest.get("spec") or {}).get("sources") or []]
    sources[index] = source
    return {"sources": sources}, tuple(changes)


def _entry_name_and_version(entry: str) -> tuple[str, str | None]:
    """``name=new:tag`` -> (``name``, ``tag``); ``name:tag@sha`` -> (``name``, ``tag@sha``)."""
    name, sep, value = entry.partition("=")
    ref = value if sep else entry
    ref_name, tag, digest = split_name_suffix(ref)
    version = (tag or "") + (f"@{digest}" if digest else "")
    return (name.strip() if sep else ref_name), (version or None)


def _set_kustomize(source: dict[str, Any], update: ImageUpdate) -> Change | None:
    image = update.image
    key = image.kustomize_image_name or image.written_name
    new_ref = f"{image.written_name}:{update.version}"
    wanted = f"{key}={new_ref}" if image.kustomize_image_name else new_ref
    kustomize = source.get("kustomize") or {}
    source["kustomize"] = kustomize
    images = [str(e) for e in kustomize.get("images") or []]
    matched = [i for i, entry in enumerate(images) if _same_name(_entry_name_and_version(entry)[0], key)]
    old = _entry_name_and_version(images[matched[0]])[1] if matched else None
    if matched and all(images[i] == wanted for i in matched):
        return None
    for i in matched:
        images[i] = wanted
    if not matched:
        images.append(wanted)
    kustomize["images"] = images
    return Change(image.label, old, update.version, file="spec.source.kustomize.images")


def _same_name(a: str, b: str) -> bool:
    return a == b or same_image(a, b)


def _set_helm(source: dict[str, Any], update: ImageUpdate) -> Change | None:
    image = update.image
    helm = source.get("helm") or {}
    source["helm"] = helm
    params = [dict(p) for p in helm.get("parameters") or [] if isinstance(p, Mapping)]
    current = {str(p.get("name")): str(p.get("value", "")) for p in params}
    if image.helm_image_spec:
        wanted = {image.helm_image_spec: f"{image.written_name}:{update.version}"}
        old_spec = current.get(image.helm_image_spec)
        old = _entry_name_and_version(old_spec)[1] if old_spec else None
    else:
        tag_param = image.helm_image_tag or DEFAULT_HELM_IMAGE_TAG
        wanted = {image.helm_image_name or DEFAULT_HELM_IMAGE_NAME: image.written_name, tag_param: update.version}
        old = current.get(tag_param)
    forced = {str(p.get("name")): bool(p.get("forceString")) for p in params}
    if all(current.get(name) == value and forced.get(name) for name, value in wanted.items()):
        return None
    for name, value in wanted.items():
        entry = {"name": name, "value": value, "forceString": True}
        position = next((i for i, p in enumerate(params) if p.get("name") == name), None)
        if position is None:
            params.append(entry)
        else:
            params[position] = entry
    helm["parameters"] = params
    return Change(image.label, old, update.version, file="spec.source.helm.parameters")


class ArgoCDWriter:
    """Applies image updates to Applications with conditional merge patches."""

    def __init__(
        self,
        client: AsyncClient,
        *,
        conflict_attempts: int = 5,
        retry: ApiRetry = DEFAULT_RETRY,
        sleep: Sleep = asyncio.sleep,
        log: Any = None,
    ) -> None:
        self._client = client
        self.conflict_attempts = conflict_attempts
        self._retry = retry
        self._sleep = sleep
        self._log = log if log is not None else structlog.get_logger()

    async def update(
        self, namespace: str, name: str, updates: Sequence[ImageUpdate], *, dry_run: bool = False
    ) -> PatchOutcome:
        """Read the Application, apply ``updates``, patch it; on ``409`` read again and retry.

        With ``dry_run`` nothing is written and the changes are those a patch would make now. Raises
        :class:`WriteBackError` naming the Application when it cannot be read or patched, or when
        ``conflict_attempts`` patches in a row met a conflict.
        """
        for attempt in range(1, self.conflict_attempts + 1):
            manifest = await self._read(namespace, name)
            spec_patch, changes = plan_patch(manifest, updates)
            meta = manifest.get("metadata") or {}
            if spec_patch is None or dry_run:
                return PatchOutcome(
                    changes, attempt, None if spec_patch is None else meta.get("resourceVersion"), meta.get("uid")
                )
            body = {"metadata": {"resourceVersion": meta.get("resourceVersion")}, "spec": spec_patch}
            try:
                patch = functools.partial(
                    self._client.patch, Application, name, body, namespace=namespace, patch_type=PatchType.MERGE
                )
                patched = await call_api(patch, retry=self._retry, sleep=self._sleep)
            except API_ERRORS as e:
                if status_code(e) == 409:
                    self._log.info(
                        "application changed meanwhile; reading it again",
                        application=f"{namespace}/{name}",
                        attempt=attempt,
                    )
                    continue
                raise translate(e, f"cannot patch Application {namespace}/{name}", WriteBackError, app=name) from e
            new_meta = patched.get("metadata") or {}
            return PatchOutcome(changes, attempt, new_meta.get("resourceVersion"), new_meta.get("uid"))
        raise WriteBackError(
            f"Application {namespace}/{name} kept changing: {self.conflict_attempts} patches met a conflict",
            app=name,
        )

    async def _read(self, namespace: str, name: str) -> dict[str, Any]:
        try:
            obj = await call_api(
                lambda: self._client.get(Application, name, namespace=namespace), retry=self._retry, sleep=self._sleep
            )
        except API_ERRORS as e:
            raise translate(e, f"cannot read Application {namespace}/{name}", WriteBackError, app=name) from e
        return dict(obj)
