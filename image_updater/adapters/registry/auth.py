"""Registry authentication as an :class:`httpx.Auth` flow: anonymous, HTTP Basic and Bearer tokens.

The flow answers a ``401`` the way the Docker Registry token specification describes: read the
``WWW-Authenticate`` challenge; for ``Basic`` resend with the credentials; for ``Bearer`` ask the
``realm`` for a token (``GET realm?service=...&scope=...``, with the credentials as Basic when there
are any) and resend with ``Authorization: Bearer <token>``.

The token request is *yielded* from :meth:`RegistryAuth.auth_flow`, so the client that sends the
registry request also sends the token request, through the same transport stack (retries, rate limit,
request counter). httpx supports this: ``Auth.auth_flow`` may yield any number of requests, each is
sent by the client and its response sent back into the generator, and ``AsyncClient`` drives the same
generator through ``Auth.async_auth_flow`` with ``await`` for every send. The flow itself does no I/O,
so it works unchanged in an ``AsyncClient`` (and in a sync ``Client``).

Security rules (go-containerregistry's): the registry's credentials and tokens are attached only to
requests for the registry's own host and port; a redirect elsewhere (blob storage) goes without
them; a token realm must be HTTPS unless it is on a loopback host.
"""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import AsyncGenerator, Callable, Generator, Iterable
from dataclasses import dataclass, field
from datetime import datetime

import httpx

from image_updater.adapters.registry.challenge import Challenge, find_challenge, parse_challenges
from image_updater.adapters.registry.responses import parse_error_body
from image_updater.adapters.registry.transport import KIND_EXTENSION, KIND_TOKEN
from image_updater.adapters.registry.urls import is_loopback_host, redact_url, same_origin_host
from image_updater.errors import RegistryAuthError

DEFAULT_TOKEN_LIFETIME_S = 60.0
"""The lifetime of a token whose response has no ``expires_in`` (token specification)."""

_REPOSITORY_PATH = re.compile(r"/v2/(?P<name>.+?)/(?:tags/list|manifests/[^/]+|blobs/[^/]+)$")
_MAX_TOKEN_BODY = 1 << 20

AuthFlow = Generator[httpx.Request, httpx.Response, None]


@dataclass(frozen=True)
class Credentials:
    """A username and password (or token) for a registry; the password never shows in ``repr``."""

    username: str
    password: str = field(repr=False)

    def basic_header(self) -> str:
        """The value of an ``Authorization: Basic`` header for these credentials."""
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode("ascii")


@dataclass(frozen=True)
class _Token:
    value: str = field(repr=False)
    scopes: frozenset[str]
    expires_at: float


def scopes_for_path(path: str) -> frozenset[str]:
    """The pull scope a registry API path needs (``repository:<name>:pull``), or none (``/v2/``)."""
    match = _REPOSITORY_PATH.search(path)
    return frozenset({f"repository:{match.group('name')}:pull"}) if match else frozenset()


