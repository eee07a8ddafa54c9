"""Argo CD Image Updater annotations -> :class:`AppSpec`, or an error naming the annotation.

The annotation names and their meaning follow AIU. Where AIU falls back silently (an unknown update
strategy becomes semver there), this module raises instead.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from image_updater.commitmsg import BRANCH_TEMPLATE_VALUES, render_template
from image_updater.errors import AnnotationError, ImageReferenceError
from image_updater.model.ref import parse_image_name, split_name_suffix
from image_updater.model.spec import (
    AppSource,
    AppSpec,
    HelmParameter,
    ImageSpec,
    LiveState,
    TargetKind,
    WriteBack,
    WriteBackMethod,
)

PREFIX = "argocd-image-updater.argoproj.io/"
IMAGE_LIST = PREFIX + "image-list"

#: strategy names as written -> canonical name (AIU aliases included)
STRATEGIES = {
    "semver": "semver",
    "newest-build": "newest-build",
    "latest": "newest-build",
    "alphabetical": "alphabetical",
    "name": "alphabetical",
    "digest": "digest",
    "numerical": "numerical",
}

_ALIAS = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_./-]*$")
_TRUE = {"true", "yes", "1", "on"}
_FALSE = {"false", "no", "0", "off", ""}


def has_image_list(manifest: Mapping[str, Any]) -> bool:
    """Whether a parsed Application manifest carries the ``image-list`` annotation."""
    annotations = (manifest.get("metadata") or {}).get("annotations") or {}
    return isinstance(annotations, Mapping) and IMAGE_LIST in annotations


def parse_application(manifest: Mapping[str, Any], *, origin: str = "") -> AppSpec:
    """Parse an Argo CD Application manifest (as a dict) into an :class:`AppSpec`.

    Raises :class:`AnnotationError` naming the Application and the annotation that is wrong.
    """
    metadata = manifest.get("metadata") or {}
    name = str(metadata.get("name") or "")
    if not name:
        raise AnnotationError("the Application has no metadata.name", annotation="metadata.name", app=origin)
    namespace = str(metadata.get("namespace") or "argocd")
    raw_annotations = metadata.get("annotations") or {}
    annotations = {str(k): "" if v is None else str(v) for k, v in raw_annotations.items()}
    labels = {str(k): str(v) for k, v in (metadata.get("labels") or {}).items()}
    source = _parse_source(manifest, name)
    images = parse_image_list(annotations, app=name)
    write_back = _parse_write_back(annotations, app=name)
    return AppSpec(
        name=name,
        namespace=namespace,
        source=source,
        images=images,
        write_back=write_back,
        labels=labels,
        origin=origin,
        uid=str(metadata["uid"]) if metadata.get("uid") else None,
        live=parse_live_state(manifest),
    )


def parse_live_state(manifest: Mapping[str, Any]) -> LiveState:
    """The image overrides in the Application's spec and the images its status says it runs.

    The overrides are read from ``spec.source``, or for several ``sources`` from the first Helm or
    Kustomize one (the source the ``argocd`` write-back changes). Entries of the wrong shape are left
    out: they name no image this Application could be tracking.
    """
    spec = manifest.get("spec") or {}
    source = spec.get("source") if isinstance(spec, Mapping) else None
    if not isinstance(source, Mapping):
        sources = spec.get("sources") if isinstance(spec, Mapping) else None
        candidates = [s for s in sources or [] if isinstance(s, Mapping)]
        source = next((s for s in candidates if s.get("helm") is not None or s.get("kustomize") is not None), {})
    kustomize = source.get("kustomize") or {}
    helm = source.get("helm") or {}
    status = manifest.get("status") or {}
    summary = status.get("summary") or {} if isinstance(status, Mapping) else {}
    images = kustomize.get("images") if isinstance(kustomize, Mapping) else None
    parameters = helm.get("parameters") if isinstance(helm, Mapping) else None
    running = summary.get("images") if isinstance(summary, Mapping) else None
    return LiveState(
        kustomize_images=tuple(str(i) for i in images or [] if isinstance(i, str)),
        helm_parameters=tuple(
            HelmParameter(str(p["name"]), "" if p.get("value") is None else str(p["value"]))
            for p in parameters or []
            if isinstance(p, Mapping) and p.get("name")
        ),
        summary_images=tuple(str(i) for i in running or [] if isinstance(i, str)),
    )


def _parse_source(manifest: Mapping[str, Any], app: str) -> AppSource:
    spec = manifest.get("spec") or {}
    source = spec.get("source")
    if source is None and spec.get("sources"):
        source = spec["sources"][0]
    if not isinstance(source, Mapping) or not source.get("repoURL"):
        raise AnnotationError("the Application has no spec.source.repoURL", annotation="spec.source", app=app)
    status = manifest.get("status") or {}
    source_type = status.get("sourceType") if isinstance(status, Mapping) else None
    if not source_type:
        if source.get("kustomize") is not None:
            source_type = "Kustomize"
        elif source.get("helm") is not None:
            source_type = "Helm"
    return AppSource(
        repo_url=str(source["repoURL"]),
        target_revision=str(source.get("targetRevision") or "HEAD"),
        path=str(source.get("path") or "."),
        source_type=str(source_type) if source_type else None,
    )


def parse_image_list(annotations: Mapping[str, str], *, app: str) -> tuple[ImageSpec, ...]:
    """Parse ``image-list`` (``[alias=]image[:constraint], ...``) with each image's settings."""
    raw = annotations.get(IMAGE_LIST, "")
    entries = [e.strip() for e in raw.split(",") if e.strip()]
    if not entries:
        raise AnnotationError("lists no image", annotation=IMAGE_LIST, app=app)
    images: list[ImageSpec] = []
    seen: set[str] = set()
    for entry in entries:
        alias = None
        text = entry
        if "=" in entry:
            alias, text = (part.strip() for part in entry.split("=", 1))
            if not _ALIAS.match(alias):
                raise AnnotationError(f"invalid alias {alias!r} in {entry!r}", annotation=IMAGE_LIST, app=app)
        name_text, constraint, digest = split_name_suffix(text)
        if digest is not None:
            raise AnnotationError(
                f"{entry!r}: a digest is not a constraint; use update-strategy digest with a tag",
                annotation=IMAGE_LIST,
                app=app,
            )
        try:
            name = parse_image_name(name_text)
        except ImageReferenceError as e:
            raise AnnotationError(e.message, annotation=IMAGE_LIST, app=app) from e
        key = alias or name_text
        if key in seen:
            raise AnnotationError(f"image {key!r} is listed twice", annotation=IMAGE_LIST, app=app)
        seen.add(key)
        images.append(_image_settings(annotations, app, name_text, alias, constraint or None, name_obj=name))
    return tuple(images)


