"""The argocd write-back: what the patch holds (AIU semantics), and patching through HTTP with conflicts."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from lightkube import AsyncClient

from image_updater.adapters.k8s.argocd import ArgoCDWriter, ImageUpdate, plan_patch, source_type
from image_updater.adapters.k8s.client import build_client
from image_updater.annotations import parse_image_list
from image_updater.errors import WriteBackError
from image_updater.model.spec import ImageSpec
from tests.harness.kubeapi import RecordedRequest
from tests.harness.kubetarget import KubeTarget, application

pytestmark = pytest.mark.anyio
APP = ("argoproj.io/v1alpha1", "Application")
P = "argocd-image-updater.argoproj.io/"



@pytest.fixture
async def client(kube: KubeTarget) -> AsyncIterator[AsyncClient]:
    built = build_client(kube.kubeconfig, context=kube.context)
    yield built
    await built.close()


def image(entry: str, **annotations: str) -> ImageSpec:
    """The ImageSpec the annotations parser makes of one image-list entry and per-image annotations."""
    notes = {P + "image-list": entry, **{P + k: v for k, v in annotations.items()}}
    return parse_image_list(notes, app="app")[0]


def kustomize_app(images: list[str] | None, status: str | None = "Kustomize") -> dict[str, Any]:
    source: dict[str, Any] = {"repoURL": "https://git.example.com/c.git", "path": "p", "kustomize": {}}
    if images is not None:
        source["kustomize"]["images"] = images
    return {"metadata": {"name": "app"}, "spec": {"source": source}, "status": {"sourceType": status} if status else {}}


def helm_app(parameters: list[dict[str, Any]] | None) -> dict[str, Any]:
    helm: dict[str, Any] = {"valueFiles": ["values.yaml"]}
    if parameters is not None:
        helm["parameters"] = parameters
    return {
        "metadata": {"name": "app"},
        "spec": {"source": {"repoURL": "r", "helm": helm}},
        "status": {"sourceType": "Helm"},
    }


# -- what the patch holds ---------------------------------------------------------------------------


def test_kustomize_replaces_the_entry_for_the_same_image_and_keeps_the_others() -> None:
    manifest = kustomize_app(["docker.io/library/nginx:1.24.0", "redis:7.0", "ghcr.io/x/y@sha256:" + "a" * 64])
    patch, changes = plan_patch(manifest, [ImageUpdate(image("nginx:~1.25"), "1.25.3")])
    assert patch == {
        "source": {"kustomize": {"images": ["nginx:1.25.3", "redis:7.0", "ghcr.io/x/y@sha256:" + "a" * 64]}}
    }
    assert [c.describe() for c in changes] == ["nginx: 1.24.0 -> 1.25.3"]
    assert manifest["spec"]["source"]["kustomize"]["images"][0] == "docker.io/library/nginx:1.24.0"  # untouched


def test_kustomize_image_name_writes_name_equals_new_name_and_appends_when_absent() -> None:
    spec = image("web=127.0.0.1:5000/team/web:~1.0", **{"web.kustomize.image-name": "web-placeholder"})
    patch, changes = plan_patch(kustomize_app(["web-placeholder=old/web:0.9", "other:1"]), [ImageUpdate(spec, "1.0.2")])
    assert patch["source"]["kustomize"]["images"] == ["web-placeholder=127.0.0.1:5000/team/web:1.0.2", "other:1"]  # type: ignore[index]
    assert changes[0].old == "0.9"
    appended, added = plan_patch(kustomize_app(None), [ImageUpdate(image("redis"), "7.2", digest="sha256:" + "b" * 64)])
    assert appended == {"source": {"kustomize": {"images": ["redis:7.2@sha256:" + "b" * 64]}}}
    assert added[0].old is None and added[0].new == "7.2@sha256:" + "b" * 64


def test_nothing_to_patch_when_every_image_is_current() -> None:
    assert plan_patch(kustomize_app(["nginx:1.25.3"]), [ImageUpdate(image("nginx"), "1.25.3")]) == (None, ())
    current = [
        {"name": "image.name", "value": "nginx", "forceString": True},
        {"name": "image.tag", "value": "1.25.3", "forceString": True},
    ]
    assert plan_patch(helm_app(current), [ImageUpdate(image("nginx"), "1.25.3")]) == (None, ())


def test_helm_defaults_to_image_name_and_tag_as_forced_strings_keeping_other_parameters() -> None:
    params = [{"name": "replicas", "value": "2"}, {"name": "image.tag", "value": "1.19"}]
    patch, changes = plan_patch(helm_app(params), [ImageUpdate(image("nginx:1.x"), "1.20")])
    assert patch == {
        "source": {
            "helm": {
                "valueFiles": ["values.yaml"],
                "parameters": [
                    {"name": "replicas", "value": "2"},
                    {"name": "image.tag", "value": "1.20", "forceString": True},  # 1.20 stays a string
                    {"name": "image.name", "value": "nginx", "forceString": True},
                ],
            }
        }
    }
    assert changes[0].describe() == "nginx: 1.19 -> 1.20"


def test_helm_annotations_name_the_parameters_or_one_image_spec() -> None:
    named = image(
        "api=ghcr.io/org/api", **{"api.helm.image-name": "api.image.repository", "api.helm.image-tag": "api.image.tag"}
    )
    patch, _ = plan_patch(helm_app(None), [ImageUpdate(named, "v2")])
    assert patch["source"]["helm"]["parameters"] == [  # type: ignore[index]
        {"name": "api.image.repository", "value": "ghcr.io/org/api", "forceString": True},
        {"name": "api.image.tag", "value": "v2", "forceString": True},
    ]
    spec = image("api=ghcr.io/org/api", **{"api.helm.image-spec": "api.image"})
    params = [{"name": "api.image", "value": "ghcr.io/org/api:v1"}]
    patch, changes = plan_patch(helm_app(params), [ImageUpdate(spec, "v2")])
    assert patch["source"]["helm"]["parameters"] == [  # type: ignore[index]
        {"name": "api.image", "value": "ghcr.io/org/api:v2", "forceString": True}
    ]
    assert changes[0].old == "v1"


def test_the_source_type_comes_from_the_status_first() -> None:
    assert source_type(kustomize_app([], status=None)) == "Kustomize"  # spec says kustomize
    helm_by_status = kustomize_app([], status="Helm")
    assert source_type(helm_by_status) == "Helm"
    with pytest.raises(WriteBackError, match=r"Kustomize or Helm Application \(source type: Directory\)"):
        plan_patch(kustomize_app([], status="Directory"), [ImageUpdate(image("nginx"), "1")])


def test_several_sources_change_the_first_helm_or_kustomize_one() -> None:
    manifest = {
        "metadata": {"name": "app"},
        "spec": {
            "sources": [
                {"repoURL": "values", "ref": "values"},
                {"repoURL": "chart", "helm": {"parameters": [{"name": "x", "value": "1"}]}},
            ]
        },
        "status": {"sourceTypes": ["Directory", "Helm"]},
    }
    patch, _ = plan_patch(manifest, [ImageUpdate(image("nginx"), "1.2")])
    assert patch is not None and patch["sources"][0] == {"repoURL": "values", "ref": "values"}
    assert [p["name"] for p in patch["sources"][1]["helm"]["parameters"]] == ["x", "image.name", "image.tag"]


# -- through the API --------------------------------------------------------------------------------


async def test_the_patch_is_applied_and_carries_the_resource_version(kube: KubeTarget, client: AsyncClient) -> None:
    ns = kube.namespace("argo")
    source = {"repoURL": "r", "path": "p", "kustomize": {"images": ["nginx:1.24.0", "redis:7.0"]}}
    created = kube.create(application("web", ns, source=source))
    outcome = await ArgoCDWriter(client).update(ns, "web", [ImageUpdate(image("nginx"), "1.25.3")])
    assert [c.describe() for c in outcome.changes] == ["nginx: 1.24.0 -> 1.25.3"] and outcome.attempts == 1
    stored = kube.get(*APP, ns, "web")
    assert stored["spec"]["source"]["kustomize"]["images"] == ["nginx:1.25.3", "redis:7.0"]
    assert stored["metadata"]["generation"] == created["metadata"]["generation"] + 1
    assert outcome.resource_version == stored["metadata"]["resourceVersion"]
    if kube.fake is not None:
        (patch,) = kube.fake.requests_to("PATCH", f"/namespaces/{ns}/applications/web")
        assert patch.content_type == "application/merge-patch+json"
        assert patch.body["metadata"] == {"resourceVersion": created["metadata"]["resourceVersion"]}
    again = await ArgoCDWriter(client).update(ns, "web", [ImageUpdate(image("nginx"), "1.25.3")])
    assert again.changes == () and kube.get(*APP, ns, "web")["metadata"]["resourceVersion"] == outcome.resource_version


class InterferingClient:
    """The product's client, but before each of its first ``times`` patches someone else edits the
    Application over HTTP (as Argo CD does when it refreshes the status)."""

    def __init__(self, client: AsyncClient, kube: KubeTarget, namespace: str, *, times: int) -> None:
        self._client, self._kube, self._ns, self.left = client, kube, namespace, times

    async def get(self, *args: Any, **kwargs: Any) -> Any:
        return await self._client.get(*args, **kwargs)

    async def patch(self, res: Any, name: str, obj: Any, **kwargs: Any) -> Any:
        if self.left > 0:
            self.left -= 1
            stored = self._kube.get(*APP, self._ns, name)
            images = [*stored["spec"]["source"]["kustomize"]["images"], f"sidecar:{self.left}"]
            change = {
                "status": {"reconciledAt": f"t{self.left}"},
                "spec": {"source": {"kustomize": {"images": images}}},
            }
            self._kube.merge_patch(*APP, self._ns, name, change)
        return await self._client.patch(res, name, obj, **kwargs)


async def test_a_concurrent_change_gives_409_and_the_update_is_reapplied_on_the_new_version(
    kube: KubeTarget, client: AsyncClient
) -> None:
    ns = kube.namespace("conflict")
    kube.create(application("web", ns, source={"repoURL": "r", "path": "p", "kustomize": {"images": ["nginx:1.0"]}}))
    interfering = InterferingClient(client, kube, ns, times=1)
    outcome = await ArgoCDWriter(interfering).update(ns, "web", [ImageUpdate(image("nginx"), "1.1")])  # type: ignore[arg-type]
    assert outcome.attempts == 2
    stored = kube.get(*APP, ns, "web")
    assert stored["spec"]["source"]["kustomize"]["images"] == ["nginx:1.1", "sidecar:0"]  # both changes kept
    assert stored["status"]["reconciledAt"] == "t0"
    if kube.fake is not None:
        statuses = [r.status for r in kube.fake.requests_to("PATCH", "/applications/web") if not _by_tests(r)]
        assert statuses == [409, 200]


def _by_tests(request: RecordedRequest) -> bool:
    return request.query.get("fieldManager") == "image-updater-tests"


async def test_conflicts_are_retried_a_bounded_number_of_times(kube: KubeTarget, client: AsyncClient) -> None:
    ns = kube.namespace("conflict")
    kube.create(application("web", ns, source={"repoURL": "r", "path": "p", "kustomize": {"images": ["nginx:1.0"]}}))
    interfering = InterferingClient(client, kube, ns, times=100)
    writer = ArgoCDWriter(interfering, conflict_attempts=3)  # type: ignore[arg-type]
    with pytest.raises(WriteBackError, match=f"Application {ns}/web kept changing: 3 patches met a conflict"):
        await writer.update(ns, "web", [ImageUpdate(image("nginx"), "1.1")])
    assert interfering.left == 97
    assert kube.get(*APP, ns, "web")["spec"]["source"]["kustomize"]["images"][0] == "nginx:1.0"


async def test_a_missing_application_and_dry_run(kube: KubeTarget, client: AsyncClient) -> None:
    ns = kube.namespace("missing")
    with pytest.raises(WriteBackError, match=f"cannot read Application {ns}/gone: HTTP 404") as caught:
        await ArgoCDWriter(client).update(ns, "gone", [ImageUpdate(image("nginx"), "1")])
    assert caught.value.app == "gone"
    kube.create(application("web", ns, source={"repoURL": "r", "path": "p", "helm": {}}))
    planned = await ArgoCDWriter(client).update(ns, "web", [ImageUpdate(image("nginx"), "2")], dry_run=True)
    assert [c.describe() for c in planned.changes] == ["nginx: (none) -> 2"]
    assert kube.get(*APP, ns, "web")["spec"]["source"]["helm"] == {}
    if kube.fake is not None:
        assert not [r for r in kube.fake.requests_to("PATCH") if not _by_tests(r)]
