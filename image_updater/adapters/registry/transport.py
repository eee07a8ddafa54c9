"""Cross-cutting HTTP behaviour of the registry client, as stacked ``httpx.AsyncBaseTransport`` layers.

``build_transport`` stacks, from the client down::

    RetryTransport        bounded retries of temporary failures, honouring Retry-After
      RateLimitTransport  the registry's Retry-After for every request (a RetryAfterGate), then a token
                          bucket: at most ``rate_per_s`` requests per second (optional)
        CountingTransport requests sent, by kind (ping, tags, manifest, blob, token, other) and status
          inner           httpx.AsyncHTTPTransport (HTTP/2 where the registry offers it; see
                          ``http_transport``), or a MockTransport in tests

Every attempt of a retry waits for the rate limit and is counted. A ``429`` or ``503`` with
``Retry-After`` holds every request of the stack, not only the retried one: nothing is sent to the
registry before the time it asked for. Sleeping and clocks are injected, so tests never wait for real.
The retry policy is data (:class:`RetryPolicy`).
"""

from __future__ import annotations

import asyncio
import functools
import json
import random
import re
import select
import ssl
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any

import httpcore
import httpx

from image_updater.adapters.registry.responses import caused_by

Sleep = Callable[[float], Awaitable[None]]
Clock = Callable[[], float]

try:  # HTTP/2 (one connection for every request in flight) where a registry offers it over TLS
    import h2  # noqa: F401

    HTTP2 = True
except ImportError:  # pragma: no cover - h2 comes with httpx[http2]
    HTTP2 = False

_SLEPT_OUT = "image_updater.retry_after_slept_out"
"""The request extension where a retry notes the gate hold it has already slept out."""
KIND_EXTENSION = "image_updater.registry_kind"
"""The request extension that names a request's kind; set by the client and the auth flow."""
KIND_PING, KIND_TAGS, KIND_MANIFEST, KIND_BLOB, KIND_TOKEN, KIND_OTHER = (
    "ping",
    "tags",
    "manifest",
    "blob",
    "token",
    "other",
)
_PATH_KINDS = (
    (re.compile(r"/v2/?$"), KIND_PING),
    (re.compile(r"/v2/.+/tags/list$"), KIND_TAGS),
    (re.compile(r"/v2/.+/manifests/[^/]+$"), KIND_MANIFEST),
    (re.compile(r"/v2/.+/blobs/[^/]+$"), KIND_BLOB),
)


def request_kind(request: httpx.Request) -> str:
    """The kind of a registry request: its ``KIND_EXTENSION``, or else what its path says."""
    kind = request.extensions.get(KIND_EXTENSION)
    if isinstance(kind, str):
        return kind
    path = request.url.path
    return next((k for pattern, k in _PATH_KINDS if pattern.search(path)), KIND_OTHER)


@dataclass
class RequestCounter:
    """What the transport stack sent: read by metrics and benchmarks.

    ``requests`` counts every attempt by kind; ``statuses`` by (kind, status), with status ``None``
    for an attempt that got no response; ``retries`` the attempts that were retries, by kind.
    """

    requests: Counter[str] = field(default_factory=Counter)
    statuses: Counter[tuple[str, int | None]] = field(default_factory=Counter)
    retries: Counter[str] = field(default_factory=Counter)
    rate_limit_waits: int = 0
    rate_limit_wait_s: float = 0.0

    @property
    def total(self) -> int:
        """All attempts sent."""
        return sum(self.requests.values())


@dataclass(frozen=True)
class RetryPolicy:
    """Which failures are retried, how often and how long to wait between attempts."""

    max_retries: int = 3
    """Retries after the first attempt (0: never retry)."""
    statuses: frozenset[int] = frozenset({429, 502, 503, 504})
    """Response statuses that are temporary (the distribution spec: 502, 503, 504; and 429)."""
    base_backoff_s: float = 0.5
    """The wait before the first retry; doubled for each further one."""
    max_backoff_s: float = 10.0
    """The longest computed wait (a longer ``Retry-After`` still wins, up to ``max_retry_after_s``)."""
    max_retry_after_s: float = 60.0
    """A ``Retry-After`` longer than this is not waited for: the response is returned as it is."""
    jitter: float = 0.1
    """Up to this fraction is added at random to a computed wait, so clients do not retry in step."""
    methods: frozenset[str] = frozenset({"GET", "HEAD"})
    """Only these (idempotent, body-less) methods are retried."""

    def backoff(self, retry: int) -> float:
        """The computed wait before retry number ``retry`` (0-based), before jitter."""
        return min(self.max_backoff_s, self.base_backoff_s * 2.0**retry)


