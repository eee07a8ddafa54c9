"""The transport layers: retries and Retry-After, the rate limit and the request counter."""

from __future__ import annotations

import asyncio
import ssl
from datetime import UTC, datetime
from email.utils import format_datetime

import httpx
import pytest

from image_updater.adapters.registry.transport import (
    KIND_EXTENSION,
    KIND_TOKEN,
    CountingTransport,
    RateLimit,
    RateLimitTransport,
    RequestCounter,
    RetryPolicy,
    RetryTransport,
    build_transport,
    parse_retry_after,
)

pytestmark = pytest.mark.anyio

NOW = 1_700_000_000.0
POLICY = RetryPolicy(max_retries=3, base_backoff_s=0.5, max_backoff_s=4.0, jitter=0.0)



class FakeTime:
    """A clock and a sleep that advances it and records every wait."""

    def __init__(self, now: float = NOW, *, advance: bool = True) -> None:
        self.now = now
        self.advance = advance
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        if self.advance:
            self.now += seconds


def scripted(*answers: httpx.Response | Exception) -> tuple[httpx.MockTransport, list[httpx.Request]]:
    """A transport that answers with ``answers`` in turn (repeating the last) and records requests."""
    sent: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        answer = answers[min(len(sent), len(answers)) - 1]
        if isinstance(answer, Exception):
            raise answer
        return answer

    return httpx.MockTransport(handler), sent


def retrying(inner: httpx.AsyncBaseTransport, time: FakeTime, policy: RetryPolicy = POLICY) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=RetryTransport(inner, policy, sleep=time.sleep, wall_clock=time))


# --- retries ----------------------------------------------------------------------------------------


async def test_503_is_retried_with_exponential_backoff() -> None:
    time = FakeTime()
    inner, sent = scripted(httpx.Response(503), httpx.Response(503), httpx.Response(200))
    async with retrying(inner, time) as http:
        assert (await http.get("https://r.example/v2/")).status_code == 200
    assert len(sent) == 3
    assert time.sleeps == [0.5, 1.0]


async def test_429_with_retry_after_seconds_waits_at_least_that_long() -> None:
    time = FakeTime()
    inner, sent = scripted(httpx.Response(429, headers={"Retry-After": "2"}), httpx.Response(200))
    async with retrying(inner, time) as http:
        assert (await http.get("https://r.example/v2/a/tags/list")).status_code == 200
    assert len(sent) == 2
    assert time.sleeps == [2.0]


async def test_retry_after_as_an_http_date_is_honoured() -> None:
    time = FakeTime()
    date = format_datetime(datetime.fromtimestamp(NOW + 7, tz=UTC), usegmt=True)
    inner, _ = scripted(httpx.Response(503, headers={"Retry-After": date}), httpx.Response(200))
    async with retrying(inner, time) as http:
        await http.get("https://r.example/v2/")
    assert time.sleeps == [7.0]


async def test_a_retry_after_beyond_the_policy_is_not_waited_for() -> None:
    time = FakeTime()
    inner, sent = scripted(httpx.Response(429, headers={"Retry-After": "3600"}), httpx.Response(200))
    async with retrying(inner, time) as http:
        assert (await http.get("https://r.example/v2/")).status_code == 429
    assert len(sent) == 1
    assert time.sleeps == []


async def test_retries_are_bounded_and_the_last_response_is_returned() -> None:
    time = FakeTime()
    inner, sent = scripted(httpx.Response(502))
    async with retrying(inner, time) as http:
        assert (await http.get("https://r.example/v2/")).status_code == 502
    assert len(sent) == POLICY.max_retries + 1
    assert time.sleeps == [0.5, 1.0, 2.0]


async def test_backoff_is_capped() -> None:
    policy = RetryPolicy(max_retries=5, base_backoff_s=1.0, max_backoff_s=3.0, jitter=0.0)
    assert [policy.backoff(n) for n in range(5)] == [1.0, 2.0, 3.0, 3.0, 3.0]


async def test_500_is_terminal_and_not_retried() -> None:
    time = FakeTime()
    inner, sent = scripted(httpx.Response(500), httpx.Response(200))
    async with retrying(inner, time) as http:
        assert (await http.get("https://r.example/v2/")).status_code == 500
    assert len(sent) == 1


async def test_connection_errors_and_timeouts_are_retried_then_raised() -> None:
    time = FakeTime()
    inner, sent = scripted(httpx.ConnectError("refused"), httpx.ReadTimeout("slow"))
    async with retrying(inner, time) as http:
        with pytest.raises(httpx.ReadTimeout):
            await http.get("https://r.example/v2/")
    assert len(sent) == 4


async def test_tls_failures_are_not_retried() -> None:
    time = FakeTime()
    error = httpx.ConnectError("[SSL: WRONG_VERSION_NUMBER]")
    error.__cause__ = ssl.SSLError("wrong version number")
    inner, sent = scripted(error)
    async with retrying(inner, time) as http:
        with pytest.raises(httpx.ConnectError):
            await http.get("https://127.0.0.1:5000/v2/")
    assert len(sent) == 1


