"""The ``argocd`` write-back in the cycle, and ``ImagesUpdated`` Events (the ``kubernetes`` source only).

An Application with ``write-back-method: argocd`` (AIU's default) gets its new tags by a patch of its
own spec through the Kubernetes API (Kustomize images or Helm parameters; see
:mod:`image_updater.adapters.k8s.argocd`), not by a commit. The tag it runs now is read, as AIU reads
it, from the overrides in its spec, else from ``status.summary.images``; a Git write-back whose target
file does not name the image falls back to ``status.summary.images`` too. ``--dry-run`` renders the
patch that would be sent and writes nothing.

After a successful update, by either method, an ``ImagesUpdated`` Event is recorded on the Application;
failing to record one is logged, never a failure of the update.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import structlog
from ruamel.yaml import YAML
from ruamel.yaml.compat import StringIO

from image_updater.adapters.k8s.argocd import DEFAULT_HELM_IMAGE_TAG, ImageUpdate, PatchOutcome, plan_patch
from image_updater.adapters.k8s.events import ObjectRef
from image_updater.errors import ImageUpdaterError, WriteBackError
from image_updater.model.changes import Change
from image_updater.model.ref import same_image, split_name_suffix
from image_updater.model.spec import AppSpec, ImageSpec

#: why an argocd-written image with no current tag is not written
NO_CURRENT_IN_APPLICATION = (
    "neither the Application's spec nor its status.summary.images name this image with a tag; "
    "set force-update to write one"
)


class ApplicationWriter(Protocol):
    """Patches an Application's spec (:class:`~image_updater.adapters.k8s.argocd.ArgoCDWriter`)."""

    async def update(
        self, namespace: str, name: str, updates: Sequence[ImageUpdate], *, dry_run: bool = False
    ) -> PatchOutcome: ...


class ApplicationReader(Protocol):
    """Reads one Application as it is now (:class:`~image_updater.adapters.k8s.source.KubernetesSource`)."""

    async def get_manifest(self, namespace: str, name: str) -> dict[str, Any]: ...


class EventSink(Protocol):
    """Records Events (:class:`~image_updater.adapters.k8s.events.EventRecorder`)."""

    async def images_updated(self, target: ObjectRef, changes: Sequence[Change]) -> str | None: ...


@dataclass(frozen=True)
class ClusterDeps:
    """What the cycle uses of the Kubernetes API; present only with the ``kubernetes`` source."""

    writer: ApplicationWriter
    reader: ApplicationReader
    events: EventSink | None = None


@dataclass(frozen=True)
class Patched:
    """What an ``argocd`` write-back did (or, in a dry run, would do): the changes and a rendering."""

    changes: tuple[Change, ...]
    diff: str = ""


# -- the tag running now ------------------------------------------------------------------------------


def _name_and_version(ref: str) -> tuple[str, str | None]:
    """``name:tag@digest`` -> (``name``, ``tag@digest``); a kustomize ``name=new:tag`` -> (``name``, ``tag``)."""
    key, sep, value = ref.partition("=")
    name, tag, digest = split_name_suffix(value if sep else ref)
    version = (tag or "") + (f"@{digest}" if digest else "")
    return (key.strip() if sep else name), (version or None)


def _same(name: str, wanted: str) -> bool:
    return name == wanted or same_image(name, wanted)


def summary_tag(app: AppSpec, image: ImageSpec) -> str | None:
    """The tag ``status.summary.images`` shows the image running with (``None`` if it does not)."""
    for ref in app.live.summary_images:
        name, version = _name_and_version(ref)
        if version and _same(name, image.written_name):
            return version
    return None


def override_tag(app: AppSpec, image: ImageSpec) -> str | None:
    """The tag the Application's spec overrides set for the image: its ``kustomize.images`` entry, or
    the Helm parameter named by ``helm.image-tag`` (default ``image.tag``) or ``helm.image-spec``."""
    kind = (app.source.source_type or "").lower()
    if kind == "kustomize":
        key = image.kustomize_image_name or image.written_name
        for entry in app.live.kustomize_images:
            name, version = _name_and_version(entry)
            if version and _same(name, key):
                return version
        return None
    if kind == "helm":
        params = {p.name: p.value for p in app.live.helm_parameters}
        if image.helm_image_spec:
            spec = params.get(image.helm_image_spec)
            return _name_and_version(spec)[1] if spec else None
        return params.get(image.helm_image_tag or DEFAULT_HELM_IMAGE_TAG) or None
    return None


def live_tag(app: AppSpec, image: ImageSpec) -> str | None:
    """The current tag for the ``argocd`` write-back: the spec's override, else the status summary."""
    return override_tag(app, image) or summary_tag(app, image)


# -- writing ------------------------------------------------------------------------------------------


async def write_application(
    app: AppSpec,
    updates: Sequence[ImageUpdate],
    cluster: ClusterDeps,
    *,
    dry_run: bool,
    may_write: Callable[[], bool],
    running: Mapping[str, str | None] | None = None,
) -> Patched:
    """Patch the Application with ``updates`` (re-reading it on a conflict), or in a dry run render the
    patch it would get. Raises :class:`WriteBackError` naming the Application when that fails, or when
    this replica may not write (it is no longer the leader).

    ``running`` (image label -> tag) fills in the old tag of a change whose override did not exist yet
    (the tag came from ``status.summary.images``), so messages say ``3.0.0 -> 3.2.0``.
    """
    if dry_run:
        manifest = await cluster.reader.get_manifest(app.namespace, app.name)
        patch, changes = plan_patch(manifest, updates)
        return Patched(_with_running(changes, running), render_patch(app, patch) if patch is not None else "")
    if not may_write():
        raise WriteBackError("not written: this replica is no longer the leader", app=app.name)
    outcome = await cluster.writer.update(app.namespace, app.name, updates)
    return Patched(_with_running(outcome.changes, running))


def _with_running(changes: Sequence[Change], running: Mapping[str, str | None] | None) -> tuple[Change, ...]:
    known = running or {}
    return tuple(c if c.old or not known.get(c.image) else dataclasses.replace(c, old=known[c.image]) for c in changes)


def render_patch(app: AppSpec, patch: dict[str, Any]) -> str:
    """The merge patch as YAML under a header naming the Application, for ``--dry-run``."""
    yaml = YAML(typ="safe")
    yaml.default_flow_style = False
    stream = StringIO()
    yaml.dump({"spec": patch}, stream)
    header = f"# Application {app.namespace}/{app.name}: merge patch (write-back-method argocd; not applied)\n"
    return header + stream.getvalue()


async def record_events(
    updated: Sequence[tuple[AppSpec, Sequence[Change]]],
    events: EventSink,
    log: structlog.typing.FilteringBoundLogger,
) -> None:
    """One ``ImagesUpdated`` Event per Application with changes; a failure is logged and passed over."""
    for app, changes in updated:
        if not changes:
            continue
        target = ObjectRef(app.namespace, app.name, uid=app.uid)
        try:
            await events.images_updated(target, changes)
        except ImageUpdaterError as e:
            log.warning("event not recorded", app=app.name, namespace=app.namespace, error=str(e))
