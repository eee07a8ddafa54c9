"""The Kubernetes install: ``kubectl kustomize manifests/`` renders, every object validates offline against
the Kubernetes schemas (kubernetes-validate, strict), and the install says what the service needs: probes
on /healthz and /readyz, a non-root container, least-privilege RBAC, a config the service accepts."""

from __future__ import annotations

import copy
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from ruamel.yaml import YAML

from image_updater.config import settings_from_mapping
from tests.conftest import require_binary

pytestmark = pytest.mark.integration

MANIFESTS = Path(__file__).resolve().parents[2] / "manifests"
KUBERNETES_VERSION = "1.32.0"  # the kubectl on the project's machines


@pytest.fixture(scope="module")
def rendered() -> list[dict[str, Any]]:
    kubectl = require_binary("kubectl", "kubernetes-client")
    done = subprocess.run([kubectl, "kustomize", str(MANIFESTS)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def one(objects: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]
    assert len(found) == 1, f"{kind} {name or ''}: {len(found)} found"
    return found[0]


def test_every_rendered_object_validates_against_the_kubernetes_schemas(rendered: list[dict[str, Any]]) -> None:
    kinds = sorted(o["kind"] for o in rendered)
    assert kinds == [
        "ClusterRole",
        "ClusterRole",
        "ClusterRoleBinding",
        "ConfigMap",
        "Deployment",
        "Role",
        "RoleBinding",
        "RoleBinding",
        "Service",
        "ServiceAccount",
    ]
    for obj in rendered:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        if obj["kind"] not in ("ClusterRole", "ClusterRoleBinding"):
            assert obj["metadata"]["namespace"] == "argocd", obj["metadata"]["name"]


def test_the_validation_would_catch_a_mistake(rendered: list[dict[str, Any]]) -> None:
    broken = copy.deepcopy(one(rendered, "Deployment"))
    broken["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGet"]["pathh"] = "/healthz"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def test_deployment_probes_ports_and_security(rendered: list[dict[str, Any]]) -> None:
    pod = one(rendered, "Deployment")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}

    assert pod["serviceAccountName"] == one(rendered, "ServiceAccount")["metadata"]["name"]
    assert container["image"] == "ghcr.io/example/image-updater:0.1.0"
    assert container["args"][:1] == ["run"]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "health"}
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["terminationGracePeriodSeconds"] > 20  # more than the service's 20 s write-back grace

    config_map = one(rendered, "ConfigMap")
    volume = next(v for v in pod["volumes"] if "configMap" in v)
    assert volume["configMap"]["name"] == config_map["metadata"]["name"]  # the generated, hashed name
    settings = settings_from_mapping(YAML(typ="rt").load(config_map["data"]["config.yaml"]))
    assert ports == {"health": settings.health_port, "webhook": settings.webhook.port}
    assert settings.git.cache_dir in [m["mountPath"] for m in container["volumeMounts"]]

    service = one(rendered, "Service")
    assert {p["name"]: p["targetPort"] for p in service["spec"]["ports"]} == {"webhook": "webhook", "metrics": "health"}
    labels = one(rendered, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()


def rules_by_resource(role: dict[str, Any]) -> dict[tuple[str, str], set[str]]:
    found: dict[tuple[str, str], set[str]] = {}
    for rule in role["rules"]:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                found.setdefault((group, resource), set()).update(rule["verbs"])
    return found


def test_rbac_is_least_privilege(rendered: list[dict[str, Any]]) -> None:
    roles = [o for o in rendered if o["kind"] in ("ClusterRole", "Role")]
    granted: dict[tuple[str, str], set[str]] = {}
    for role in roles:
        for key, verbs in rules_by_resource(role).items():
            granted.setdefault(key, set()).update(verbs)
        assert all("*" not in r["verbs"] and "*" not in r["resources"] for r in role["rules"])

    assert granted == {
        ("argoproj.io", "applications"): {"get", "list", "watch", "patch"},
        ("", "secrets"): {"get"},
        ("", "events"): {"create", "patch"},
        ("coordination.k8s.io", "leases"): {"get", "create", "update"},
    }
    # Secrets and Leases are granted in the install namespace only, never cluster-wide.
    cluster_bound = {b["roleRef"]["name"] for b in rendered if b["kind"] == "ClusterRoleBinding"}
    assert cluster_bound == {"image-updater"}
    assert ("", "secrets") not in rules_by_resource(one(rendered, "ClusterRole", "image-updater"))
    account = one(rendered, "ServiceAccount")["metadata"]
    for binding in (o for o in rendered if o["kind"].endswith("Binding")):
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": account["name"], "namespace": "argocd"}]