def _image_settings(
    annotations: Mapping[str, str],
    app: str,
    written: str,
    alias: str | None,
    constraint: str | None,
    *,
    name_obj: Any,
) -> ImageSpec:
    # An alias may hold "/", which Kubernetes annotation names cannot: AIU reads such an alias's keys
    # with "_" in its place (alias argoproj/argocd -> argoproj_argocd.update-strategy).
    symbolic = alias.replace("/", "_") if alias is not None else None

    def get(key: str) -> tuple[str, str | None]:
        # AIU reads per-image keys under the alias only; app-wide defaults have no alias prefix.
        if symbolic is not None and PREFIX + f"{symbolic}.{key}" in annotations:
            return PREFIX + f"{symbolic}.{key}", annotations[PREFIX + f"{symbolic}.{key}"]
        return PREFIX + key, annotations.get(PREFIX + key)

    label = alias or written
    annotation, strategy_text = get("update-strategy")
    strategy_text = (strategy_text or "semver").strip()
    strategy = STRATEGIES.get(strategy_text)
    if strategy is None:
        raise AnnotationError(
            f"unknown update strategy {strategy_text!r} (known: {', '.join(sorted(STRATEGIES))})",
            annotation=annotation,
            app=app,
            image=label,
        )
    _, allow = get("allow-tags")
    _, ignore = get("ignore-tags")
    _, platforms = get("platforms")
    force_key, force = get("force-update")
    return ImageSpec(
        name=name_obj,
        written_name=written,
        alias=alias,
        constraint=constraint,
        strategy=strategy,
        allow_tags=(allow or "").strip() or None,
        ignore_tags=tuple(t.strip() for t in (ignore or "").split(",") if t.strip()),
        platforms=tuple(p.strip() for p in (platforms or "").split(",") if p.strip()),
        force_update=_parse_bool(force, annotation=force_key, app=app, image=label),
        pull_secret=(get("pull-secret")[1] or None),
        tag_extract=(get("tag-extract")[1] or None),
        kustomize_image_name=(get("kustomize.image-name")[1] or None),
        helm_image_name=(get("helm.image-name")[1] or None),
        helm_image_tag=(get("helm.image-tag")[1] or None),
        helm_image_spec=(get("helm.image-spec")[1] or None),
    )


