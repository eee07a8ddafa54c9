"""RegistryAuth: the challenge parser, Basic and Bearer flows, the token cache and the host rules."""

from __future__ import annotations

import base64
from collections.abc import Callable

import httpx
import pytest

from image_updater.adapters.registry.auth import Credentials, RegistryAuth, scopes_for_path
from image_updater.adapters.registry.challenge import Challenge, find_challenge, parse_challenges
from image_updater.errors import RegistryAuthError

pytestmark = pytest.mark.anyio

REGISTRY = "https://registry.example"
REALM = "https://auth.example/token"
CREDS = Credentials("alice", "s3cret")
BASIC = "Basic " + base64.b64encode(b"alice:s3cret").decode()



class FakeClock:
    """A monotonic clock that only moves when told to."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class TokenRegistry:
    """A registry that demands Bearer tokens from ``realm`` and a token server that issues them."""

    def __init__(self, *, realm: str = REALM, expires_in: int | None = 300, token_status: int = 200) -> None:
        self.realm = realm
        self.expires_in = expires_in
        self.token_status = token_status
        self.token_requests: list[httpx.Request] = []
        self.registry_auth: list[str | None] = []  # the Authorization of each registry request, as sent
        self.issued = 0
        self.valid: dict[str, set[str]] = {}

    def handler(self, request: httpx.Request) -> httpx.Response:
        if request.url.host == httpx.URL(self.realm).host and request.url.path == httpx.URL(self.realm).path:
            return self._token(request)
        self.registry_auth.append(request.headers.get("authorization"))
        needed = scopes_for_path(request.url.path)
        granted = self.valid.get(request.headers.get("authorization", ""), None)
        if granted is None or not needed <= granted:
            scope = f',scope="{next(iter(needed))}"' if needed else ""
            challenge = f'Bearer realm="{self.realm}",service="registry.example"{scope}'
            return httpx.Response(401, headers={"WWW-Authenticate": challenge}, json={"errors": []})
        return httpx.Response(200, json={"ok": True})

    def _token(self, request: httpx.Request) -> httpx.Response:
        self.token_requests.append(request)
        if self.token_status != 200:
            return httpx.Response(self.token_status, json={"errors": [{"code": "UNAVAILABLE"}]})
        self.issued += 1
        token = f"tok{self.issued}"
        self.valid[f"Bearer {token}"] = set(request.url.params.get_list("scope"))
        body: dict[str, object] = {"token": token}
        if self.expires_in is not None:
            body["expires_in"] = self.expires_in
        return httpx.Response(200, json=body)


def client(handler: Callable[[httpx.Request], httpx.Response], auth: RegistryAuth) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.MockTransport(handler), auth=auth)


# --- the challenge parser ---------------------------------------------------------------------------


def test_parser_reads_bearer_params_with_commas_inside_quotes() -> None:
    header = 'Bearer realm="https://auth.example/token",service="reg",scope="repository:a/b:pull,push"'
    [challenge] = parse_challenges(header)
    assert challenge == Challenge(
        "bearer", {"realm": "https://auth.example/token", "service": "reg", "scope": "repository:a/b:pull,push"}
    )


def test_parser_splits_several_challenges_and_ignores_case() -> None:
    challenges = parse_challenges('BASIC realm="x, y" , bEaReR REALM=https://a/t, Service="s"')
    assert [c.scheme for c in challenges] == ["basic", "bearer"]
    assert challenges[0].realm == "x, y"
    assert find_challenge(challenges, "Bearer") == Challenge("bearer", {"realm": "https://a/t", "service": "s"})


def test_parser_handles_escapes_token68_space_separated_scopes_and_junk() -> None:
    challenges = parse_challenges(
        [
            'Bearer realm="a\\"b", scope="repository:a:pull repository:b:pull", error=insufficient_scope',
            "Basic Zm9vOmJhcg==",
        ]
    )
    assert challenges[0].realm == 'a"b'
    assert challenges[0].scopes == ("repository:a:pull", "repository:b:pull")
    assert challenges[0].error == "insufficient_scope"
    assert challenges[1] == Challenge("basic", {}, token68="Zm9vOmJhcg==")
    assert parse_challenges("") == []
    assert parse_challenges(["=,,", "Basic"]) == [Challenge("basic")]


def test_scopes_for_path_names_the_repository() -> None:
    assert scopes_for_path("/v2/team/web/tags/list") == {"repository:team/web:pull"}
    assert scopes_for_path("/v2/team/web/manifests/1.0") == {"repository:team/web:pull"}
    assert scopes_for_path("/v2/") == frozenset()


def test_credentials_repr_hides_the_password() -> None:
    assert "s3cret" not in repr(CREDS)
    assert "s3cret" not in str(CREDS)
    assert "alice" in repr(CREDS)


# --- Basic ------------------------------------------------------------------------------------------


async def test_basic_challenge_is_answered_once_and_then_sent_up_front() -> None:
    seen: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("authorization"))
        if request.headers.get("authorization") != BASIC:
            return httpx.Response(401, headers={"WWW-Authenticate": 'Basic realm="Registry Realm"'})
        return httpx.Response(200)

    async with client(handler, RegistryAuth(REGISTRY, CREDS)) as http:
        assert (await http.get(f"{REGISTRY}/v2/a/tags/list")).status_code == 200
        assert (await http.get(f"{REGISTRY}/v2/b/tags/list")).status_code == 200
    assert seen == [None, BASIC, BASIC]


async def test_basic_with_wrong_credentials_returns_the_401_without_looping() -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return httpx.Response(401, headers={"WWW-Authenticate": "Basic"})

    async with client(handler, RegistryAuth(REGISTRY, CREDS)) as http:
        assert (await http.get(f"{REGISTRY}/v2/")).status_code == 401
        assert (await http.get(f"{REGISTRY}/v2/")).status_code == 401
    assert calls == 3  # 401, retry with credentials; then credentials up front, refused, no retry


# --- Bearer -----------------------------------------------------------------------------------------


async def test_bearer_dance_sends_service_scope_and_credentials_then_reuses_the_token() -> None:
    registry = TokenRegistry()
    async with client(registry.handler, RegistryAuth(REGISTRY, CREDS)) as http:
        assert (await http.get(f"{REGISTRY}/v2/team/web/tags/list")).status_code == 200
        assert (await http.get(f"{REGISTRY}/v2/team/web/manifests/1.0")).status_code == 200
    [token_request] = registry.token_requests
    assert token_request.url.params.get("service") == "registry.example"
    assert token_request.url.params.get_list("scope") == ["repository:team/web:pull"]
    assert token_request.headers["authorization"] == BASIC
    assert registry.registry_auth == [None, "Bearer tok1", "Bearer tok1"]


async def test_anonymous_bearer_sends_no_credentials_to_the_realm() -> None:
    registry = TokenRegistry()
    async with client(registry.handler, RegistryAuth(REGISTRY)) as http:
        assert (await http.get(f"{REGISTRY}/v2/library/nginx/tags/list")).status_code == 200
    assert "authorization" not in registry.token_requests[0].headers


async def test_expired_token_is_refreshed() -> None:
    registry = TokenRegistry(expires_in=None)  # the spec's default: 60 s
    clock = FakeClock()
    async with client(registry.handler, RegistryAuth(REGISTRY, CREDS, clock=clock)) as http:
        await http.get(f"{REGISTRY}/v2/a/tags/list")
        clock.now += 50
        await http.get(f"{REGISTRY}/v2/a/tags/list")
        assert len(registry.token_requests) == 1
        clock.now += 11
        assert (await http.get(f"{REGISTRY}/v2/a/tags/list")).status_code == 200
    assert len(registry.token_requests) == 2
    assert registry.registry_auth[-1] == "Bearer tok2"


async def test_issued_at_shortens_the_lifetime() -> None:
    tokens = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal tokens
        if request.url.host == "auth.example":
            tokens += 1
            return httpx.Response(200, json={"token": "t", "expires_in": 300, "issued_at": "2024-01-01T00:00:00Z"})
        if request.headers.get("authorization") == "Bearer t":
            return httpx.Response(200)
        return httpx.Response(401, headers={"WWW-Authenticate": f'Bearer realm="{REALM}",scope="repository:a:pull"'})

    clock = FakeClock()
    issued = 1704067200.0  # 2024-01-01T00:00:00Z; we learn of the token 250 s later: 50 s are left
    async with client(handler, RegistryAuth(REGISTRY, clock=clock, wall_clock=lambda: issued + 250)) as http:
        await http.get(f"{REGISTRY}/v2/a/tags/list")
        clock.now += 44  # still within 50 s less the 5 s margin
        await http.get(f"{REGISTRY}/v2/a/tags/list")
        assert tokens == 1
        clock.now += 2
        await http.get(f"{REGISTRY}/v2/a/tags/list")
    assert tokens == 2


async def test_new_repository_gets_its_own_token_without_a_second_401() -> None:
    registry = TokenRegistry()
    async with client(registry.handler, RegistryAuth(REGISTRY)) as http:
        await http.get(f"{REGISTRY}/v2/a/tags/list")
        await http.get(f"{REGISTRY}/v2/b/tags/list")
    assert [r.url.params.get("scope") for r in registry.token_requests] == ["repository:a:pull", "repository:b:pull"]
    assert registry.registry_auth == [None, "Bearer tok1", "Bearer tok2"]


async def test_challenge_for_a_missing_scope_fetches_a_token_covering_both() -> None:
    registry = TokenRegistry()
    extra = "repository:other:pull"

    def handler(request: httpx.Request) -> httpx.Response:
        granted = registry.valid.get(request.headers.get("authorization", ""))
        if request.url.path == "/v2/a/manifests/x" and granted is not None and extra not in granted:
            scope = f'scope="repository:a:pull {extra}",error="insufficient_scope"'
            return httpx.Response(401, headers={"WWW-Authenticate": f'Bearer realm="{REALM}",service="s",{scope}'})
        return registry.handler(request)

    async with client(handler, RegistryAuth(REGISTRY)) as http:
        await http.get(f"{REGISTRY}/v2/a/tags/list")
        assert (await http.get(f"{REGISTRY}/v2/a/manifests/x")).status_code == 200
    assert registry.token_requests[-1].url.params.get_list("scope") == ["repository:a:pull", extra]


async def test_refresh_happens_at_most_once_per_request() -> None:
    registry = TokenRegistry()

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "auth.example":
            return registry.handler(request)
        challenge = f'Bearer realm="{REALM}",scope="repository:a:pull"'
        return httpx.Response(401, headers={"WWW-Authenticate": challenge})

    async with client(handler, RegistryAuth(REGISTRY, CREDS)) as http:
        assert (await http.get(f"{REGISTRY}/v2/a/tags/list")).status_code == 401
        assert len(registry.token_requests) == 1
        # The next request sends the cached token; refused, it may refresh once more, and no further.
        assert (await http.get(f"{REGISTRY}/v2/a/tags/list")).status_code == 401
    assert len(registry.token_requests) == 2


async def test_access_token_field_is_accepted() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "auth.example":
            return httpx.Response(200, json={"access_token": "oauth"})
        if request.headers.get("authorization") == "Bearer oauth":
            return httpx.Response(200)
        return httpx.Response(401, headers={"WWW-Authenticate": f'Bearer realm="{REALM}"'})

    async with client(handler, RegistryAuth(REGISTRY)) as http:
        assert (await http.get(f"{REGISTRY}/v2/")).status_code == 200


# --- token endpoint failures and realm rules --------------------------------------------------------


async def test_token_endpoint_500_is_an_auth_error_with_the_status() -> None:
    registry = TokenRegistry(token_status=500)
    async with client(registry.handler, RegistryAuth(REGISTRY, CREDS, registry="registry.example")) as http:
        with pytest.raises(RegistryAuthError) as caught:
            await http.get(f"{REGISTRY}/v2/a/tags/list")
    assert caught.value.status == 500
    assert caught.value.codes == ("UNAVAILABLE",)
    assert caught.value.url is not None and "s3cret" not in caught.value.url


@pytest.mark.parametrize("body", [b"not json", b'{"token": ""}', b"[1]"])
async def test_token_response_without_a_token_is_an_auth_error(body: bytes) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "auth.example":
            return httpx.Response(200, content=body)
        return httpx.Response(401, headers={"WWW-Authenticate": f'Bearer realm="{REALM}"'})

    async with client(handler, RegistryAuth(REGISTRY)) as http:
        with pytest.raises(RegistryAuthError, match="token response"):
            await http.get(f"{REGISTRY}/v2/")


async def test_http_realm_on_another_host_is_refused_before_any_credentials_are_sent() -> None:
    registry = TokenRegistry(realm="http://auth.example/token")
    async with client(registry.handler, RegistryAuth(REGISTRY, CREDS)) as http:
        with pytest.raises(RegistryAuthError, match="not HTTPS"):
            await http.get(f"{REGISTRY}/v2/a/tags/list")
    assert registry.token_requests == []


async def test_http_realm_on_loopback_is_allowed() -> None:
    registry = TokenRegistry(realm="http://127.0.0.1:5001/auth")
    async with client(registry.handler, RegistryAuth("http://127.0.0.1:5000", CREDS)) as http:
        assert (await http.get("http://127.0.0.1:5000/v2/a/tags/list")).status_code == 200
    assert len(registry.token_requests) == 1


# --- credentials stay on their host -----------------------------------------------------------------


async def test_redirect_to_another_host_carries_no_authorization() -> None:
    registry = TokenRegistry()
    storage: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "storage.example":
            storage.append(request)
            return httpx.Response(200, content=b"blob")
        if request.url.path.startswith("/v2/a/blobs/") and request.headers.get("authorization") == "Bearer tok1":
            return httpx.Response(307, headers={"Location": "https://storage.example/blob?X-Amz-Signature=abc"})
        return registry.handler(request)

    async with client(handler, RegistryAuth(REGISTRY, CREDS)) as http:
        response = await http.get(f"{REGISTRY}/v2/a/blobs/sha256:00", follow_redirects=True)
    assert response.status_code == 200
    assert "authorization" not in storage[0].headers


async def test_requests_to_other_hosts_are_left_alone_even_with_a_known_scheme() -> None:
    seen: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("authorization"))
        if request.url.host == "registry.example" and request.headers.get("authorization") != BASIC:
            return httpx.Response(401, headers={"WWW-Authenticate": "Basic"})
        if request.url.host == "other.example":
            return httpx.Response(401, headers={"WWW-Authenticate": "Basic"})
        return httpx.Response(200)

    async with client(handler, RegistryAuth(REGISTRY, CREDS)) as http:
        await http.get(f"{REGISTRY}/v2/")
        assert (await http.get("https://other.example/v2/")).status_code == 401
    assert seen == [None, BASIC, None]


async def test_a_401_from_another_host_after_a_redirect_is_not_answered() -> None:
    seen: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("authorization"))
        if request.url.host == "storage.example":
            return httpx.Response(401, headers={"WWW-Authenticate": "Basic"})
        return httpx.Response(307, headers={"Location": "https://storage.example/x"})

    async with client(handler, RegistryAuth(REGISTRY, CREDS)) as http:
        response = await http.get(f"{REGISTRY}/v2/a/blobs/sha256:00", follow_redirects=True)
    assert response.status_code == 401
    assert seen == [None, None]


def test_the_same_flow_works_in_a_sync_client() -> None:
    registry = TokenRegistry()
    with httpx.Client(transport=httpx.MockTransport(registry.handler), auth=RegistryAuth(REGISTRY)) as http:
        assert http.get(f"{REGISTRY}/v2/a/tags/list").status_code == 200
    assert len(registry.token_requests) == 1