DEFAULT_RETRY = RetryPolicy()
FAST_RETRY = RetryPolicy(base_backoff_s=0.001, max_backoff_s=0.01, jitter=0.0)
"""Tiny waits, for tests and benchmarks against a local registry."""
NO_RETRY = RetryPolicy(max_retries=0)


def parse_retry_after(value: str | None, *, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delay-seconds or an HTTP date), or ``None``.

    ``now`` is the wall-clock time (epoch seconds) an HTTP date is measured from.
    """
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        seconds = when.timestamp() - now
    if seconds != seconds:  # NaN
        return None
    return max(0.0, seconds)


def _retryable_error(error: httpx.TransportError) -> bool:
    """Temporary network failures; TLS failures are not, so a plain-HTTP fallback is not delayed."""
    if caused_by(error, ssl.SSLError):
        return False
    return isinstance(error, httpx.TimeoutException | httpx.NetworkError | httpx.RemoteProtocolError)


class _Layer(httpx.AsyncBaseTransport):
    """A transport that wraps another and closes it."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner

    async def aclose(self) -> None:
        await self.inner.aclose()


class RetryTransport(_Layer):
    """Retries temporary failures a bounded number of times; never retries before ``Retry-After``.

    After the last attempt the last response is returned (or the last error raised), so the caller
    sees the real status.
    """

    def __init__(
        self,
        inner: httpx.AsyncBaseTransport,
        policy: RetryPolicy = DEFAULT_RETRY,
        *,
        sleep: Sleep = asyncio.sleep,
        wall_clock: Clock = time.time,
        rng: Callable[[], float] = random.random,
        counter: RequestCounter | None = None,
        gate: RetryAfterGate | None = None,
    ) -> None:
        super().__init__(inner)
        self.policy = policy
        self._sleep = sleep
        self._wall_clock = wall_clock
        self._rng = rng
        self._counter = counter
        self._gate = gate

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request``, retrying as the policy says."""
        policy = self.policy
        retryable_method = request.method.upper() in policy.methods
        retry = 0
        retry_after: float | None = None
        held = 0
        while True:
            retry_after = None
            try:
                response = await self.inner.handle_async_request(request)
            except httpx.TransportError as e:
                if not (retryable_method and retry < policy.max_retries and _retryable_error(e)):
                    raise
                delay = self._backoff(retry)
            else:
                if not (retryable_method and retry < policy.max_retries and response.status_code in policy.statuses):
                    return response
                retry_after = parse_retry_after(response.headers.get("retry-after"), now=self._wall_clock())
                if retry_after is not None and self._gate is not None:
                    self._gate.hold(retry_after)  # for every request to this registry, not only this one
                    held = self._gate.holds
                if retry_after is not None and retry_after > policy.max_retry_after_s:
                    return response
                delay = max(self._backoff(retry), retry_after or 0.0)
                await response.aclose()
            if self._counter is not None:
                self._counter.retries[request_kind(request)] += 1
            retry += 1
            await self._sleep(delay)
            if retry_after is not None and self._gate is not None:
                request.extensions[_SLEPT_OUT] = held  # this hold is waited for: not twice

    def _backoff(self, retry: int) -> float:
        return self.policy.backoff(retry) * (1.0 + self.policy.jitter * self._rng())


class RateLimit:
    """An asynchronous token bucket: ``rate_per_s`` requests per second, ``burst`` at once.

    Each caller reserves a slot at once and then sleeps until it comes, so concurrent callers are
    spaced ``1 / rate_per_s`` apart in the order they arrived, without a lock held while sleeping.
    """

    def __init__(
        self,
        rate_per_s: float,
        *,
        burst: float = 1.0,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if rate_per_s <= 0:
            raise ValueError(f"rate_per_s must be positive, got {rate_per_s}")
        if burst < 1:
            raise ValueError(f"burst must be at least 1, got {burst}")
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._clock = clock
        self._sleep = sleep
        self._tokens = burst
        self._updated = clock()

    async def acquire(self) -> float:
        """Wait for a slot; returns the seconds waited (0.0 when a token was available)."""
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate_per_s)
        self._updated = now
        self._tokens -= 1.0
        if self._tokens >= 0:
            return 0.0
        wait = -self._tokens / self.rate_per_s
        try:
            await self._sleep(wait)
        except BaseException:
            self._tokens += 1.0  # give the unused slot back (cancelled while waiting)
            raise
        return wait


class RetryAfterGate:
    """The registry's ``Retry-After``, for every request: closed until the latest time it asked for.

    ``hold(seconds)`` closes it until ``clock() + seconds`` (never earlier than a hold in force);
    :meth:`wait` sleeps until it opens, again if a new hold came meanwhile. A request that would have
    to wait longer than ``max_wait_s`` is not made to wait (see :class:`RateLimitTransport`).
    """

    def __init__(
        self, *, clock: Clock = time.monotonic, sleep: Sleep = asyncio.sleep, max_wait_s: float = 60.0
    ) -> None:
        self.until = 0.0
        #: how many holds moved ``until`` (a request checks that none came while it waited)
        self.holds = 0
        self.max_wait_s = max_wait_s
        self._clock = clock
        self._sleep = sleep

    def hold(self, seconds: float) -> None:
        """Let nothing through for ``seconds`` from now."""
        until = self._clock() + max(0.0, seconds)
        if until > self.until:
            self.until = until
            self.holds += 1

    def remaining(self) -> float:
        """Seconds until the gate opens (0.0 when open)."""
        return max(0.0, self.until - self._clock())

    async def wait(self) -> float:
        """Sleep until the gate is open; returns the seconds slept."""
        waited = 0.0
        while True:
            holds, left = self.holds, self.remaining()
            if left <= 0:
                return waited
            await self._sleep(left)
            waited += left
            if self.holds == holds:  # no new hold while sleeping: open now (whatever a fake clock says)
                return waited


class RateLimitTransport(_Layer):
    """Waits for the registry's ``Retry-After`` (the ``gate``), then for the :class:`RateLimit`, before
    every request it passes on.

    A request that reserved its rate-limit slot before a hold came waits for the gate again, so none
    goes out early. One that would wait longer than the gate's ``max_wait_s`` is not sent: it gets a
    ``429`` made here, with the ``Retry-After`` left, which the retry layer returns as it is.
    """

    def __init__(
        self,
        inner: httpx.AsyncBaseTransport,
        limit: RateLimit | None,
        *,
        counter: RequestCounter | None = None,
        gate: RetryAfterGate | None = None,
    ) -> None:
        super().__init__(inner)
        self.limit = limit
        self.gate = gate
        self._counter = counter

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` once the registry's Retry-After and the rate limit allow it."""
        waited = 0.0
        slept_out = request.extensions.get(_SLEPT_OUT)
        while True:
            if self.gate is not None and self.gate.holds != slept_out:
                left = self.gate.remaining()
                if left > self.gate.max_wait_s:
                    return _not_sent(request, left)
                waited += await self.gate.wait()
            holds = self.gate.holds if self.gate is not None else 0
            if self.limit is not None:
                waited += await self.limit.acquire()
            if self.gate is None or self.gate.holds == holds:
                break
        if waited > 0 and self._counter is not None:
            self._counter.rate_limit_waits += 1
            self._counter.rate_limit_wait_s += waited
        return await self.inner.handle_async_request(request)


