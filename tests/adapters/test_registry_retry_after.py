"""A registry's ``Retry-After`` holds every request to it, not only the one retried, on a virtual clock.

Concurrent listings go through one client limited to one request a second; the registry answers 429
with ``Retry-After`` now and then. Nothing may be sent before the time the registry asked for, the rate
limit still holds after the wait, and every listing ends with its tags.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable, Coroutine
from typing import Any

import httpx
import pytest

from image_updater.adapters.registry.client import RegistryClient
from image_updater.adapters.registry.transport import RetryPolicy
from image_updater.errors import RegistryUnavailableError

BASE = "https://registry.example"


class VirtualTime:
    """A clock that moves only when every task waits on it (so tests never sleep for real)."""

    def __init__(self) -> None:
        self.now = 0.0
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self.now + max(0.0, seconds), next(self._order), future))
        await future

    def run(self, main: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
        async def drive() -> Any:
            task = asyncio.ensure_future(main())
            while True:
                for _ in range(200):  # let every task run until it waits on this clock
                    await asyncio.sleep(0)
                if task.done():
                    return task.result()
                assert self._sleepers, "every task is stuck, and not on the clock"
                when, _, future = heapq.heappop(self._sleepers)
                self.now = max(self.now, when)
                future.set_result(None)

        return asyncio.run(drive())


def page(tags: list[str]) -> httpx.Response:
    return httpx.Response(200, json={"name": "x", "tags": tags})


def too_many(seconds: int, status: int = 429) -> httpx.Response:
    return httpx.Response(status, headers={"Retry-After": str(seconds)}, json={"errors": [{"code": "TOOMANYREQUESTS"}]})


def client(clock: VirtualTime, handler: Callable[[httpx.Request], httpx.Response], **kwargs: Any) -> RegistryClient:
    return RegistryClient(
        BASE,
        registry="registry.example",
        transport=httpx.MockTransport(handler),
        rate_limit=kwargs.pop("rate_limit", 1.0),
        retry=kwargs.pop("retry", RetryPolicy(max_retries=3, base_backoff_s=0.1, jitter=0.0)),
        clock=clock.monotonic,
        sleep=clock.sleep,
        wall_clock=lambda: 1_700_000_000.0,
        **kwargs,
    )


def test_nothing_is_sent_before_a_retry_after_expires_and_the_rate_limit_still_holds() -> None:
    clock = VirtualTime()
    sent: list[tuple[float, str, int]] = []
    answered = itertools.count(1)

    def handler(request: httpx.Request) -> httpx.Response:
        number = next(answered)
        response = too_many(5) if number in (1, 4) else page(["1.0"])
        sent.append((clock.now, request.url.path, response.status_code))
        return response

    async def main() -> list[list[str]]:
        async with client(clock, handler) as registry:
            return await asyncio.gather(*(registry.list_tags(f"team/app{i}") for i in range(6)))

    assert clock.run(main) == [["1.0"]] * 6
    refused = [(at, path) for at, path, status in sent if status == 429]
    assert len(refused) == 2
    for at, _ in refused:
        early = [(t, p) for t, p, _ in sent if at < t < at + 5]
        assert not early, f"sent before the Retry-After of the 429 at {at}s expired: {early}"
    times = [t for t, _, _ in sent]
    assert all(b - a >= 1.0 - 1e-9 for a, b in itertools.pairwise(times)), f"faster than the limit: {times}"
    assert len(sent) == 8  # six listings, two of them retried once


def test_a_retry_after_past_the_bound_fails_fast_and_sends_nothing_meanwhile() -> None:
    clock = VirtualTime()
    sent: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(clock.now)
        return too_many(3600) if len(sent) == 1 else page(["1.0"])

    async def main() -> tuple[BaseException | list[str], ...]:
        async with client(clock, handler, rate_limit=None) as registry:
            first = await asyncio.gather(registry.list_tags("team/a"), return_exceptions=True)
            second = await asyncio.gather(registry.list_tags("team/b"), return_exceptions=True)
            return (*first, *second)

    first, second = clock.run(main)
    assert isinstance(first, RegistryUnavailableError)
    assert isinstance(second, RegistryUnavailableError)
    assert "not sent" in str(second) and "Retry-After" in str(second)
    assert sent == [0.0]  # the second listing never reached the registry
    assert clock.now < 60  # and nobody waited for the hour


@pytest.mark.parametrize(("headers", "held"), [({"Retry-After": "4"}, True), ({}, False)], ids=["with", "without"])
def test_a_503_with_retry_after_holds_too_and_one_without_does_not(headers: dict[str, str], held: bool) -> None:
    clock = VirtualTime()
    sent: list[tuple[float, str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append((clock.now, request.url.path))
        return httpx.Response(503, headers=headers) if len(sent) == 1 else page(["1.0"])

    async def main() -> list[list[str]]:
        async with client(clock, handler, rate_limit=None) as registry:
            failing = asyncio.ensure_future(registry.list_tags("team/a"))
            await clock.sleep(0.01)
            other = await registry.list_tags("team/b")
            return [await failing, other]

    assert clock.run(main) == [["1.0"], ["1.0"]]
    other_sent = next(t for t, path in sent if path.endswith("team/b/tags/list"))
    assert (other_sent >= 4.0) is held, sent


@pytest.mark.parametrize("seconds", [0, 1])
def test_a_hold_never_shortens_a_longer_one(seconds: int) -> None:
    from image_updater.adapters.registry.transport import RetryAfterGate

    now = [0.0]
    gate = RetryAfterGate(clock=lambda: now[0])
    gate.hold(10)
    gate.hold(seconds)
    assert gate.remaining() == 10
    assert gate.holds == 1
