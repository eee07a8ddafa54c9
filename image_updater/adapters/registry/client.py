"""An asynchronous client for the Docker Registry HTTP API v2 / OCI distribution API (read side).

One :class:`RegistryClient` talks to one registry. Authentication is a :class:`RegistryAuth` flow;
retries, the rate limit and request counting are transport layers (``transport.build_transport``);
every failure is raised as one of the product's registry errors with a redacted URL.
"""

from __future__ import annotations

import asyncio
import re
import ssl
import time
from collections.abc import MutableMapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import httpx

from image_updater.adapters.registry.auth import Credentials, RegistryAuth
from image_updater.adapters.registry.manifest import (
    MANIFEST_ACCEPT,
    Manifest,
    ManifestFormatError,
    compute_digest,
    digest_algorithm,
    is_digest,
    media_type_of,
    validate_manifest,
)
from image_updater.adapters.registry.responses import (
    Remembered,
    error_for_exception,
    error_for_response,
    parse_json_object,
    read_capped,
)
from image_updater.adapters.registry.transport import (
    DEFAULT_RETRY,
    KIND_BLOB,
    KIND_EXTENSION,
    KIND_MANIFEST,
    KIND_PING,
    KIND_TAGS,
    Clock,
    RateLimit,
    RequestCounter,
    RetryPolicy,
    Sleep,
    build_transport,
)
from image_updater.adapters.registry.urls import is_loopback_host, next_link, redact_url, same_origin_host
from image_updater.errors import RegistryError
from image_updater.model.ref import is_valid_tag

DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=10.0)
MAX_MANIFEST_BYTES = 4 << 20
MAX_CONFIG_BYTES = 8 << 20
MAX_TAGS_PAGE_BYTES = 32 << 20
#: the bytes of tag pages a client keeps to recognise them (with their tags: about as much again)
MAX_REMEMBERED_PAGE_BYTES = 8 << 20
_MAX_ERROR_BODY_BYTES = 64 << 10
_REPOSITORY = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$")