def _not_sent(request: httpx.Request, left: float) -> httpx.Response:
    message = f"not sent: the registry asked to wait {left:.0f} s more (Retry-After)"
    body = json.dumps({"errors": [{"code": "TOOMANYREQUESTS", "message": message}]})
    return httpx.Response(
        429,
        headers={"Retry-After": str(int(left + 0.999)), "Content-Type": "application/json"},
        content=body.encode(),
        request=request,
    )


class CountingTransport(_Layer):
    """Counts every request that reaches it, by kind and status, into a :class:`RequestCounter`."""

    def __init__(self, inner: httpx.AsyncBaseTransport, counter: RequestCounter) -> None:
        super().__init__(inner)
        self.counter = counter

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` and count it."""
        kind = request_kind(request)
        self.counter.requests[kind] += 1
        try:
            response = await self.inner.handle_async_request(request)
        except BaseException:
            self.counter.statuses[(kind, None)] += 1
            raise
        self.counter.statuses[(kind, response.status_code)] += 1
        return response


@functools.lru_cache(maxsize=1)
def system_ssl_context() -> ssl.SSLContext:
    """httpx's default verifying context (certifi's CAs), made once per process: loading the CA bundle
    takes 25-70 ms, and every cycle builds its registries' clients anew. Shared contexts are only read
    (HTTP/2 or not is the same for every client)."""
    return httpx.create_ssl_context()


def http_transport(verify: ssl.SSLContext | str | bool = True) -> httpx.AsyncHTTPTransport:
    """httpx's connection pool (HTTP/2 where offered), its sockets found once per connection.

    Before every request and after every response httpcore's pool asks each idle HTTP/1.1 connection
    whether its socket is readable (the server closed it); anyio finds the socket through a mapping of
    attribute getters it builds for each question. With ten connections that was some 35 questions a
    request and a fifth of the CPU of a tag listing. :class:`_SocketOnce` answers the same question
    from the socket it found the first time. httpx takes no network backend, so it is set on its
    pool; with another httpx that keeps its pool elsewhere the transport is left as it is.
    """
    if verify is True:
        verify = system_ssl_context()
    transport = httpx.AsyncHTTPTransport(verify=verify, http2=HTTP2)
    pool = getattr(transport, "_pool", None)
    backend = getattr(pool, "_network_backend", None)
    if isinstance(pool, httpcore.AsyncConnectionPool) and isinstance(backend, httpcore.AsyncNetworkBackend):
        pool._network_backend = _SocketOnce(backend)
    return transport


class _SocketOnce(httpcore.AsyncNetworkBackend):
    """A network backend whose streams find their socket once (see :func:`http_transport`)."""

    def __init__(self, inner: httpcore.AsyncNetworkBackend) -> None:
        self.inner = inner

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        stream = await self.inner.connect_tcp(
            host, port, timeout=timeout, local_address=local_address, socket_options=socket_options
        )
        return _ReadableStream(stream)

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.AsyncNetworkStream:
        stream = await self.inner.connect_unix_socket(path, timeout=timeout, socket_options=socket_options)
        return _ReadableStream(stream)

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


class _ReadableStream(httpcore.AsyncNetworkStream):
    """A stream that answers ``is_readable`` from its socket, found once, as httpcore does: a closed
    socket counts as readable (the next read would return end of file)."""

    def __init__(self, inner: httpcore.AsyncNetworkStream) -> None:
        self.inner = inner
        self._poll: Any = None
        self._socket: Any = None

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return await self.inner.read(max_bytes, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await self.inner.write(buffer, timeout)

    async def aclose(self) -> None:
        await self.inner.aclose()

    async def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.AsyncNetworkStream:
        return _ReadableStream(await self.inner.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        if info != "is_readable":
            return self.inner.get_extra_info(info)
        if self._poll is None:
            sock = self.inner.get_extra_info("socket")
            fd = sock.fileno() if hasattr(sock, "fileno") and hasattr(select, "poll") else -1
            if fd < 0:
                return self.inner.get_extra_info(info)
            self._socket, self._poll = sock, select.poll()
            self._poll.register(fd, select.POLLIN)
        if self._socket.fileno() < 0:
            return True
        return bool(self._poll.poll(0))


def build_transport(
    inner: httpx.AsyncBaseTransport | None = None,
    *,
    retry: RetryPolicy = DEFAULT_RETRY,
    rate_limit: RateLimit | None = None,
    counter: RequestCounter | None = None,
    sleep: Sleep = asyncio.sleep,
    wall_clock: Clock = time.time,
    verify: ssl.SSLContext | str | bool = True,
    clock: Clock = time.monotonic,
    gate: RetryAfterGate | None = None,
) -> httpx.AsyncBaseTransport:
    """The registry transport stack over ``inner`` (a new :func:`http_transport` when ``None``).

    ``gate`` is the registry's :class:`RetryAfterGate` (a new one, on ``clock`` and ``sleep``, when
    ``None``; it waits at most ``retry.max_retry_after_s``).
    """
    transport: httpx.AsyncBaseTransport = inner or http_transport(verify)
    if counter is not None:
        transport = CountingTransport(transport, counter)
    gate = gate or RetryAfterGate(clock=clock, sleep=sleep, max_wait_s=retry.max_retry_after_s)
    transport = RateLimitTransport(transport, rate_limit, counter=counter, gate=gate)
    return RetryTransport(transport, retry, sleep=sleep, wall_clock=wall_clock, counter=counter, gate=gate)