async def test_other_methods_are_not_retried() -> None:
    time = FakeTime()
    inner, sent = scripted(httpx.Response(503), httpx.Response(200))
    async with retrying(inner, time) as http:
        assert (await http.post("https://r.example/v2/a/blobs/uploads/")).status_code == 503
    assert len(sent) == 1


def test_parse_retry_after() -> None:
    assert parse_retry_after("2", now=NOW) == 2.0
    assert parse_retry_after(" 0 ", now=NOW) == 0.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412490.0) == 0.0
    assert parse_retry_after("soon", now=NOW) is None
    assert parse_retry_after(None, now=NOW) is None


# --- rate limit -------------------------------------------------------------------------------------


async def test_rate_limit_spaces_concurrent_requests() -> None:
    time = FakeTime(advance=False)  # all four arrive at the same instant and sleep side by side
    limit = RateLimit(4.0, clock=time, sleep=time.sleep)
    waits = await asyncio.gather(*(limit.acquire() for _ in range(4)))
    assert waits == [0.0, 0.25, 0.5, 0.75]


async def test_rate_limit_refills_while_idle_up_to_the_burst() -> None:
    time = FakeTime()
    limit = RateLimit(2.0, burst=2, clock=time, sleep=time.sleep)
    assert [await limit.acquire() for _ in range(2)] == [0.0, 0.0]
    assert await limit.acquire() == 0.5
    time.now += 10
    assert [await limit.acquire() for _ in range(3)] == [0.0, 0.0, 0.5]


async def test_rate_limit_layer_waits_before_each_attempt_and_counts_waits() -> None:
    time = FakeTime()
    counter = RequestCounter()
    inner, sent = scripted(httpx.Response(200))
    stack = RateLimitTransport(inner, RateLimit(10.0, clock=time, sleep=time.sleep), counter=counter)
    async with httpx.AsyncClient(transport=stack) as http:
        for _ in range(3):
            await http.get("https://r.example/v2/")
    assert len(sent) == 3
    assert time.sleeps == pytest.approx([0.1, 0.1])
    assert counter.rate_limit_waits == 2
    assert counter.rate_limit_wait_s == pytest.approx(0.2)


def test_rate_limit_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        RateLimit(0)


# --- counter and stack ------------------------------------------------------------------------------


async def test_counter_counts_requests_by_kind_and_status() -> None:
    counter = RequestCounter()
    inner, _ = scripted(httpx.Response(200))
    paths = ["/v2/", "/v2/a/b/tags/list", "/v2/a/manifests/1.0", "/v2/a/blobs/sha256:00", "/metrics"]
    async with httpx.AsyncClient(transport=CountingTransport(inner, counter)) as http:
        for path in paths:
            await http.get(f"https://r.example{path}")
        await http.get("https://auth.example/token", extensions={KIND_EXTENSION: KIND_TOKEN})
    assert counter.requests == {"ping": 1, "tags": 1, "manifest": 1, "blob": 1, "other": 1, "token": 1}
    assert counter.statuses[("tags", 200)] == 1
    assert counter.total == 6


async def test_stack_counts_every_attempt_and_each_retry() -> None:
    time = FakeTime()
    counter = RequestCounter()
    inner, _ = scripted(httpx.ConnectError("refused"), httpx.Response(503), httpx.Response(200))
    stack = build_transport(inner, retry=POLICY, counter=counter, sleep=time.sleep, wall_clock=time)
    async with httpx.AsyncClient(transport=stack) as http:
        assert (await http.get("https://r.example/v2/a/tags/list")).status_code == 200
    assert counter.requests == {"tags": 3}
    assert counter.statuses == {("tags", None): 1, ("tags", 503): 1, ("tags", 200): 1}
    assert counter.retries == {"tags": 2}


async def test_stack_closes_the_inner_transport() -> None:
    closed: list[bool] = []

    class Inner(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            return httpx.Response(200)

        async def aclose(self) -> None:
            closed.append(True)

    stack = build_transport(Inner(), rate_limit=RateLimit(1.0), counter=RequestCounter())
    async with httpx.AsyncClient(transport=stack):
        pass
    assert closed == [True]


def test_verifying_transports_share_one_system_context() -> None:
    """The CA bundle is loaded once per process, not for every client a cycle builds."""
    from image_updater.adapters.registry.transport import http_transport, system_ssl_context

    first, second = http_transport(), http_transport()
    contexts = {id(t._pool._ssl_context) for t in (first, second)}  # type: ignore[attr-defined]
    assert contexts == {id(system_ssl_context())}
    assert system_ssl_context().verify_mode == ssl.CERT_REQUIRED
    unverified = http_transport(verify=False)
    assert unverified._pool._ssl_context is not system_ssl_context()  # type: ignore[attr-defined]