class RegistryClient:
    """Reads tags, manifests and config blobs from one registry.

    ``base_url`` is the API root (``https://registry-1.docker.io``; see ``urls.base_url_for``);
    ``registry`` is the name errors show (``docker.io``). Pass ``http`` to use a ready client as it is
    (its transport should come from ``build_transport``; the caller closes it), or ``transport`` (a
    ``MockTransport`` in tests) to have it wrapped in the retry / rate-limit / counting stack.
    ``rate_limit`` is requests per second (or a shared :class:`RateLimit`). ``clock``, ``wall_clock``
    and ``sleep`` reach the token cache, ``Retry-After`` handling and the rate limit.

    For a loopback host reached over ``https``, plain ``http`` is tried when HTTPS fails at the
    connection or TLS level, as Docker does (``http_fallback=None``: only for loopback; ``True`` or
    ``False`` to force). The scheme that worked is remembered in ``scheme_memory`` (host -> scheme;
    share one mapping between clients) and never downgraded once HTTPS has worked.

    A page of tags that reads the same, byte for byte, as the last one from its URL is not decoded
    again; up to ``remembered_page_bytes`` of pages are kept (see :class:`Remembered`).
    """

    def __init__(
        self,
        base_url: str,
        *,
        registry: str,
        credentials: Credentials | None = None,
        http: httpx.AsyncClient | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        retry: RetryPolicy = DEFAULT_RETRY,
        rate_limit: float | RateLimit | None = None,
        counter: RequestCounter | None = None,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        verify: bool | str | ssl.SSLContext = True,
        clock: Clock = time.monotonic,
        wall_clock: Clock = time.time,
        sleep: Sleep = asyncio.sleep,
        page_size: int | None = 1000,
        max_pages: int = 10_000,
        max_tags: int = 1_000_000,
        remembered_page_bytes: int = MAX_REMEMBERED_PAGE_BYTES,
        http_fallback: bool | None = None,
        scheme_memory: MutableMapping[str, str] | None = None,
        user_agent: str = "image-updater",
    ) -> None:
        base = httpx.URL(base_url.rstrip("/"))
        if base.scheme not in ("http", "https") or not base.host:
            raise RegistryError(f"invalid registry URL {redact_url(base)!r}", registry=registry)
        if base.userinfo:
            raise RegistryError(
                f"registry URL {redact_url(base)!r} holds credentials: pass them as credentials", registry=registry
            )
        self.registry = registry
        self._host_key = base.netloc.decode("ascii")
        self._schemes: MutableMapping[str, str] = {} if scheme_memory is None else scheme_memory
        remembered = self._schemes.get(self._host_key)
        self._base = base.copy_with(scheme=remembered) if remembered else base
        self._scheme_confirmed = remembered is not None
        self._fallback = (
            http_fallback if http_fallback is not None else base.scheme == "https" and is_loopback_host(self._host_key)
        )
        self._page_size = page_size
        self._max_pages = max_pages
        self._max_tags = max_tags
        self._pages: Remembered[str, _Page] = Remembered(remembered_page_bytes)
        self._auth = RegistryAuth(base, credentials, registry=registry, clock=clock, wall_clock=wall_clock)
        self.counter = counter if counter is not None or http is not None else RequestCounter()
        self._owns_http = http is None
        if http is None:
            limit = (
                RateLimit(rate_limit, clock=clock, sleep=sleep) if isinstance(rate_limit, int | float) else rate_limit
            )
            stack = build_transport(
                transport,
                retry=retry,
                rate_limit=limit,
                counter=self.counter,
                sleep=sleep,
                wall_clock=wall_clock,
                verify=verify,
                clock=clock,
            )
            http = _HTTPClient(transport=stack, timeout=timeout, headers={"User-Agent": user_agent})
        self._http = http

    @property
    def base_url(self) -> str:
        """The API root in use (its scheme may have fallen back to ``http`` on loopback)."""
        return str(self._base)

    async def aclose(self) -> None:
        """Close the HTTP client if this client created it."""
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> RegistryClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def ping(self) -> None:
        """Check that the registry speaks API v2 and accepts our credentials (``GET /v2/``)."""
        await self._fetch("GET", self._url("/v2/"), kind=KIND_PING, what="checking the registry API", limit=0)

    async def list_tags(self, repository: str) -> list[str]:
        """All tags of ``repository``, following ``Link: <...>; rel="next"`` pages, without duplicates.

        ``"tags": null`` (every tag deleted) is an empty list. A next page on another host or scheme,
        a page seen before, more than ``max_pages`` pages or more than ``max_tags`` tags is a
        :class:`RegistryError`. The page bound allows a registry that pages by 100 (Quay) to list a
        million tags; the tag bound keeps memory bounded whatever the registry sends.
        """
        self._check_repository(repository)
        what = f"listing the tags of {repository}"
        url = self._url(f"/v2/{repository}/tags/list" + (f"?n={self._page_size}" if self._page_size else ""))
        visited: set[str] = set()
        tags: dict[str, None] = {}
        for _ in range(self._max_pages):
            key = str(url)
            visited.add(key)
            response, body = await self._fetch(
                "GET",
                url,
                kind=KIND_TAGS,
                what=what,
                headers={"Accept": "application/json"},
                limit=MAX_TAGS_PAGE_BYTES,
            )
            page = self._page(key, body, what, response)
            link = next_link(response.headers)
            if link is None and not tags and page.unique and len(page.tags) <= self._max_tags:
                return list(page.tags)  # the usual answer, one page without duplicates: no dictionary to build
            tags.update(dict.fromkeys(page.tags))
            if len(tags) > self._max_tags:
                raise self._error(f"{what}: more than {self._max_tags} tags", url)
            if link is None:
                return list(tags)
            url = self._next_page(response, link, what)
            if str(url) in visited:
                raise self._error(f"{what}: the registry's pagination loops back to a page already read", url)
        raise self._error(f"{what}: more than {self._max_pages} pages of tags", url)

    async def get_manifest(self, repository: str, reference: str) -> Manifest:
        """The manifest or index of ``repository`` at ``reference`` (a tag or a digest).

        The digest is the registry's ``Docker-Content-Digest``, checked against the body (and against
        ``reference`` when that is a digest), or else the body's sha256.
        """
        self._check_repository(repository)
        self._check_reference(reference)
        what = f"fetching the manifest of {_describe(repository, reference)}"
        response, body = await self._fetch(
            "GET",
            self._url(f"/v2/{repository}/manifests/{reference}"),
            kind=KIND_MANIFEST,
            what=what,
            headers={"Accept": MANIFEST_ACCEPT},
            limit=MAX_MANIFEST_BYTES,
        )
        content = parse_json_object(body, what=what, registry=self.registry, response=response)
        try:
            media_type = media_type_of(response.headers.get("content-type"), content)
            validate_manifest(media_type, content)
        except ManifestFormatError as e:
            raise self._error(f"{what}: {e}", response.request.url, status=response.status_code) from e
        expected = [response.headers.get("docker-content-digest"), reference if is_digest(reference) else None]
        digest = self._verify_digest(body, [d for d in expected if d], what, response)
        return Manifest(media_type=media_type, digest=digest, content=content, raw=body)

    async def head_digest(self, repository: str, reference: str) -> str:
        """The digest of the manifest at ``reference`` from a ``HEAD`` request (GET if not given)."""
        self._check_repository(repository)
        self._check_reference(reference)
        what = f"resolving the digest of {_describe(repository, reference)}"
        response, _ = await self._fetch(
            "HEAD",
            self._url(f"/v2/{repository}/manifests/{reference}"),
            kind=KIND_MANIFEST,
            what=what,
            headers={"Accept": MANIFEST_ACCEPT},
            limit=0,
        )
        digest = response.headers.get("docker-content-digest", "").strip()
        if digest and digest_algorithm(digest) is None:
            raise self._error(f"{what}: malformed Docker-Content-Digest {digest!r}", response.request.url)
        return digest or (await self.get_manifest(repository, reference)).digest

    async def get_config_blob(self, repository: str, digest: str) -> dict[str, Any]:
        """The image config blob ``digest`` as JSON, its content verified against the digest.

        Redirects (to blob storage) are followed; credentials never go to another host.
        """
        self._check_repository(repository)
        what = f"fetching config blob {digest} of {repository}"
        if digest_algorithm(digest) is None:
            raise self._error(f"{what}: not a supported digest", None)
        response, body = await self._fetch(
            "GET",
            self._url(f"/v2/{repository}/blobs/{digest}"),
            kind=KIND_BLOB,
            what=what,
            limit=MAX_CONFIG_BYTES,
        )
        self._verify_digest(body, [digest], what, response)
        return parse_json_object(body, what=what, registry=self.registry, response=response)

    async def _fetch(
        self,
        method: str,
        url: httpx.URL,
        *,
        kind: str,
        what: str,
        limit: int,
        headers: dict[str, str] | None = None,
    ) -> tuple[httpx.Response, bytes]:
        """Send a request; return the response and its body (read up to ``limit`` bytes) on 2xx."""
        response = await self._open(method, url, kind=kind, what=what, headers=headers)
        try:
            if not 200 <= response.status_code < 300:
                body = await _read_prefix(response, _MAX_ERROR_BODY_BYTES)
                raise error_for_response(response, body, what=what, registry=self.registry)
            body = (
                b""
                if method == "HEAD" or limit == 0
                else await read_capped(response, limit, what=what, registry=self.registry)
            )
        except httpx.HTTPError as e:
            raise error_for_exception(e, what=what, registry=self.registry, url=url) from e
        finally:
            await response.aclose()
        return response, body

    async def _open(
        self, method: str, url: httpx.URL, *, kind: str, what: str, headers: dict[str, str] | None
    ) -> httpx.Response:
        while True:
            request = self._http.build_request(method, url, headers=headers, extensions={KIND_EXTENSION: kind})
            try:
                response = await self._http.send(request, auth=self._auth, follow_redirects=True, stream=True)
            except httpx.ConnectError as e:
                if self._may_fall_back(url):
                    url = self._fall_back(url)
                    continue
                raise error_for_exception(e, what=what, registry=self.registry, url=url) from e
            except httpx.HTTPError as e:
                raise error_for_exception(e, what=what, registry=self.registry, url=url) from e
            if not self._scheme_confirmed and same_origin_host(url, self._base):
                self._scheme_confirmed = True
                self._schemes[self._host_key] = self._base.scheme
            return response

    def _may_fall_back(self, url: httpx.URL) -> bool:
        return (
            self._fallback
            and not self._scheme_confirmed
            and url.scheme == "https"
            and same_origin_host(url, self._base)
        )

    def _fall_back(self, url: httpx.URL) -> httpx.URL:
        self._base = self._base.copy_with(scheme="http")
        return url.copy_with(scheme="http")

    def _url(self, path: str) -> httpx.URL:
        """``path`` (and its query) on the API root. Not through ``params=``: httpx's query encoding costs
        some 50,000 instructions a request, and a repository name and a page size need no quoting."""
        return httpx.URL(str(self._base) + path)

    def _next_page(self, response: httpx.Response, link: str, what: str) -> httpx.URL:
        try:
            url = response.request.url.join(link)
        except httpx.InvalidURL as e:
            raise self._error(f"{what}: invalid Link header URL", None) from e
        if url.scheme != self._base.scheme or not same_origin_host(url, self._base):
            raise self._error(
                f"{what}: refusing a next page on another host or scheme ({redact_url(url)})",
                response.request.url,
            )
        return url

    def _page(self, key: str, body: bytes, what: str, response: httpx.Response) -> _Page:
        """The tags of a page; those of the last page read from the same URL when the bytes are the same
        (no JSON decoded and no new strings: some 260,000 instructions at 300 tags, and the pool then
        recognises an unchanged listing at once, string by string)."""
        page = self._pages.get(key)
        if page is None or page.body != body:
            data = parse_json_object(body, what=what, registry=self.registry, response=response)
            tags = self._page_tags(data, what, response)
            page = _Page(body, tags, unique=len(set(tags)) == len(tags))
            self._pages.put(key, page, len(body))
        return page

    def _page_tags(self, data: dict[str, Any], what: str, response: httpx.Response) -> list[str]:
        if "tags" not in data:
            raise self._error(f"{what}: the response has no 'tags' field", response.request.url)
        tags = data["tags"]
        if tags is None:
            return []
        if not isinstance(tags, list) or not all(map(str.__instancecheck__, tags)):  # in C: 300 tags a page
            raise self._error(f"{what}: 'tags' is not a list of strings", response.request.url)
        return tags

    def _verify_digest(self, body: bytes, expected: list[str], what: str, response: httpx.Response) -> str:
        """Check ``body`` against each expected digest; return the first, or the body's sha256."""
        for digest in expected:
            algorithm = digest_algorithm(digest)
            if algorithm is None:
                raise self._error(f"{what}: malformed or unsupported digest {digest!r}", response.request.url)
            actual = compute_digest(body, algorithm)
            if actual != digest.lower():
                raise self._error(
                    f"{what}: digest mismatch: expected {digest}, content is {actual}", response.request.url
                )
        return expected[0].lower() if expected else compute_digest(body)

    def _check_repository(self, repository: str) -> None:
        if not _REPOSITORY.match(repository):
            raise RegistryError(f"invalid repository name {repository!r}", registry=self.registry)

    def _check_reference(self, reference: str) -> None:
        if not (is_valid_tag(reference) or digest_algorithm(reference)):
            raise RegistryError(f"invalid tag or digest {reference!r}", registry=self.registry)

    def _error(self, message: str, url: httpx.URL | None, *, status: int | None = None) -> RegistryError:
        return RegistryError(
            message, registry=self.registry, status=status, url=redact_url(url) if url is not None else None
        )


