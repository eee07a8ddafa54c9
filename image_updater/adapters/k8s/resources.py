"""The Kubernetes resource types this package talks to, and small helpers on their raw objects."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lightkube.generic_resource import create_namespaced_resource

#: Argo CD's ``Application`` custom resource; instances are dicts of the JSON object
Application = create_namespaced_resource("argoproj.io", "v1alpha1", "Application", "applications")

APPLICATION_API_VERSION = "argoproj.io/v1alpha1"
APPLICATION_KIND = "Application"


def as_manifest(obj: Mapping[str, Any]) -> dict[str, Any]:
    """A plain-dict Application manifest with ``apiVersion`` and ``kind`` set (list items may lack them)."""
    manifest = dict(obj)
    manifest.setdefault("apiVersion", APPLICATION_API_VERSION)
    manifest.setdefault("kind", APPLICATION_KIND)
    return manifest


def object_key(obj: Mapping[str, Any]) -> str:
    """``namespace/name`` of a raw object."""
    meta = obj.get("metadata") or {}
    return f"{meta.get('namespace', '')}/{meta.get('name', '')}"
