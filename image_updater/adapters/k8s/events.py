"""Kubernetes Events on Applications: ``ImagesUpdated`` when a write-back changed images.

The Event is a ``core/v1`` Event in the Application's namespace whose ``involvedObject`` is the
Application, so ``kubectl describe application <name>`` and Argo CD's UI show it; the message lists
every change as ``image: old -> new``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import socket
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from lightkube import AsyncClient
from lightkube.models.core_v1 import EventSource, ObjectReference
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import Event

from image_updater.adapters.k8s.client import API_ERRORS, DEFAULT_RETRY, ApiRetry, Sleep, call_api, translate
from image_updater.adapters.k8s.resources import APPLICATION_API_VERSION, APPLICATION_KIND
from image_updater.errors import ImageUpdaterError
from image_updater.model.changes import Change

REASON_IMAGES_UPDATED = "ImagesUpdated"
COMPONENT = "image-updater"
#: the API server refuses longer messages in events.k8s.io/v1; core/v1 ones are cut as well
MAX_MESSAGE = 1024


@dataclass(frozen=True)
class ObjectRef:
    """The object an Event is about (an Application unless said otherwise)."""

    namespace: str
    name: str
    uid: str | None = None
    resource_version: str | None = None
    api_version: str = APPLICATION_API_VERSION
    kind: str = APPLICATION_KIND


def images_updated_message(changes: Sequence[Change]) -> str:
    """``Successfully updated images: web: 1.0 -> 1.1, api: (none) -> 2.0``, cut to the API's limit."""
    text = "Successfully updated images: " + ", ".join(c.describe() for c in changes)
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 3] + "..."


class EventRecorder:
    """Creates Events; ``instance`` (the replica) and ``clock`` (epoch seconds) are injectable."""

    def __init__(
        self,
        client: AsyncClient,
        *,
        component: str = COMPONENT,
        instance: str | None = None,
        clock: Callable[[], float] = time.time,
        retry: ApiRetry = DEFAULT_RETRY,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._client = client
        self.component = component
        self.instance = instance or socket.gethostname()
        self._clock = clock
        self._retry = retry
        self._sleep = sleep

    async def images_updated(self, target: ObjectRef, changes: Sequence[Change]) -> str | None:
        """Record ``ImagesUpdated`` for these changes; returns the Event's name (``None`` if no change).

        Raises :class:`ImageUpdaterError` when the Event cannot be created; callers usually log that
        and go on, since the images were updated all the same.
        """
        if not changes:
            return None
        return await self.record(target, reason=REASON_IMAGES_UPDATED, message=images_updated_message(changes))

    async def record(self, target: ObjectRef, *, reason: str, message: str, type: str = "Normal") -> str:
        """Create one Event about ``target``; returns its name."""
        now = dt.datetime.fromtimestamp(self._clock(), dt.UTC)
        # the naming client-go uses: <object>.<unique hex>; unique per replica and instant
        name = f"{target.name}.{int(self._clock() * 1e9):x}{zlib.crc32(self.instance.encode()) & 0xFFFF:04x}"
        event = Event(
            metadata=ObjectMeta(name=name, namespace=target.namespace),
            involvedObject=ObjectReference(
                apiVersion=target.api_version,
                kind=target.kind,
                name=target.name,
                namespace=target.namespace,
                uid=target.uid,
                resourceVersion=target.resource_version,
            ),
            reason=reason,
            message=message[:MAX_MESSAGE],
            type=type,
            count=1,
            firstTimestamp=now.replace(microsecond=0),
            lastTimestamp=now.replace(microsecond=0),
            source=EventSource(component=self.component, host=self.instance),
            reportingComponent=self.component,
            reportingInstance=self.instance,
        )
        try:
            created = await call_api(
                lambda: self._client.create(event), retry=self._retry, sleep=self._sleep, idempotent=False
            )
        except API_ERRORS as e:
            raise translate(
                e,
                f"cannot record event {reason} on {target.kind} {target.namespace}/{target.name}",
                ImageUpdaterError,
                app=target.name,
            ) from e
        return str(created.metadata.name) if created.metadata else name