def _parse_bool(value: str | None, *, annotation: str, app: str, image: str) -> bool:
    if value is None:
        return False
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise AnnotationError(f"{value!r} is not a boolean", annotation=annotation, app=app, image=image)


def _parse_write_back(annotations: Mapping[str, str], *, app: str) -> WriteBack:
    method_key = PREFIX + "write-back-method"
    method_text = (annotations.get(method_key) or "argocd").strip()
    credentials = None
    if method_text == "argocd":
        method = WriteBackMethod.ARGOCD
    elif method_text == "git" or method_text.startswith("git:"):
        method = WriteBackMethod.GIT
        credentials = method_text[4:] or None
        if credentials and not (credentials == "repocreds" or credentials.startswith("secret:")):
            raise AnnotationError(
                f"{method_text!r}: credentials must be 'repocreds' or 'secret:<namespace>/<name>'",
                annotation=method_key,
                app=app,
            )
    else:
        raise AnnotationError(
            f"unknown write-back method {method_text!r} (known: argocd, git, git:secret:ns/name, "
            "git:repocreds)",
            annotation=method_key,
            app=app,
        )

    target_key = PREFIX + "write-back-target"
    target_text = (annotations.get(target_key) or "").strip()
    target = TargetKind.ARGOCD_SOURCE
    target_path = None
    if target_text:
        kind, _, path = target_text.partition(":")
        try:
            target = TargetKind(kind)
        except ValueError:
            raise AnnotationError(
                f"unknown target {kind!r} (known: kustomization[:path], helmvalues[:path], manifests[:path])",
                annotation=target_key,
                app=app,
            ) from None
        if target is TargetKind.ARGOCD_SOURCE:
            raise AnnotationError(
                "argocd-source is the default target; leave the annotation out",
                annotation=target_key,
                app=app,
            )
        target_path = path.strip() or None
        if target is TargetKind.HELMVALUES and target_path is None:
            target_path = "values.yaml"

    branch_key = PREFIX + "git-branch"
    branch_text = (annotations.get(branch_key) or "").strip()
    checkout = push = None
    if branch_text:
        checkout, sep, target_branch = branch_text.partition(":")
        checkout = checkout.strip() or None
        push = target_branch.strip() if sep else checkout
        if sep and not push:
            raise AnnotationError(f"{branch_text!r} names no target branch", annotation=branch_key, app=app)
        if push and "{{" in push:
            _, unknown = render_template(push, BRANCH_TEMPLATE_VALUES)
            if unknown:
                raise AnnotationError(
                    f"the branch template {push!r} uses {', '.join(unknown)}; it knows .SHA256, .AppName and "
                    "range .Images with .Name, .Alias, .OldTag, .NewTag",
                    annotation=branch_key,
                    app=app,
                )
    repository = (annotations.get(PREFIX + "git-repository") or "").strip() or None
    return WriteBack(
        method=method,
        git_credentials=credentials,
        target=target,
        target_path=target_path,
        checkout_branch=checkout,
        push_branch=push,
        repository=repository,
    )
