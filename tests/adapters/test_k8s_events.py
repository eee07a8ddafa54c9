"""Events on Applications, created through lightkube over HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from lightkube import AsyncClient

from image_updater.adapters.k8s.client import ApiRetry, build_client
from image_updater.adapters.k8s.events import MAX_MESSAGE, EventRecorder, ObjectRef, images_updated_message
from image_updater.errors import ImageUpdaterError
from image_updater.model.changes import Change
from tests.harness.kubeapi import Reply
from tests.harness.kubetarget import KubeTarget, application

pytestmark = pytest.mark.anyio
NOW = 1_700_000_000.25



@pytest.fixture
async def client(kube: KubeTarget) -> AsyncIterator[AsyncClient]:
    built = build_client(kube.kubeconfig, context=kube.context)
    yield built
    await built.close()


async def no_sleep(_: float) -> None:
    return None


async def test_images_updated_is_an_event_on_the_application(kube: KubeTarget, client: AsyncClient) -> None:
    ns = kube.namespace("ev")
    app = kube.create(application("web", ns))
    recorder = EventRecorder(client, instance="replica-a", clock=lambda: NOW)
    target = ObjectRef(ns, "web", uid=app["metadata"]["uid"])
    changes = [Change("nginx", "1.24.0", "1.25.3"), Change("redis", None, "7.2")]
    name = await recorder.images_updated(target, changes)

    (event,) = kube.list("v1", "Event", ns)
    assert event["metadata"]["name"] == name and name.startswith("web.")
    assert event["reason"] == "ImagesUpdated" and event["type"] == "Normal"
    assert event["message"] == "Successfully updated images: nginx: 1.24.0 -> 1.25.3, redis: (none) -> 7.2"
    involved = event["involvedObject"]
    assert (involved["apiVersion"], involved["kind"], involved["name"], involved["namespace"]) == (
        "argoproj.io/v1alpha1",
        "Application",
        "web",
        ns,
    )
    assert involved["uid"] == app["metadata"]["uid"]
    assert event["source"] == {"component": "image-updater", "host": "replica-a"}
    assert event["reportingInstance"] == "replica-a" and event["count"] == 1
    assert event["firstTimestamp"].startswith("2023-11-14T22:13:20")


async def test_no_changes_no_event_and_two_events_get_distinct_names(kube: KubeTarget, client: AsyncClient) -> None:
    ns = kube.namespace("ev")
    ticks = iter([NOW, NOW, NOW + 0.001, NOW + 0.001])
    recorder = EventRecorder(client, instance="r", clock=lambda: next(ticks))
    assert await recorder.images_updated(ObjectRef(ns, "web"), []) is None
    first = await recorder.images_updated(ObjectRef(ns, "web"), [Change("a", "1", "2")])
    second = await recorder.images_updated(ObjectRef(ns, "web"), [Change("a", "2", "3")])
    assert first != second and len(kube.list("v1", "Event", ns)) == 2


def test_a_long_message_is_cut_to_the_api_limit() -> None:
    changes = [Change(f"registry.example.com/team/image-{i}", "1.0.0", "1.0.1") for i in range(40)]
    message = images_updated_message(changes)
    assert len(message) == MAX_MESSAGE and message.endswith("...")


async def test_creating_an_event_is_retried_only_when_the_server_cannot_have_acted(
    kube: KubeTarget, client: AsyncClient
) -> None:
    fake = kube.require_fake()
    ns = kube.namespace("ev")
    answers = iter([Reply(429, {"code": 429}, {"Retry-After": "1"}), Reply(500, {"kind": "Status", "code": 500})])
    fake.before(lambda r: next(answers, None) if r.method == "POST" and r.path.endswith("/events") else None)
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    recorder = EventRecorder(client, instance="r", retry=ApiRetry(attempts=5), sleep=sleep)
    with pytest.raises(ImageUpdaterError, match=f"cannot record event ImagesUpdated on Application {ns}/web: HTTP 500"):
        await recorder.images_updated(ObjectRef(ns, "web"), [Change("a", "1", "2")])
    assert waits == [1.0]  # the 429 was retried after Retry-After; the 500 was not
    assert await recorder.images_updated(ObjectRef(ns, "web"), [Change("a", "1", "2")])
