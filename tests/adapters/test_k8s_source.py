"""The kubernetes source through lightkube and real HTTP: namespaces, selectors, globs, problems, watch."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from lightkube import AsyncClient, operators

from image_updater.adapters.k8s.client import ApiRetry, build_client
from image_updater.adapters.k8s.source import KubernetesSource, selector_pairs
from image_updater.config import ApplicationsSettings
from image_updater.errors import AnnotationError, ConfigError, ImageUpdaterError
from tests.harness.kubeapi import RecordedRequest, Reply
from tests.harness.kubetarget import KubeTarget, application

pytestmark = pytest.mark.anyio
FAST = ApiRetry(attempts=3, base_backoff_s=0.0)



@pytest.fixture
async def client(kube: KubeTarget) -> AsyncIterator[AsyncClient]:
    built = build_client(kube.kubeconfig, context=kube.context)
    yield built
    await built.close()


def keys(source_apps: object) -> list[str]:
    return sorted(a.key for a in source_apps)  # type: ignore[attr-defined]


async def test_all_namespaces_with_annotation_problems_and_name_globs(kube: KubeTarget, client: AsyncClient) -> None:
    one, two = kube.namespace("a"), kube.namespace("b")
    kube.create(application("web", one))
    kube.create(application("web-api", two, labels={"team": "web"}))
    kube.create(application("db", two))
    kube.create(application("plain", one, images=None))  # no image-list: not ours
    kube.create(application("broken", two, annotations={"argocd-image-updater.argoproj.io/update-strategy": "fastest"}))

    found = await KubernetesSource(client).discover()
    mine = [a for a in found.apps if a.namespace in (one, two)]
    assert sorted(a.key for a in mine) == sorted([f"{two}/db", f"{two}/web-api", f"{one}/web"])
    problems = [p for p in found.problems if p.where.startswith(two)]
    assert [p.where for p in problems] == [f"{two}/broken"]
    assert isinstance(problems[0].error, AnnotationError) and "fastest" in str(problems[0].error)

    globbed = await KubernetesSource(client, namespaces=[one, two], match_names=["web*"]).discover()
    assert keys(globbed.apps) == sorted([f"{two}/web-api", f"{one}/web"])
    web_api = next(a for a in globbed.apps if a.name == "web-api")
    assert web_api.labels == {"team": "web"} and web_api.origin == f"{two}/web-api"


async def test_the_label_selector_is_applied_by_the_server(kube: KubeTarget, client: AsyncClient) -> None:
    ns = kube.namespace("sel")
    kube.create(application("a", ns, labels={"team": "web", "tier": "front"}))
    kube.create(application("b", ns, labels={"team": "web", "tier": "db"}))
    kube.create(application("c", ns, labels={"team": "ops"}))
    kube.create(application("d", ns, labels={"team": "web"}))

    source = KubernetesSource(client, namespaces=[ns], match_labels="team=web,tier!=db")
    assert [a.name for a in (await source.discover()).apps] == ["a", "d"]
    sets = KubernetesSource(client, namespaces=[ns], match_labels="tier in (db, front), !missing")
    assert [a.name for a in (await sets.discover()).apps] == ["a", "b"]
    if kube.fake is not None:
        sent = [r.query.get("labelSelector") for r in kube.fake.requests_to("GET", "/applications")]
        assert sent[-2:] == ["team=web,tier!=db", "tier in (db,front),!missing"]


async def test_a_server_ignoring_the_selector_cannot_widen_the_selection(kube: KubeTarget, client: AsyncClient) -> None:
    fake = kube.require_fake()
    ns = kube.namespace()
    kube.create(application("a", ns, labels={"team": "web"}))
    kube.create(application("b", ns, labels={"team": "ops"}))

    @fake.before
    def lose_the_selector(request: RecordedRequest) -> None:  # as a careless proxy might
        request.query.pop("labelSelector", None)

    found = await KubernetesSource(client, namespaces=[ns], match_labels="team=web").discover()
    assert [a.name for a in found.apps] == ["a"]


async def test_pages_of_a_long_list_are_all_read(kube: KubeTarget, client: AsyncClient) -> None:
    ns = kube.namespace("page")
    for i in range(7):
        kube.create(application(f"app-{i}", ns))
    found = await KubernetesSource(client, namespaces=[ns], page_size=3).discover()
    assert [a.name for a in found.apps] == [f"app-{i}" for i in range(7)]
    if kube.fake is not None:
        assert len(kube.fake.requests_to("GET", f"/namespaces/{ns}/applications")) == 3


async def test_a_forbidden_namespace_is_a_problem_and_the_others_go_on(kube: KubeTarget, client: AsyncClient) -> None:
    fake = kube.require_fake()
    ok, secret = kube.namespace("ok"), kube.namespace("forbidden")
    kube.create(application("a", ok))
    fake.before(
        lambda r: (
            Reply(403, {"kind": "Status", "code": 403, "reason": "Forbidden", "message": "no"})
            if f"/namespaces/{secret}/" in r.path
            else None
        )
    )
    found = await KubernetesSource(client, namespaces=[secret, ok]).discover()
    assert [a.key for a in found.apps] == [f"{ok}/a"]
    assert [p.where for p in found.problems] == [f"kubernetes namespace {secret}"]
    assert "HTTP 403" in str(found.problems[0].error)


async def test_temporary_failures_are_retried_honouring_retry_after(kube: KubeTarget, client: AsyncClient) -> None:
    fake = kube.require_fake()
    ns = kube.namespace()
    kube.create(application("a", ns))
    answers = iter([Reply(429, {"kind": "Status", "code": 429}, {"Retry-After": "3"}), Reply(503, {"code": 503})])
    fake.before(lambda r: next(answers, None) if r.method == "GET" and "/applications" in r.path else None)
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    retry = ApiRetry(attempts=3, base_backoff_s=0.5)
    found = await KubernetesSource(client, namespaces=[ns], retry=retry, sleep=sleep).discover()
    assert [a.name for a in found.apps] == ["a"]
    assert waits == [3.0, 1.0]  # Retry-After, then the second backoff step


async def test_an_unreachable_api_fails_the_discovery_after_bounded_retries(kube: KubeTarget) -> None:
    fake = kube.require_fake()
    fake.close()
    unreachable = build_client(kube.kubeconfig)
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    try:
        with pytest.raises(ImageUpdaterError, match="cannot list Applications in all namespaces: ConnectError"):
            await KubernetesSource(unreachable, retry=FAST, sleep=sleep).discover()
    finally:
        await unreachable.close()
    assert len(waits) == FAST.attempts - 1


async def test_manifest_keeps_the_status_for_current_tags(kube: KubeTarget, client: AsyncClient) -> None:
    ns = kube.namespace()
    kube.create(application("a", ns, status={"summary": {"images": ["nginx:1.25.3"]}}))
    source = KubernetesSource.from_settings(client, ApplicationsSettings(source="kubernetes", namespaces=(ns,)))
    await source.discover()
    manifest = source.manifest(f"{ns}/a")
    assert manifest is not None and manifest["status"]["summary"]["images"] == ["nginx:1.25.3"]
    assert (await source.get_manifest(ns, "a"))["kind"] == "Application"


def test_selector_pairs_cover_every_form_and_bad_selectors_fail_at_construction() -> None:
    pairs = selector_pairs("a=1, b==2,c!=3,d,!e,f in (x, y),g notin (z),c!=4")
    encoded = [op.encode(key) for key, op in pairs]
    assert encoded == ["a=1", "b=2", "c!=3", "d", "!e", "f in (x,y)", "g notin (z)", "c!=4"]
    assert isinstance(pairs[4][1], type(operators.not_exists()))
    with pytest.raises(ConfigError, match="match_labels"):
        KubernetesSource(None, match_labels="a in (b")  # type: ignore[arg-type]


async def test_watch_reports_changes_of_the_selected_applications(kube: KubeTarget, client: AsyncClient) -> None:
    one, two = kube.namespace("w1"), kube.namespace("w2")
    kube.create(application("web", one, labels={"team": "web"}))
    source = KubernetesSource(client, namespaces=[one, two], match_names=["web*"], match_labels="team=web")
    seen: list[tuple[str, str]] = []

    async def consume() -> None:
        async for change in source.watch():
            seen.append((change.type, change.key))
            if len(seen) == 4:
                return

    task = asyncio.ensure_future(consume())
    await asyncio.sleep(0.3)
    kube.create(application("web-2", two, labels={"team": "web"}))
    kube.create(application("other", two, labels={"team": "web"}))  # name glob: not reported
    kube.merge_patch("argoproj.io/v1alpha1", "Application", one, "web", {"spec": {"project": "x"}})
    kube.merge_patch("argoproj.io/v1alpha1", "Application", two, "web-2", {"metadata": {"labels": {"team": "ops"}}})
    await asyncio.wait_for(task, timeout=10)
    # one stream per namespace: ordered within each, interleaved between them
    assert [e for e in seen if e[1].startswith(one)] == [("ADDED", f"{one}/web"), ("MODIFIED", f"{one}/web")]
    assert [e for e in seen if e[1].startswith(two)] == [
        ("ADDED", f"{two}/web-2"),
        ("DELETED", f"{two}/web-2"),  # it left the selector
    ]
