"""The Kubernetes API a test talks to: the in-process fake, or a real cluster when one is named.

By default every test gets a fresh :class:`~tests.harness.kubeapi.FakeKubeApi`. With
``IMAGE_UPDATER_TEST_KUBECONFIG=/path/to/kubeconfig`` (and optionally
``IMAGE_UPDATER_TEST_KUBECONTEXT``) the same tests run against that cluster instead, which must have
Argo CD's ``Application`` CRD installed; each test works in namespaces of its own, deleted afterwards.
Tests that need the fake's extras (request log, injected faults, compaction) call :meth:`require_fake`,
which skips them against a real cluster.

Setting-up and checking goes through a separate lightkube (sync) client over HTTP, never through the
code under test.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from pathlib import Path
from typing import Any

import pytest
from lightkube import Client, KubeConfig
from lightkube.core.exceptions import ApiError
from lightkube.core.resource_registry import resource_registry
from lightkube.generic_resource import create_namespaced_resource
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import Namespace
from lightkube.types import PatchType

from tests.harness.kubeapi import FakeKubeApi

ENV_KUBECONFIG = "IMAGE_UPDATER_TEST_KUBECONFIG"
ENV_CONTEXT = "IMAGE_UPDATER_TEST_KUBECONTEXT"

# the same class the product registers (lightkube returns the registered one)
create_namespaced_resource("argoproj.io", "v1alpha1", "Application", "applications")


def _plain(obj: Any) -> dict[str, Any]:
    return obj.to_dict() if hasattr(obj, "to_dict") else dict(obj)


class KubeTarget:
    """The API server of one test, with helpers that bypass the code under test."""

    def __init__(self, tmp: Path, *, cluster_kubeconfig: str | None = None, context: str | None = None) -> None:
        self.fake: FakeKubeApi | None = None
        if cluster_kubeconfig:
            self.kubeconfig: dict[str, Any] | str = cluster_kubeconfig
            self.kubeconfig_path = Path(cluster_kubeconfig)
            self.context = context
            config = KubeConfig.from_file(cluster_kubeconfig)
        else:
            self.fake = FakeKubeApi()
            self.kubeconfig = self.fake.kubeconfig()
            self.kubeconfig_path = tmp / "kubeconfig.json"
            self.kubeconfig_path.write_text(json.dumps(self.kubeconfig))
            self.context = None
            config = KubeConfig.from_dict(self.kubeconfig)
        self.client = Client(config.get(context), field_manager="image-updater-tests")
        self._namespaces: list[str] = []

    @property
    def is_fake(self) -> bool:
        return self.fake is not None

    def require_fake(self) -> FakeKubeApi:
        """The fake server; skips the test against a real cluster (it needs the fake's extras)."""
        if self.fake is None:
            pytest.skip("needs the fake API server's request log or fault injection")
        return self.fake

    def namespace(self, hint: str = "t") -> str:
        """A new namespace for this test (created; deleted by :meth:`close`)."""
        name = f"iu-{hint}-{uuid.uuid4().hex[:6]}"
        self.client.create(Namespace(metadata=ObjectMeta(name=name)))
        self._namespaces.append(name)
        return name

    def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Create an object given as a dict (``apiVersion`` and ``kind`` set); returns it as stored."""
        model = resource_registry.load(obj["apiVersion"], obj["kind"])
        return _plain(self.client.create(model.from_dict(obj)))

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any]:
        model = resource_registry.load(api_version, kind)
        return _plain(self.client.get(model, name, namespace=namespace))

    def merge_patch(self, api_version: str, kind: str, namespace: str, name: str, patch: Any) -> dict[str, Any]:
        """A change by someone else (Argo CD, a user): a merge patch over HTTP."""
        model = resource_registry.load(api_version, kind)
        return _plain(self.client.patch(model, name, patch, namespace=namespace, patch_type=PatchType.MERGE))

    def list(self, api_version: str, kind: str, namespace: str) -> list[dict[str, Any]]:
        model = resource_registry.load(api_version, kind)
        return [_plain(o) for o in self.client.list(model, namespace=namespace)]

    def log_tail(self) -> str:
        """The last requests the fake served (attached to a failed test's report)."""
        if self.fake is None:
            return ""
        return "\n".join(f"{r.method} {r.path} {r.query} -> {r.status}" for r in self.fake.requests[-40:])

    def close(self) -> None:
        for name in self._namespaces:
            with contextlib.suppress(ApiError):
                self.client.delete(Namespace, name)
        self.client.close()
        if self.fake is not None:
            self.fake.close()


def open_target(tmp: Path) -> KubeTarget:
    """The fake, or the cluster named by ``$IMAGE_UPDATER_TEST_KUBECONFIG``."""
    return KubeTarget(
        tmp, cluster_kubeconfig=os.environ.get(ENV_KUBECONFIG) or None, context=os.environ.get(ENV_CONTEXT)
    )


IMAGE_LIST = "argocd-image-updater.argoproj.io/image-list"


def application(
    name: str,
    namespace: str,
    *,
    images: str | None = "nginx:~1.25",
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    source: dict[str, Any] | None = None,
    status: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """An Argo CD Application manifest valid under Argo CD's CRD (project and destination set)."""
    notes = dict(annotations or {})
    if images is not None:
        notes[IMAGE_LIST] = images
    manifest: dict[str, Any] = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": {"name": name, "namespace": namespace, "labels": labels or {}, "annotations": notes},
        "spec": {
            "project": "default",
            "destination": {"server": "https://kubernetes.default.svc", "namespace": "default"},
            "source": source or {"repoURL": "https://git.example.com/config.git", "path": f"apps/{name}"},
        },
    }
    if status is not None:
        manifest["status"] = status
    return manifest
