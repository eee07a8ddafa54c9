"""Turning registry responses and httpx failures into the product's registry errors, and remembering
what was read before (:class:`Remembered`).

A failed response becomes one :class:`~image_updater.errors.RegistryError` subclass carrying the
status, the registry's error codes (``{"errors": [{"code", "message"}]}``) and a redacted URL::

    401, 403                      RegistryAuthError
    404                           RegistryNotFoundError
    429, 5xx                      RegistryUnavailableError   (after the transport's retries)
    timeouts, connection errors   RegistryUnavailableError
    any other status or failure   RegistryError
"""

from __future__ import annotations

import contextlib
import json
import ssl
from collections.abc import Hashable
from typing import Any, Generic, TypeVar

import httpx

from image_updater.adapters.registry.urls import redact_url
from image_updater.errors import (
    RegistryAuthError,
    RegistryError,
    RegistryNotFoundError,
    RegistryUnavailableError,
)

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

#: what a transport error that carries no message means (a reset connection raises a bare ReadError)
_QUIET_ERRORS: dict[type[httpx.TransportError], str] = {
    httpx.ReadError: "the connection was reset or closed while reading the answer",
    httpx.WriteError: "the connection was reset or closed while sending the request",
    httpx.ConnectError: "cannot connect",
    httpx.RemoteProtocolError: "the registry broke the HTTP protocol",
}


def parse_error_body(body: bytes) -> tuple[tuple[str, ...], str | None]:
    """The error codes and the first message of a registry error body; empty if it is not one."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return (), None
    errors = data.get("errors") if isinstance(data, dict) else None
    if not isinstance(errors, list):
        return (), None
    entries = [e for e in errors if isinstance(e, dict)]
    codes = tuple(e["code"] for e in entries if isinstance(e.get("code"), str))
    message = next((e["message"] for e in entries if isinstance(e.get("message"), str)), None)
    return codes, message


def error_for_response(response: httpx.Response, body: bytes, *, what: str, registry: str) -> RegistryError:
    """The error for a response whose status is not a success; ``what`` names the operation."""
    status = response.status_code
    codes, message = parse_error_body(body)
    detail = message or response.reason_phrase or "error"
    error_type: type[RegistryError] = RegistryError
    if status in (401, 403):
        error_type = RegistryAuthError
        challenge = response.headers.get("www-authenticate")
        if status == 401 and not message and challenge:
            detail = "authentication required"
    elif status == 404:
        error_type = RegistryNotFoundError
    elif status == 429 or status >= 500:
        error_type = RegistryUnavailableError
    return error_type(
        f"{what}: {detail}", registry=registry, status=status, codes=codes, url=redact_url(response.request.url)
    )


def error_for_exception(error: httpx.HTTPError, *, what: str, registry: str, url: httpx.URL) -> RegistryError:
    """The error for an httpx failure (no response); the caller raises it ``from`` the original."""
    with contextlib.suppress(RuntimeError):  # an error raised outside a request has no .request
        url = error.request.url
    redacted = redact_url(url)
    if isinstance(error, httpx.TimeoutException):
        return RegistryUnavailableError(f"{what}: timed out ({type(error).__name__})", registry=registry, url=redacted)
    if caused_by(error, ssl.SSLCertVerificationError):
        return RegistryError(f"{what}: TLS certificate verification failed", registry=registry, url=redacted)
    if isinstance(error, httpx.TooManyRedirects):
        return RegistryError(f"{what}: too many redirects", registry=registry, url=redacted)
    if isinstance(error, httpx.UnsupportedProtocol):
        return RegistryError(f"{what}: unsupported URL scheme", registry=registry, url=redacted)
    if isinstance(error, httpx.TransportError):
        reason = str(error) or _QUIET_ERRORS.get(type(error), "the connection failed")
        if not str(error):
            reason += f" ({type(error).__name__})"
        return RegistryUnavailableError(f"{what}: {reason}", registry=registry, url=redacted)
    return RegistryError(f"{what}: {error}", registry=registry, url=redacted)


def parse_json_object(body: bytes, *, what: str, registry: str, response: httpx.Response) -> dict[str, Any]:
    """``body`` as a JSON object, or a :class:`RegistryError` saying what was wrong with it."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as e:
        raise RegistryError(
            f"{what}: the response is not valid JSON ({e})",
            registry=registry,
            status=response.status_code,
            url=redact_url(response.request.url),
        ) from e
    if not isinstance(data, dict):
        raise RegistryError(
            f"{what}: expected a JSON object, got {type(data).__name__}",
            registry=registry,
            status=response.status_code,
            url=redact_url(response.request.url),
        )
    return data


async def read_capped(response: httpx.Response, limit: int, *, what: str, registry: str) -> bytes:
    """Read a streamed response body, refusing one larger than ``limit`` bytes."""
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(response, limit, what=what, registry=registry)
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > limit:
            raise _too_large(response, limit, what=what, registry=registry)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(response: httpx.Response, limit: int, *, what: str, registry: str) -> RegistryError:
    return RegistryError(
        f"{what}: the response is larger than {limit} bytes",
        registry=registry,
        status=response.status_code,
        url=redact_url(response.request.url),
    )


def caused_by(error: BaseException, kind: type[BaseException]) -> bool:
    """Whether ``error`` or an exception in its ``__cause__``/``__context__`` chain is a ``kind``."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, kind):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


class _Entry(Generic[V]):
    __slots__ = ("size", "used", "value")

    def __init__(self, value: V, size: int) -> None:
        self.value, self.size, self.used = value, size, True


class Remembered(Generic[K, V]):
    """What was read from a registry before, by key, to be recognised when it is read again.

    The service reads the same tag lists every cycle and they seldom change. At most ``capacity`` units
    are kept (each value comes with its size: bytes, tags). When a value would pass the bound, the values
    not asked for since the last time that happened are dropped, and if that is not enough the new one
    is not kept: a key asked for every cycle is not pushed out by one asked for once, and a cycle that
    reads more than the bound still finds most of it again (least-recently-used would find nothing).
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.size = 0
        self._entries: dict[K, _Entry[V]] = {}

    def get(self, key: K) -> V | None:
        """The value kept for ``key``, if any."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        entry.used = True
        return entry.value

    def put(self, key: K, value: V, size: int) -> None:
        """Keep ``value`` for ``key`` (instead of the one kept before), if the bound allows."""
        self.forget(key)
        if self.size + size > self.capacity:
            for old, entry in list(self._entries.items()):
                if not entry.used:
                    self.forget(old)
                entry.used = False
            if self.size + size > self.capacity:
                return
        self._entries[key] = _Entry(value, size)
        self.size += size

    def forget(self, key: K) -> None:
        """Drop what is kept for ``key``."""
        entry = self._entries.pop(key, None)
        if entry is not None:
            self.size -= entry.size
