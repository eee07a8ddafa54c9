"""Proves the fake Kubernetes API server against independent clients: kubectl and raw HTTP.

Nothing here touches the product. Each test pins one behaviour of the real API server that the
product's Kubernetes code relies on (optimistic concurrency, no-op writes, watches, selectors, patch
types, Status errors), so that the product's tests against the fake mean something.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import require_binary
from tests.harness.kubeapi import TOKEN, FakeKubeApi

APPS = "/apis/argoproj.io/v1alpha1/namespaces/argocd/applications"
SECRETS = "/api/v1/namespaces/argocd/secrets"
MERGE = {"Content-Type": "application/merge-patch+json"}
JSONPATCH = {"Content-Type": "application/json-patch+json"}


@pytest.fixture
def api() -> Iterator[FakeKubeApi]:
    with FakeKubeApi() as server:
        yield server


@pytest.fixture
def http(api: FakeKubeApi) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10) as client:
        yield client


def app(name: str, labels: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": {"name": name, "labels": labels or {}},
        "spec": spec or {"project": "default"},
    }


def create(http: httpx.Client, name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    response = http.post(APPS, json=app(name, labels))
    assert response.status_code == 201, response.text
    return response.json()


def test_requests_without_the_token_are_unauthorized(api: FakeKubeApi) -> None:
    response = httpx.get(api.url + APPS)
    assert response.status_code == 401
    assert response.json()["reason"] == "Unauthorized"


def test_create_sets_uid_generation_and_increasing_resource_versions(http: httpx.Client) -> None:
    first, second = create(http, "a"), create(http, "b")
    assert first["metadata"]["uid"] != second["metadata"]["uid"]
    assert first["metadata"]["generation"] == 1
    assert int(second["metadata"]["resourceVersion"]) > int(first["metadata"]["resourceVersion"])
    again = http.post(APPS, json=app("a"))
    assert again.status_code == 409 and again.json()["reason"] == "AlreadyExists"


def test_merge_patch_with_a_stale_resource_version_is_a_conflict(http: httpx.Client) -> None:
    rv = create(http, "a")["metadata"]["resourceVersion"]
    ok = http.patch(f"{APPS}/a", json={"metadata": {"resourceVersion": rv}, "spec": {"x": 1}}, headers=MERGE)
    assert ok.status_code == 200 and ok.json()["metadata"]["generation"] == 2
    stale = http.patch(f"{APPS}/a", json={"metadata": {"resourceVersion": rv}, "spec": {"x": 2}}, headers=MERGE)
    assert stale.status_code == 409
    assert stale.headers["Content-Type"] == "application/json"
    assert stale.json()["reason"] == "Conflict" and "has been modified" in stale.json()["message"]
    assert http.get(f"{APPS}/a").json()["spec"]["x"] == 1


def test_json_patch_replacing_the_resource_version_is_conditional(http: httpx.Client) -> None:
    rv = create(http, "a")["metadata"]["resourceVersion"]
    ops = [
        {"op": "replace", "path": "/metadata/resourceVersion", "value": rv},
        {"op": "add", "path": "/spec/x", "value": 1},
    ]
    assert http.patch(f"{APPS}/a", json=ops, headers=JSONPATCH).status_code == 200
    assert http.patch(f"{APPS}/a", json=ops, headers=JSONPATCH).status_code == 409
    failed_test = [{"op": "test", "path": "/spec/x", "value": 99}]
    assert http.patch(f"{APPS}/a", json=failed_test, headers=JSONPATCH).status_code == 422


def test_a_no_op_write_keeps_the_resource_version_and_status_does_not_bump_generation(http: httpx.Client) -> None:
    created = create(http, "a")
    same = http.patch(f"{APPS}/a", json={"spec": {"project": "default"}}, headers=MERGE).json()
    assert same["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]
    status = http.patch(f"{APPS}/a", json={"status": {"sourceType": "Helm"}}, headers=MERGE).json()
    assert status["metadata"]["generation"] == 1
    assert status["metadata"]["resourceVersion"] != created["metadata"]["resourceVersion"]


def test_strategic_merge_is_refused_for_custom_resources_only(http: httpx.Client) -> None:
    create(http, "a")
    strategic = {"Content-Type": "application/strategic-merge-patch+json"}
    assert http.patch(f"{APPS}/a", json={"spec": {"x": 1}}, headers=strategic).status_code == 415
    http.post(SECRETS, json={"metadata": {"name": "s"}, "stringData": {"k": "v"}})
    assert http.patch(f"{SECRETS}/s", json={"metadata": {"labels": {"a": "b"}}}, headers=strategic).status_code == 200


def test_apply_creates_then_merges_and_honours_the_resource_version(http: httpx.Client) -> None:
    apply = {"Content-Type": "application/apply-patch+yaml"}
    body = "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: {name: a}\nspec: {x: 1}\n"
    assert http.patch(f"{APPS}/a", content=body, headers=apply).status_code == 422  # no fieldManager
    created = http.patch(f"{APPS}/a?fieldManager=t", content=body, headers=apply)
    assert created.status_code == 201
    stale = {**app("a"), "metadata": {"name": "a", "resourceVersion": "1"}, "spec": {"x": 3}}
    merged = http.patch(f"{APPS}/a?fieldManager=t", content=json.dumps({"spec": {"y": 2}}), headers=apply).json()
    assert merged["spec"] == {"x": 1, "y": 2}
    assert http.patch(f"{APPS}/a?fieldManager=t", content=json.dumps(stale), headers=apply).status_code == 409


def test_put_needs_the_resource_version_for_custom_resources(http: httpx.Client) -> None:
    current = create(http, "a")
    without = {**current, "metadata": {k: v for k, v in current["metadata"].items() if k != "resourceVersion"}}
    assert http.put(f"{APPS}/a", json=without).status_code == 422
    assert http.put(f"{APPS}/a", json={**current, "spec": {"x": 1}}).status_code == 200
    assert http.put(f"{APPS}/a", json={**current, "spec": {"x": 2}}).status_code == 409


def test_list_with_label_selectors_namespaces_and_pages(http: httpx.Client) -> None:
    create(http, "a", {"team": "web", "tier": "front"})
    create(http, "b", {"team": "web", "tier": "db"})
    create(http, "c", {"team": "ops"})
    http.post("/apis/argoproj.io/v1alpha1/namespaces/other/applications", json=app("d", {"team": "web"}))

    def names(path: str, **params: str) -> list[str]:
        return [i["metadata"]["name"] for i in http.get(path, params=params).json()["items"]]

    everywhere = "/apis/argoproj.io/v1alpha1/applications"
    assert names(everywhere, labelSelector="team=web") == ["a", "b", "d"]
    assert names(APPS, labelSelector="team=web,tier!=db") == ["a"]
    assert names(APPS, labelSelector="tier in (db,x),team") == ["b"]
    assert names(APPS, labelSelector="!tier") == ["c"]
    assert names(everywhere, fieldSelector="metadata.namespace=other") == ["d"]
    assert http.get(APPS, params={"labelSelector": "a=(b"}).status_code == 400
    first = http.get(everywhere, params={"limit": "3"}).json()
    assert [i["metadata"]["name"] for i in first["items"]] == ["a", "b", "c"]
    assert first["metadata"]["remainingItemCount"] == 1
    rest = http.get(everywhere, params={"limit": "3", "continue": first["metadata"]["continue"]}).json()
    assert [i["metadata"]["name"] for i in rest["items"]] == ["d"] and "continue" not in rest["metadata"]


def test_secrets_turn_string_data_into_base64_data(http: httpx.Client) -> None:
    created = http.post(SECRETS, json={"metadata": {"name": "s"}, "stringData": {"k": "väl"}}).json()
    assert created["data"] == {"k": "dsOkbA=="} and "stringData" not in created


def watch_lines(http: httpx.Client, path: str, count: int, **params: str) -> list[dict[str, Any]]:
    """The first ``count`` events of a watch (it would stream on until its timeout)."""
    events: list[dict[str, Any]] = []
    with http.stream("GET", path, params={"watch": "1", "timeoutSeconds": "5", **params}) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if line:
                events.append(json.loads(line))
            if len(events) == count:
                break
    return events


def test_watch_from_a_resource_version_streams_changes_in_order(http: httpx.Client) -> None:
    rv = create(http, "a", {"team": "web"})["metadata"]["resourceVersion"]
    create(http, "b", {"team": "web"})
    http.patch(f"{APPS}/a", json={"metadata": {"labels": {"team": "ops"}}}, headers=MERGE)
    http.delete(f"{APPS}/b")
    events = watch_lines(http, APPS, 3, resourceVersion=rv)
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [
        ("ADDED", "b"),
        ("MODIFIED", "a"),
        ("DELETED", "b"),
    ]
    versions = [int(e["object"]["metadata"]["resourceVersion"]) for e in events]
    assert versions == sorted(versions) and versions[0] > int(rv)
    # with a selector, an object that stops matching is DELETED for that watch
    selected = watch_lines(http, APPS, 3, resourceVersion=rv, labelSelector="team=web")
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in selected] == [
        ("ADDED", "b"),
        ("DELETED", "a"),
        ("DELETED", "b"),
    ]


def test_watch_without_a_version_starts_with_the_current_objects_and_old_versions_are_gone(
    api: FakeKubeApi, http: httpx.Client
) -> None:
    create(http, "a")
    assert [e["type"] for e in watch_lines(http, APPS, 1)] == ["ADDED"]
    create(http, "b")
    api.store.compact()
    gone = watch_lines(http, APPS, 1, resourceVersion="1")
    assert gone[0]["type"] == "ERROR" and gone[0]["object"]["code"] == 410


def test_discovery_lists_the_served_resources(http: httpx.Client) -> None:
    groups = http.get("/apis").json()["groups"]
    assert {"argoproj.io", "coordination.k8s.io"} <= {g["name"] for g in groups}
    resources = http.get("/apis/argoproj.io/v1alpha1").json()["resources"]
    assert resources[0]["name"] == "applications" and resources[0]["namespaced"]


def test_kubectl_talks_to_the_fake(tmp_path: Path) -> None:
    """The official client (kubectl) against the fake: discovery, list by label, patch, create."""
    kubectl = require_binary("kubectl", "kubernetes-client")
    with FakeKubeApi(token=None) as api:  # kubectl sends no bearer token over plain HTTP
        config = tmp_path / "kubeconfig"
        config.write_text(json.dumps(api.kubeconfig("argocd")))

        def run(*args: str) -> str:
            done = subprocess.run(
                [kubectl, "--kubeconfig", str(config), *args], capture_output=True, text=True, timeout=60, check=False
            )
            assert done.returncode == 0, done.stderr
            return done.stdout.strip()

        api.store.create(api_resource("applications"), "argocd", app("web", {"team": "web"}))
        api.store.create(api_resource("applications"), "argocd", app("db", {"team": "db"}))
        assert run("get", "applications.argoproj.io", "-A", "-l", "team=web", "-o", "name") == (
            "application.argoproj.io/web"
        )
        run("patch", "application", "web", "--type", "merge", "-p", '{"spec":{"source":{"repoURL":"x"}}}')
        assert run("get", "application", "web", "-o", "jsonpath={.metadata.generation}") == "2"
        run("create", "secret", "generic", "creds", "--from-literal=user=me")
        assert run("get", "secret", "creds", "-o", "jsonpath={.data.user}") == "bWU="


def api_resource(plural: str) -> Any:
    from tests.harness.kubestore import RESOURCES

    return next(r for r in RESOURCES if r.plural == plural)
