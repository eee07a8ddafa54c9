"""Fixtures shared by the adapter tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from lightkube import AsyncClient

from image_updater.adapters.k8s.client import build_client
from image_updater.adapters.k8s.secrets import SecretCredentials
from tests.harness.kubetarget import KubeTarget


@pytest.fixture
async def secrets(kube: KubeTarget) -> AsyncIterator[SecretCredentials]:
    """Secrets read through the product's client from the test's Kubernetes API (``kube``)."""
    client: AsyncClient = build_client(kube.kubeconfig, context=kube.context)
    yield SecretCredentials(client)
    await client.close()