class RegistryAuth(httpx.Auth):
    """Authentication for one registry host, with a per-scope token cache.

    Nothing is sent up front until the flow has learnt the host's scheme: after a ``Basic`` challenge
    the credentials go with every later request; after a ``Bearer`` challenge a cached token covering
    the request's scope goes with it, or, when none is cached, one is fetched from the known realm
    before the request (saving the ``401`` round trip for each new repository). A ``401`` is answered
    at most once per request. ``clock`` (monotonic seconds) and ``wall_clock`` (epoch seconds, for
    ``issued_at``) are injectable for tests.
    """

    def __init__(
        self,
        registry_url: str | httpx.URL,
        credentials: Credentials | None = None,
        *,
        registry: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        expiry_margin_s: float = 5.0,
    ) -> None:
        self._origin = httpx.URL(str(registry_url))
        self._credentials = credentials
        self._registry = registry or self._origin.netloc.decode("ascii")
        self._clock = clock
        self._wall_clock = wall_clock
        self._margin = expiry_margin_s
        self._scheme: str | None = None
        self._bearer: Challenge | None = None
        self._tokens: dict[str, _Token] = {}
        self._last_token: _Token | None = None

    @property
    def scheme(self) -> str | None:
        """The scheme learnt from the registry's challenges (``basic``, ``bearer``), if any yet."""
        return self._scheme

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        """Drive :meth:`auth_flow` for ``AsyncClient``, reading the body of token responses only.

        httpx's default driver reads either every response or none (``requires_response_body``);
        reading only the token endpoint's answers keeps registry responses streamable.
        """
        flow = self.auth_flow(request)
        outgoing = next(flow)
        while True:
            response = yield outgoing
            if outgoing.extensions.get(KIND_EXTENSION) == KIND_TOKEN:
                await response.aread()
            try:
                outgoing = flow.send(response)
            except StopIteration:
                return

    def sync_auth_flow(self, request: httpx.Request) -> AuthFlow:
        """Drive :meth:`auth_flow` for a sync ``Client``, reading the body of token responses only."""
        flow = self.auth_flow(request)
        outgoing = next(flow)
        while True:
            response = yield outgoing
            if outgoing.extensions.get(KIND_EXTENSION) == KIND_TOKEN:
                response.read()
            try:
                outgoing = flow.send(response)
            except StopIteration:
                return

    def auth_flow(self, request: httpx.Request) -> AuthFlow:
        """Send ``request``, answering one authentication challenge from the registry's host."""
        if not same_origin_host(request.url, self._origin):
            yield request
            return
        required = scopes_for_path(request.url.path)
        sent_token: _Token | None = None
        fresh = False
        basic_sent = False
        if self._scheme == "basic" and self._credentials is not None:
            request.headers["Authorization"] = self._credentials.basic_header()
            basic_sent = True
        elif self._scheme == "bearer":
            sent_token = self._cached(required)
            if sent_token is None and required and self._bearer is not None:
                sent_token = yield from self._fetch_token(self._bearer, required)
                fresh = True
            if sent_token is not None:
                request.headers["Authorization"] = f"Bearer {sent_token.value}"

        response = yield request
        if response.status_code != 401 or not same_origin_host(response.request.url, self._origin):
            return
        challenges = parse_challenges(response.headers.get_list("www-authenticate"))
        bearer = find_challenge(challenges, "bearer")
        if bearer is not None:
            wanted = set(bearer.scopes) or set(required)
            if sent_token is not None:
                if fresh and wanted <= sent_token.scopes:
                    return  # a token fetched for this very request was refused: another won't help
                wanted |= sent_token.scopes
                self._forget(sent_token)
            self._scheme, self._bearer = "bearer", bearer
            token = yield from self._fetch_token(bearer, frozenset(wanted))
            request.headers["Authorization"] = f"Bearer {token.value}"
            yield request
        elif find_challenge(challenges, "basic") is not None and self._credentials is not None:
            self._scheme = "basic"
            if basic_sent:
                return  # the credentials were refused
            request.headers["Authorization"] = self._credentials.basic_header()
            yield request

    def _fetch_token(
        self, challenge: Challenge, scopes: Iterable[str]
    ) -> Generator[httpx.Request, httpx.Response, _Token]:
        """Ask the challenge's realm for a token covering ``scopes``; cache and return it."""
        scopes = frozenset(scopes)
        request = self._token_request(challenge, scopes)
        response = yield request
        url = redact_url(request.url)
        if response.status_code != 200:
            raise RegistryAuthError(
                "the token endpoint refused to issue a token",
                registry=self._registry,
                status=response.status_code,
                codes=parse_error_body(response.content)[0],
                url=url,
            )
        token = self._parse_token(response.content, scopes, url)
        for scope in scopes:
            self._tokens[scope] = token
        self._last_token = token
        self._prune()
        return token

    def _token_request(self, challenge: Challenge, scopes: frozenset[str]) -> httpx.Request:
        if not challenge.realm:
            raise RegistryAuthError("the Bearer challenge names no realm", registry=self._registry)
        try:
            realm = httpx.URL(challenge.realm)
        except httpx.InvalidURL as e:
            raise RegistryAuthError(f"the Bearer realm is not a valid URL: {e}", registry=self._registry) from e
        secure = realm.scheme == "https" or (realm.scheme == "http" and is_loopback_host(realm.host))
        if not secure or not realm.host:
            raise RegistryAuthError(
                "refusing a token realm that is not HTTPS (plain HTTP is allowed on loopback only)",
                registry=self._registry,
                url=redact_url(realm),
            )
        params: list[tuple[str, str | int | float | bool | None]] = list(realm.params.multi_items())
        if challenge.service:
            params.append(("service", challenge.service))
        params.extend(("scope", scope) for scope in sorted(scopes))
        headers = {"Accept": "application/json"}
        if self._credentials is not None:
            headers["Authorization"] = self._credentials.basic_header()
        return httpx.Request(
            "GET",
            realm.copy_with(query=None),
            params=params,
            headers=headers,
            extensions={KIND_EXTENSION: KIND_TOKEN},
        )

    def _parse_token(self, body: bytes, scopes: frozenset[str], url: str) -> _Token:
        if len(body) > _MAX_TOKEN_BODY:
            raise RegistryAuthError("the token response is too large", registry=self._registry, url=url)
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError) as e:
            raise RegistryAuthError("the token response is not JSON", registry=self._registry, url=url) from e
        value = data.get("token") or data.get("access_token") if isinstance(data, dict) else None
        if not isinstance(value, str) or not value:
            raise RegistryAuthError(
                "the token response has neither 'token' nor 'access_token'", registry=self._registry, url=url
            )
        lifetime = self._lifetime(data)
        margin = min(self._margin, lifetime / 2)
        return _Token(value=value, scopes=scopes, expires_at=self._clock() + lifetime - margin)

    def _lifetime(self, data: dict[str, object]) -> float:
        """Seconds the token stays valid from now: ``expires_in`` (default 60), less its age."""
        expires_in = data.get("expires_in")
        if isinstance(expires_in, bool) or not isinstance(expires_in, int | float) or expires_in <= 0:
            expires_in = DEFAULT_TOKEN_LIFETIME_S
        issued_at = data.get("issued_at")
        if isinstance(issued_at, str):
            try:
                issued = datetime.fromisoformat(issued_at.replace("Z", "+00:00")).timestamp()
            except ValueError:
                return float(expires_in)
            age = self._wall_clock() - issued
            # A negative or implausible age is clock skew between us and the token server: ignore it.
            if 0 <= age < expires_in:
                return float(expires_in) - age
        return float(expires_in)

    def _cached(self, required: frozenset[str]) -> _Token | None:
        now = self._clock()
        if not required:
            token = self._last_token
            return token if token is not None and token.expires_at > now else None
        token = self._tokens.get(next(iter(required)))
        if token is None or token.expires_at <= now or not required <= token.scopes:
            return None
        return token

    def _forget(self, token: _Token) -> None:
        for scope in token.scopes:
            if self._tokens.get(scope) is token:
                del self._tokens[scope]
        if self._last_token is token:
            self._last_token = None

    def _prune(self) -> None:
        now = self._clock()
        for scope in [s for s, t in self._tokens.items() if t.expires_at <= now]:
            del self._tokens[scope]
