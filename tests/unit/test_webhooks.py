"""Webhook parsers: every payload format from realistic bodies, signatures and secrets, shape detection,
the size bound, matching pushes to images, and the HTTP endpoint in front of them."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from starlette.testclient import TestClient

from image_updater.config import RegistrySettings
from image_updater.errors import ConfigError, WebhookError
from image_updater.model.ref import parse_image_name
from image_updater.service.http import WebhookEndpoint, WebhookSecrets, build_app
from image_updater.service.metrics import ServiceMetrics
from image_updater.service.webhooks import (
    PushEvent,
    WebhookRequest,
    detect_source,
    handle_webhook,
    host_aliases,
)

DIGEST = "sha256:fea8895f450959fa676bcc1df0611ea93823a735a01205fd8622846041d0c7cf"
LAYER = "sha256:2db29710123e3e53a794f2694094b9b4338aa9ee5c40b930cb8063a1be392c54"


def envelope(*events: dict[str, Any]) -> bytes:
    return json.dumps({"events": list(events)}).encode()


def distribution_event(
    action: str, repository: str, *, tag: str | None, media_type: str, digest: str
) -> dict[str, Any]:
    """One event as distribution 2.8 sends it (field for field)."""
    kind = "manifests" if "manifest" in media_type else "blobs"
    target: dict[str, Any] = {
        "mediaType": media_type,
        "size": 528,
        "digest": digest,
        "length": 528,
        "repository": repository,
        "url": f"http://127.0.0.1:5000/v2/{repository}/{kind}/{digest}",
    }
    if tag:
        target["tag"] = tag
    return {
        "id": "320678d8-ca14-430f-8bb6-4ca139cd83f7",
        "timestamp": "2026-01-09T14:44:26.402973972Z",
        "action": action,
        "target": target,
        "request": {
            "id": "6df24a34-0959-4923-81ca-14f09767db19",
            "addr": "127.0.0.1:42961",
            "host": "127.0.0.1:5000",
            "method": "PUT" if action == "push" else "GET",
            "useragent": "docker/27.0",
        },
        "actor": {},
        "source": {"addr": "registry:5000", "instanceID": "a53db899-3b4b-4a62-a067-8dd013beaca4"},
    }


#: The three notifications of one `docker push`: config blob, layer blob (no tag), then the manifest.
DISTRIBUTION_PUSH = [
    envelope(
        distribution_event(
            "push", "team/web", tag=None, media_type="application/vnd.docker.container.image.v1+json", digest=LAYER
        )
    ),
    envelope(
        distribution_event(
            "push", "team/web", tag=None, media_type="application/vnd.docker.image.rootfs.diff.tar.gzip", digest=LAYER
        )
    ),
    envelope(
        distribution_event(
            "push",
            "team/web",
            tag="1.4.2",
            media_type="application/vnd.docker.distribution.manifest.v2+json",
            digest=DIGEST,
        )
    ),
]

DOCKER_HUB = json.dumps(
    {
        "callback_url": "https://registry.hub.docker.com/u/svendowideit/testhook/hook/2141b5bi5i5b02bec211i4eeih0242eg11000a/",
        "push_data": {"pushed_at": 1417566161, "pusher": "trustedbuilder", "tag": "1.25.3"},
        "repository": {
            "comment_count": 0,
            "date_created": 1417494799,
            "description": "",
            "is_official": False,
            "is_private": True,
            "is_trusted": True,
            "name": "testhook",
            "namespace": "svendowideit",
            "owner": "svendowideit",
            "repo_name": "svendowideit/testhook",
            "repo_url": "https://registry.hub.docker.com/u/svendowideit/testhook/",
            "star_count": 0,
            "status": "Active",
        },
    }
).encode()

GHCR = json.dumps(
    {
        "action": "published",
        "package": {
            "id": 4242,
            "name": "Web-App",
            "namespace": "Example-Org",
            "description": "",
            "ecosystem": "CONTAINER",
            "package_type": "CONTAINER",
            "html_url": "https://github.com/orgs/Example-Org/packages/container/package/Web-App",
            "owner": {"login": "Example-Org", "id": 1, "type": "Organization"},
            "package_version": {
                "id": 99,
                "version": DIGEST,
                "name": DIGEST,
                "package_url": "ghcr.io/example-org/web-app:v2.1.0",
                "container_metadata": {
                    "tag": {"name": "v2.1.0", "digest": DIGEST},
                    "labels": {},
                    "manifest": {},
                },
            },
            "registry": {
                "about_url": "https://docs.github.com/packages/learn-github-packages/introduction-to-github-packages",
                "name": "GitHub CR",
                "type": "docker",
                "url": "https://ghcr.io/example-org",
                "vendor": "GitHub Inc",
            },
        },
        "repository": {"full_name": "Example-Org/web-app"},
        "sender": {"login": "ci-bot"},
    }
).encode()

QUAY = json.dumps(
    {
        "name": "repository",
        "repository": "mynamespace/repository",
        "namespace": "mynamespace",
        "docker_url": "quay.io/mynamespace/repository",
        "homepage": "https://quay.io/repository/mynamespace/repository",
        "updated_tags": ["latest", "3.2.0"],
    }
).encode()

HARBOR = json.dumps(
    {
        "type": "PUSH_ARTIFACT",
        "occur_at": 1680502375,
        "operator": "admin",
        "event_data": {
            "resources": [
                {
                    "digest": DIGEST,
                    "tag": "v1.0.1",
                    "resource_url": "harbor.example.com/library/myapp:v1.0.1",
                }
            ],
            "repository": {
                "date_created": 1680501893,
                "name": "myapp",
                "namespace": "library",
                "repo_full_name": "library/myapp",
                "repo_type": "private",
            },
        },
    }
).encode()


@pytest.fixture(autouse=True)
def logged() -> Iterator[list[dict[str, Any]]]:
    """The log events of the test (and no output to a stream an earlier test may have closed)."""
    with structlog.testing.capture_logs() as events:
        yield events


def request(body: bytes, headers: dict[str, str] | None = None, **query: str) -> WebhookRequest:
    return WebhookRequest.of(body, headers or {}, query)


def no_secrets(_source: str) -> None:
    return None


def secrets(**by_source: str) -> Any:
    table = {k.replace("_", "."): v for k, v in by_source.items()}
    return table.get


def sign(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


# -- each payload format ------------------------------------------------------------------------------


def test_distribution_push_yields_only_the_tagged_manifest() -> None:
    results = [handle_webhook(request(body, type="distribution"), no_secrets) for body in DISTRIBUTION_PUSH]

    assert [r.events for r in results[:2]] == [(), ()]  # blob pushes carry no tag
    assert results[2].events == (PushEvent("127.0.0.1:5000", "team/web", "1.4.2", DIGEST),)


def test_distribution_ignores_pulls_and_pushes_by_digest() -> None:
    pull = distribution_event(
        "pull", "team/web", tag="1.0", media_type="application/vnd.oci.image.manifest.v1+json", digest=DIGEST
    )
    by_digest = distribution_event(
        "push", "team/web", tag=None, media_type="application/vnd.oci.image.manifest.v1+json", digest=DIGEST
    )
    assert handle_webhook(request(envelope(pull, by_digest), type="distribution"), no_secrets).events == ()


def test_distribution_without_request_host_falls_back_to_the_target_url() -> None:
    event = distribution_event(
        "push", "a/b", tag="2.0", media_type="application/vnd.oci.image.manifest.v1+json", digest=DIGEST
    )
    del event["request"]
    (push,) = handle_webhook(request(envelope(event), type="distribution"), no_secrets).events
    assert push.registry_host == "127.0.0.1:5000"


def test_docker_hub() -> None:
    result = handle_webhook(request(DOCKER_HUB, type="docker.io"), no_secrets)
    assert result.events == (PushEvent("docker.io", "svendowideit/testhook", "1.25.3"),)


def test_ghcr_package_event_lower_cases_owner_and_name() -> None:
    result = handle_webhook(request(GHCR, {"X-GitHub-Event": "package"}, type="ghcr.io"), no_secrets)
    assert result.events == (PushEvent("ghcr.io", "example-org/web-app", "v2.1.0", DIGEST),)


@pytest.mark.parametrize(
    ("change", "expected_tags"),
    [
        ({"action": "updated"}, ["v2.1.0"]),
        ({"action": "deleted"}, []),
        ({"package_type": "npm"}, []),
        ({"tag": None}, ["v2.1.0"]),  # the tag is read from package_url instead
    ],
)
def test_ghcr_variants(change: dict[str, Any], expected_tags: list[str]) -> None:
    doc = json.loads(GHCR)
    if "action" in change:
        doc["action"] = change["action"]
    if "package_type" in change:
        doc["package"]["package_type"] = change["package_type"]
    if "tag" in change:
        doc["package"]["package_version"]["container_metadata"]["tag"] = {}
    result = handle_webhook(request(json.dumps(doc).encode(), {"X-GitHub-Event": "package"}), no_secrets)
    assert [e.tag for e in result.events] == expected_tags


def test_github_ping_is_accepted_with_no_events() -> None:
    ping = json.dumps({"zen": "Design for failure.", "hook_id": 1, "hook": {"events": ["package"]}}).encode()
    result = handle_webhook(request(ping, {"X-GitHub-Event": "ping"}), no_secrets)
    assert (result.source, result.events) == ("ghcr.io", ())


def test_quay_reports_every_updated_tag() -> None:
    result = handle_webhook(request(QUAY, type="quay.io"), no_secrets)
    assert [str(e) for e in result.events] == [
        "quay.io/mynamespace/repository:latest",
        "quay.io/mynamespace/repository:3.2.0",
    ]


def test_quay_early_mapping_form_and_own_host() -> None:
    doc = json.loads(QUAY)
    doc["docker_url"] = "quay.internal.example:8443/mynamespace/repository"
    doc["updated_tags"] = {"1.0": "b750fe79269d2ec9a3c593ef05b4332b1d1a02a62b4accb2c21d589ff2f5f2dc"}
    (event,) = handle_webhook(request(json.dumps(doc).encode(), type="quay.io"), no_secrets).events
    assert (event.registry_host, event.tag) == ("quay.internal.example:8443", "1.0")


def test_harbor_default_format() -> None:
    result = handle_webhook(request(HARBOR, {"Content-Type": "application/json"}, type="harbor"), no_secrets)
    assert result.events == (PushEvent("harbor.example.com", "library/myapp", "v1.0.1", DIGEST),)


def test_harbor_cloudevents_format_and_missing_resource_url() -> None:
    data = json.loads(HARBOR)["event_data"]
    del data["resources"][0]["resource_url"]
    doc = {
        "specversion": "1.0",
        "id": "1",
        "source": "/projects/1/webhook/policies/1",
        "type": "harbor.artifact.pushed",
    }
    doc["data"] = data
    (event,) = handle_webhook(request(json.dumps(doc).encode()), no_secrets).events
    assert event == PushEvent(None, "library/myapp", "v1.0.1", DIGEST)


def test_harbor_other_events_are_ignored() -> None:
    doc = json.loads(HARBOR)
    doc["type"] = "DELETE_ARTIFACT"
    assert handle_webhook(request(json.dumps(doc).encode(), type="harbor"), no_secrets).events == ()


def test_gitlab_registry_notifications_are_the_distribution_envelope() -> None:
    result = handle_webhook(
        request(DISTRIBUTION_PUSH[2], {"Authorization": "gl-token"}, type="gitlab"), secrets(gitlab="gl-token")
    )
    assert result.source == "gitlab" and [e.tag for e in result.events] == ["1.4.2"]


def test_an_invalid_tag_is_never_an_update() -> None:
    doc = json.loads(DOCKER_HUB)
    doc["push_data"]["tag"] = "-bad tag"
    assert handle_webhook(request(json.dumps(doc).encode(), type="docker.io"), no_secrets).events == ()


# -- shape detection ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "headers", "expected"),
    [
        (DISTRIBUTION_PUSH[2], {}, "distribution"),
        (DOCKER_HUB, {}, "docker.io"),
        (GHCR, {}, "ghcr.io"),
        (GHCR, {"X-GitHub-Event": "package"}, "ghcr.io"),
        (QUAY, {}, "quay.io"),
        (HARBOR, {}, "harbor"),
    ],
)
def test_without_a_type_the_shape_decides(body: bytes, headers: dict[str, str], expected: str) -> None:
    assert handle_webhook(request(body, headers), no_secrets).source == expected


def test_the_x_registry_type_header_names_the_source() -> None:
    assert handle_webhook(request(HARBOR, {"X-Registry-Type": "harbor"}), no_secrets).source == "harbor"


@pytest.mark.parametrize(
    ("body", "query", "message"),
    [
        (b'{"hello": "world"}', {}, "matches no known"),
        (b"[1, 2]", {}, "matches no known"),
        (b"not json", {}, "not JSON"),
        (b"\xff\xfe", {"type": "distribution"}, "not JSON"),
        (b"{}", {"type": "jfrog"}, "unknown webhook type"),
        (b'{"events": "nope"}', {"type": "distribution"}, "'events' list"),
        (b'{"push_data": {"tag": "1"}, "repository": {}}', {}, "names no repository"),
    ],
)
def test_unusable_payloads_are_400(body: bytes, query: dict[str, str], message: str) -> None:
    with pytest.raises(WebhookError, match=message) as caught:
        handle_webhook(request(body, **query), no_secrets)
    assert caught.value.status == 400


def test_detect_source_is_none_for_unknown_shapes() -> None:
    assert detect_source({"foo": 1}, {}) is None


# -- authentication -----------------------------------------------------------------------------------


def test_ghcr_hmac_signature_valid() -> None:
    headers = {"X-GitHub-Event": "package", "X-Hub-Signature-256": sign(GHCR, "gh-secret")}
    result = handle_webhook(request(GHCR, headers, type="ghcr.io"), secrets(ghcr_io="gh-secret"))
    assert len(result.events) == 1


@pytest.mark.parametrize(
    "signature",
    [
        None,
        "",
        "sha256=" + "0" * 64,
        sign(GHCR, "another-secret"),
        sign(GHCR + b" ", "gh-secret"),  # signed for another body
        sign(GHCR, "gh-secret").removeprefix("sha256="),  # without the algorithm prefix
    ],
)
def test_ghcr_bad_or_missing_signature_is_401(signature: str | None) -> None:
    headers = {"X-GitHub-Event": "package"}
    if signature is not None:
        headers["X-Hub-Signature-256"] = signature
    with pytest.raises(WebhookError) as caught:
        handle_webhook(request(GHCR, headers, type="ghcr.io"), secrets(ghcr_io="gh-secret"))
    assert caught.value.status == 401


def test_ghcr_shared_token_does_not_replace_the_signature() -> None:
    with pytest.raises(WebhookError) as caught:
        handle_webhook(request(GHCR, {"X-GitHub-Event": "package"}, secret="gh-secret"), secrets(ghcr_io="gh-secret"))
    assert caught.value.status == 401


@pytest.mark.parametrize(
    ("headers", "query"),
    [
        ({}, {"secret": "tok-123"}),
        ({"Authorization": "tok-123"}, {}),
        ({"Authorization": "Bearer tok-123"}, {}),
        ({"X-Gitlab-Token": "tok-123"}, {}),
    ],
)
def test_shared_token_in_query_or_header(headers: dict[str, str], query: dict[str, str]) -> None:
    result = handle_webhook(request(DISTRIBUTION_PUSH[2], headers, **query), secrets(distribution="tok-123"))
    assert len(result.events) == 1


@pytest.mark.parametrize(
    ("headers", "query"),
    [({}, {}), ({}, {"secret": "tok-124"}), ({"Authorization": "Bearer tok-12"}, {}), ({"Authorization": ""}, {})],
)
def test_wrong_or_missing_shared_token_is_401(headers: dict[str, str], query: dict[str, str]) -> None:
    with pytest.raises(WebhookError) as caught:
        handle_webhook(request(DOCKER_HUB, headers, **query), secrets(docker_io="tok-123"))
    assert caught.value.status == 401 and caught.value.source == "docker.io"


def test_with_an_explicit_type_the_secret_is_checked_before_the_body_is_read() -> None:
    with pytest.raises(WebhookError) as caught:
        handle_webhook(request(b"not even json", type="harbor"), secrets(harbor="h"))
    assert caught.value.status == 401


def test_the_secret_of_the_detected_source_applies() -> None:
    lookup = secrets(quay_io="q-secret")
    assert handle_webhook(request(DOCKER_HUB), lookup).events  # docker.io has no secret
    with pytest.raises(WebhookError) as caught:
        handle_webhook(request(QUAY), lookup)
    assert caught.value.status == 401


# -- size bound ---------------------------------------------------------------------------------------


def test_body_over_the_bound_is_413_before_anything_else() -> None:
    body = b" " * 1025
    with pytest.raises(WebhookError) as caught:
        handle_webhook(request(body, type="ghcr.io"), secrets(ghcr_io="x"), max_body_bytes=1024)
    assert caught.value.status == 413
    assert handle_webhook(request(HARBOR), no_secrets, max_body_bytes=len(HARBOR)).events


# -- matching pushes to images ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event", "image", "aliases", "expected"),
    [
        (PushEvent("docker.io", "nginx", "1"), "nginx", {}, True),
        (PushEvent("registry-1.docker.io", "library/nginx", "1"), "docker.io/nginx", {}, True),
        (PushEvent("docker.io", "bitnami/nginx", "1"), "nginx", {}, False),
        (PushEvent("127.0.0.1:5000", "team/web", "1"), "127.0.0.1:5000/team/web", {}, True),
        (PushEvent("127.0.0.1:5001", "team/web", "1"), "127.0.0.1:5000/team/web", {}, False),
        (
            PushEvent("registry:5000", "team/web", "1"),
            "reg.example.com/team/web",
            {"registry:5000": "reg.example.com"},
            True,
        ),
        (PushEvent(None, "library/myapp", "1"), "harbor.example.com/library/myapp", {}, True),
        (PushEvent(None, "myapp", "1"), "nginx", {}, False),
        (PushEvent("ghcr.io", "Example/App".lower(), "1"), "ghcr.io/example/app", {}, True),
    ],
)
def test_push_matches_image(event: PushEvent, image: str, aliases: dict[str, str], expected: bool) -> None:
    assert event.matches(parse_image_name(image), aliases) is expected


def test_host_aliases_map_api_hosts_to_prefix_hosts() -> None:
    registries = [
        RegistrySettings(prefix="reg.example.com", api_url="http://registry.infra.svc:5000"),
        RegistrySettings(prefix="127.0.0.1:5000", api_url="http://127.0.0.1:5000"),
        RegistrySettings(prefix="ghcr.io"),
    ]
    assert host_aliases(registries) == {"registry.infra.svc:5000": "reg.example.com"}


# -- the HTTP endpoint --------------------------------------------------------------------------------


class Notified:
    def __init__(self, accept: bool = True) -> None:
        self.calls: list[list[PushEvent]] = []
        self.accept = accept

    def __call__(self, events: Any) -> int:
        self.calls.append(list(events))
        return len(events) if self.accept else 0


def client_for(lookup: Any, notified: Notified, metrics: ServiceMetrics, max_body: int = 4096) -> TestClient:
    endpoint = WebhookEndpoint(lookup, notified, metrics=metrics, max_body_bytes=max_body)
    return TestClient(build_app(webhook=endpoint))


def webhook_count(metrics: ServiceMetrics, source: str, outcome: str) -> float:
    value = metrics.registry.get_sample_value(
        "image_updater_webhook_events_total", {"source": source, "outcome": outcome}
    )
    return value or 0.0


def test_endpoint_queues_a_tag_push_and_ignores_blob_pushes() -> None:
    notified, metrics = Notified(), ServiceMetrics()
    client = client_for(no_secrets, notified, metrics)

    answers = [client.post("/webhook?type=distribution", content=body) for body in DISTRIBUTION_PUSH]

    assert [a.status_code for a in answers] == [200, 200, 202]
    assert answers[2].json()["pushes"] == ["127.0.0.1:5000/team/web:1.4.2"]
    assert notified.calls == [[PushEvent("127.0.0.1:5000", "team/web", "1.4.2", DIGEST)]]
    assert webhook_count(metrics, "distribution", "ignored") == 2
    assert webhook_count(metrics, "distribution", "accepted") == 1


def test_endpoint_wrong_signature_is_401_and_queues_nothing(logged: list[dict[str, Any]]) -> None:
    notified, metrics = Notified(), ServiceMetrics()
    client = client_for(secrets(ghcr_io="gh-secret"), notified, metrics)

    answer = client.post(
        "/webhook",
        content=GHCR,
        headers={"X-GitHub-Event": "package", "X-Hub-Signature-256": sign(GHCR, "wrong")},
    )

    assert answer.status_code == 401 and notified.calls == []
    assert webhook_count(metrics, "ghcr.io", "unauthorized") == 1
    (refused,) = [e for e in logged if e["event"] == "webhook refused"]
    assert (refused["source"], refused["status"]) == ("ghcr.io", 401) and "gh-secret" not in str(logged)


def test_endpoint_refuses_a_large_body_by_its_declared_length_and_by_its_stream() -> None:
    notified, metrics = Notified(), ServiceMetrics()
    client = client_for(no_secrets, notified, metrics, max_body=100)

    declared = client.post("/webhook?type=harbor", content=b"x" * 101)

    def chunks() -> Any:  # no Content-Length: sent chunked
        yield b"{" + b" " * 80
        yield b" " * 80 + b"}"

    streamed = client.post("/webhook?type=harbor", content=chunks())

    assert (declared.status_code, streamed.status_code) == (413, 413) and notified.calls == []
    assert webhook_count(metrics, "harbor", "too_large") == 2


def test_endpoint_answers_503_when_the_service_no_longer_takes_pushes() -> None:
    client = client_for(no_secrets, Notified(accept=False), ServiceMetrics())
    assert client.post("/webhook", content=DOCKER_HUB).status_code == 503


def test_endpoint_only_takes_post() -> None:
    client = client_for(no_secrets, Notified(), ServiceMetrics())
    assert client.get("/webhook").status_code == 405


def test_secrets_are_checked_at_start_and_read_at_each_use(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match=r"webhook\.secrets\.jfrog"):
        WebhookSecrets({"jfrog": "x"})
    with pytest.raises(ConfigError, match="IU_TEST_HOOK_SECRET"):
        WebhookSecrets({"docker.io": "env:IU_TEST_HOOK_SECRET"})
    monkeypatch.setenv("IU_TEST_HOOK_SECRET", "first")
    table = WebhookSecrets({"docker.io": "env:IU_TEST_HOOK_SECRET"})
    monkeypatch.setenv("IU_TEST_HOOK_SECRET", "rotated")
    assert table("docker.io") == "rotated" and table("quay.io") is None
    assert "docker.io" not in table.unprotected and "quay.io" in table.unprotected
    monkeypatch.setenv("IU_TEST_HOOK_SECRET", "")
    with pytest.raises(ConfigError, match="empty"):
        table("docker.io")
