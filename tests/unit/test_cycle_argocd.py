"""The ``argocd`` write-back in the cycle, with the Kubernetes side faked: where the current tag comes
from (spec overrides, else ``status.summary.images``), what is patched, what a dry run renders, that a
failure stays with its Application, that nothing is written once the replica no longer leads, that the
files source refuses it, and which Events are recorded."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import structlog

from image_updater.adapters.k8s.argocd import ImageUpdate, PatchOutcome, plan_patch
from image_updater.adapters.k8s.events import ObjectRef
from image_updater.annotations import parse_application
from image_updater.config import GitSettings
from image_updater.errors import WriteBackError
from image_updater.model.changes import Change
from image_updater.model.spec import AppSpec, ImageSpec
from image_updater.selection.base import TagInfo
from image_updater.service.argocd_writeback import ClusterDeps, live_tag, override_tag, summary_tag
from image_updater.service.cycle import CycleDeps, CycleResult, Status, run_cycle

PREFIX = "argocd-image-updater.argoproj.io/"
IMAGE = "registry.example.com/team/web"


@pytest.fixture(autouse=True)
def quiet() -> Iterator[None]:
    with structlog.testing.capture_logs():
        yield


def manifest(
    name: str,
    images: str = IMAGE,
    *,
    source: dict[str, Any] | None = None,
    status: dict[str, Any] | None = None,
    **annotations: str,
) -> dict[str, Any]:
    notes = {PREFIX + "image-list": images} | {PREFIX + k.replace("_", "-"): v for k, v in annotations.items()}
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": {"name": name, "namespace": "apps", "uid": f"uid-{name}", "annotations": notes},
        "spec": {"source": {"repoURL": "https://git.example.com/c.git", "path": name, **(source or {})}},
        "status": status or {},
    }


KUSTOMIZE = {"kustomize": {"images": [f"{IMAGE}:1.0.0"]}}


class Tags:
    async def list_tags(self, image: ImageSpec) -> list[TagInfo]:
        return [TagInfo(t) for t in ("1.0.0", "1.1.0", "1.2.0")]

    async def with_metadata(self, image: ImageSpec, tags: Sequence[TagInfo]) -> list[TagInfo]:
        return list(tags)


class FakeCluster:
    """The Applications as the API server holds them; patches apply ``plan_patch`` as the writer does."""

    def __init__(self, *manifests: dict[str, Any], fail: str | None = None) -> None:
        self.objects = {m["metadata"]["name"]: m for m in manifests}
        self.fail = fail
        self.patched: list[str] = []
        self.events: list[tuple[ObjectRef, tuple[Change, ...]]] = []

    async def update(
        self, namespace: str, name: str, updates: Sequence[ImageUpdate], *, dry_run: bool = False
    ) -> PatchOutcome:
        if name == self.fail:
            raise WriteBackError(f"cannot patch Application {namespace}/{name}: HTTP 403 Forbidden", app=name)
        patch, changes = plan_patch(self.objects[name], updates)
        self.patched.append(name)
        if patch is not None:
            self.objects[name]["spec"].update(patch)
        return PatchOutcome(changes, 1, "2")

    async def get_manifest(self, namespace: str, name: str) -> dict[str, Any]:
        return self.objects[name]

    async def images_updated(self, target: ObjectRef, changes: Sequence[Change]) -> str | None:
        self.events.append((target, tuple(changes)))
        return "event"

    def deps(self, tmp_path: Path, **options: Any) -> CycleDeps:
        cluster = ClusterDeps(writer=self, reader=self, events=self)
        return CycleDeps(tags=Tags(), git=GitSettings(), cache_dir=tmp_path, cluster=cluster, **options)


def cycle(apps: Sequence[AppSpec], deps: CycleDeps) -> CycleResult:
    return asyncio.run(run_cycle(apps, deps))


def spec(raw: dict[str, Any]) -> AppSpec:
    return parse_application(raw)


def test_the_current_tag_comes_from_the_spec_overrides_else_from_the_status_summary() -> None:
    status = {"summary": {"images": [f"{IMAGE}:0.9.0", "nginx:1.25.3"]}}
    kustomized = spec(manifest("k", source=KUSTOMIZE, status={"sourceType": "Kustomize", **status}))
    image = kustomized.images[0]
    assert override_tag(kustomized, image) == "1.0.0" and summary_tag(kustomized, image) == "0.9.0"
    assert live_tag(kustomized, image) == "1.0.0"

    helm = {"helm": {"parameters": [{"name": "web.tag", "value": "1.1.0"}, {"name": "image.tag", "value": "7"}]}}
    charted = spec(manifest("h", source=helm, status={"sourceType": "Helm"}, **{"helm.image_tag": "web.tag"}))
    assert live_tag(charted, charted.images[0]) == "1.1.0"

    bare = spec(manifest("b", status={"sourceType": "Kustomize", **status}))
    assert live_tag(bare, bare.images[0]) == "0.9.0"
    nginx = spec(manifest("n", "nginx", status=status))
    assert live_tag(nginx, nginx.images[0]) == "1.25.3"  # docker.io/library/nginx is nginx
    unknown = spec(manifest("u", "ghcr.io/other/thing", status=status))
    assert live_tag(unknown, unknown.images[0]) is None


def test_an_argocd_application_is_patched_and_gets_an_event(tmp_path: Path) -> None:
    raw = manifest("web", f"{IMAGE}:~1", source=KUSTOMIZE, status={"sourceType": "Kustomize"})
    fake = FakeCluster(raw)

    result = cycle([spec(raw)], fake.deps(tmp_path))

    (outcome,) = result.apps
    assert outcome.status is Status.UPDATED and not result.commits
    assert fake.objects["web"]["spec"]["source"]["kustomize"]["images"] == [f"{IMAGE}:1.2.0"]
    assert [c.describe() for c in outcome.changes] == [f"{IMAGE}: 1.0.0 -> 1.2.0"]
    (target, changes), = fake.events
    assert (target.namespace, target.name, target.uid) == ("apps", "web", "uid-web") and changes


def test_a_dry_run_renders_the_patch_and_writes_nothing(tmp_path: Path) -> None:
    raw = manifest("web", source=KUSTOMIZE, status={"sourceType": "Kustomize"})
    fake = FakeCluster(raw)

    result = cycle([spec(raw)], fake.deps(tmp_path, dry_run=True))

    assert result.diffs == [
        "# Application apps/web: merge patch (write-back-method argocd; not applied)\n"
        f"spec:\n  source:\n    kustomize:\n      images:\n      - {IMAGE}:1.2.0\n"
    ]
    assert fake.patched == [] and fake.events == []
    assert fake.objects["web"]["spec"]["source"]["kustomize"]["images"] == [f"{IMAGE}:1.0.0"]


def test_one_application_failing_to_patch_leaves_the_others(tmp_path: Path) -> None:
    denied = manifest("denied", source=KUSTOMIZE, status={"sourceType": "Kustomize"})
    fine = manifest("fine", source=KUSTOMIZE, status={"sourceType": "Kustomize"})
    fake = FakeCluster(denied, fine, fail="denied")

    result = cycle([spec(denied), spec(fine)], fake.deps(tmp_path))

    by_name = {o.app.name: o for o in result.apps}
    assert by_name["denied"].status is Status.FAILED and by_name["fine"].status is Status.UPDATED
    assert "application denied: cannot patch Application apps/denied: HTTP 403" in str(by_name["denied"].errors()[0])
    assert by_name["denied"].images[0].status is Status.FAILED
    assert [t.name for t, _ in fake.events] == ["fine"]


def test_no_write_once_this_replica_no_longer_leads(tmp_path: Path) -> None:
    raw = manifest("web", source=KUSTOMIZE, status={"sourceType": "Kustomize"})
    fake = FakeCluster(raw)

    result = cycle([spec(raw)], fake.deps(tmp_path, may_write=lambda: False))

    assert fake.patched == [] and fake.events == []
    assert "no longer the leader" in str(result.apps[0].errors()[0])


def test_without_a_current_tag_only_force_update_writes(tmp_path: Path) -> None:
    bare = manifest("bare", status={"sourceType": "Kustomize"})
    forced = manifest("forced", status={"sourceType": "Kustomize"}, force_update="true")
    fake = FakeCluster(bare, forced)

    result = cycle([spec(bare), spec(forced)], fake.deps(tmp_path))

    skipped, written = result.apps
    assert skipped.status is Status.UNCHANGED and "status.summary.images" in skipped.images[0].reason
    assert written.status is Status.UPDATED and fake.patched == ["forced"]


def test_the_files_source_refuses_the_argocd_method(tmp_path: Path) -> None:
    raw = manifest("web", source=KUSTOMIZE)
    deps = CycleDeps(tags=Tags(), git=GitSettings(), cache_dir=tmp_path)

    (outcome,) = cycle([spec(raw)], deps).apps

    assert outcome.status is Status.FAILED
    assert "files source does not use; set write-back-method: git" in str(outcome.errors()[0])