@dataclass(frozen=True)
class _Page:
    """A page of tags as read: its bytes, its tags (never handed out: callers get copies), whether
    each tag appears once."""

    body: bytes
    tags: list[str]
    unique: bool


class _Cookies(httpx.Cookies):
    """httpx's cookie jar, handed only the responses that set a cookie.

    httpx gives every response to the jar through urllib's request and email message adapters, some
    240,000 instructions a request (6 % of a tag listing against a real registry); the jar takes nothing
    from a response without ``Set-Cookie`` or ``Set-Cookie2``, and registries seldom send one.
    """

    def extract_cookies(self, response: httpx.Response) -> None:
        """Load the cookies a response sets (see the class docstring)."""
        if "set-cookie" in response.headers or "set-cookie2" in response.headers:
            super().extract_cookies(response)


class _HTTPClient(httpx.AsyncClient):
    """An ``AsyncClient`` whose cookie jar is a :class:`_Cookies`."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.cookies = kwargs.get("cookies")

    @property
    def cookies(self) -> httpx.Cookies:
        """The cookies the registry set (sent back with every later request, as httpx does)."""
        return self._jar

    @cookies.setter
    def cookies(self, cookies: httpx.Cookies | dict[str, str] | None) -> None:
        self._jar = _Cookies(cookies)


def _describe(repository: str, reference: str) -> str:
    return f"{repository}{'@' if is_digest(reference) else ':'}{reference}"


async def _read_prefix(response: httpx.Response, limit: int) -> bytes:
    """Up to ``limit`` bytes of an error response's body (the rest is not needed)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size >= limit:
            break
    return b"".join(chunks)[:limit]
