"""RegistryClient over httpx.MockTransport: tags and pagination, manifests, blobs, errors, fallback."""

from __future__ import annotations

import hashlib
import json
import ssl
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from image_updater.adapters.registry import Credentials, RegistryClient, base_url_for, redact_url
from image_updater.adapters.registry.manifest import (
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    OCI_INDEX,
    OCI_MANIFEST,
)
from image_updater.adapters.registry.transport import RetryPolicy
from image_updater.adapters.registry.urls import is_loopback_host, next_link
from image_updater.errors import (
    RegistryAuthError,
    RegistryError,
    RegistryNotFoundError,
    RegistryUnavailableError,
)

pytestmark = pytest.mark.anyio

BASE = "https://registry.example"
Handler = Callable[[httpx.Request], httpx.Response]



class Sleeps:
    """An injected sleep that records and never waits."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


def make_client(handler: Handler, base: str = BASE, **kwargs: Any) -> RegistryClient:
    kwargs.setdefault("sleep", Sleeps())
    kwargs.setdefault("retry", RetryPolicy(max_retries=2, base_backoff_s=0.1, jitter=0.0))
    return RegistryClient(base, registry="registry.example", transport=httpx.MockTransport(handler), **kwargs)


def digest_of(body: bytes) -> str:
    return "sha256:" + hashlib.sha256(body).hexdigest()


def tags_page(tags: list[str] | None, link: str | None = None) -> httpx.Response:
    headers = {"Link": f'<{link}>; rel="next"'} if link else {}
    return httpx.Response(200, json={"name": "team/web", "tags": tags}, headers=headers)


# --- helpers ----------------------------------------------------------------------------------------


def test_base_url_for() -> None:
    assert base_url_for("docker.io") == "https://registry-1.docker.io"
    assert base_url_for("index.docker.io") == "https://registry-1.docker.io"
    assert base_url_for("ghcr.io") == "https://ghcr.io"
    assert base_url_for("127.0.0.1:5000", insecure=True) == "http://127.0.0.1:5000"
    with pytest.raises(RegistryError):
        base_url_for("https://ghcr.io/x")


def test_loopback_hosts() -> None:
    assert all(map(is_loopback_host, ["localhost", "localhost:5000", "127.0.0.1", "127.1.2.3:80", "[::1]:5000"]))
    assert not any(map(is_loopback_host, ["ghcr.io", "10.0.0.1", "128.0.0.1", "localhost.example.com"]))


def test_redact_url_drops_userinfo_and_secret_query_values() -> None:
    url = "https://bob:pw@storage.example/blob?X-Amz-Signature=abc&token=t&n=10&last=v1#frag"
    assert redact_url(url) == "https://storage.example/blob?X-Amz-Signature=REDACTED&token=REDACTED&n=10&last=v1"


def test_next_link_parsing() -> None:
    headers = httpx.Headers([("Link", '</v2/a/tags/list?n=2&last=b>; rel="next"')])
    assert next_link(headers) == "/v2/a/tags/list?n=2&last=b"
    several = httpx.Headers([("Link", '<https://x/first>; rel="first", <https://x/n?a=1,2>; rel="next last"')])
    assert next_link(several) == "https://x/n?a=1,2"
    assert next_link(httpx.Headers([("Link", "<https://x/p>; rel=prev")])) is None
    assert next_link(httpx.Headers()) is None


# --- ping and tags ----------------------------------------------------------------------------------


async def test_ping() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        return httpx.Response(200, json={})

    async with make_client(handler) as client:
        await client.ping()
    assert seen == ["/v2/"]


async def test_list_tags_single_page_asks_for_a_page_size() -> None:
    seen: list[httpx.URL] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url)
        return tags_page(["1.0", "1.1"])

    async with make_client(handler) as client:
        assert await client.list_tags("team/web") == ["1.0", "1.1"]
    assert seen == [httpx.URL(f"{BASE}/v2/team/web/tags/list?n=1000")]


async def test_pagination_over_three_pages_with_relative_and_absolute_links() -> None:
    pages = {
        None: tags_page(["a", "b"], "/v2/team/web/tags/list?n=2&last=b"),
        "b": tags_page(["c", "d"], f"{BASE}/v2/team/web/tags/list?n=2&last=d"),
        "d": tags_page(["e"]),
    }

    def handler(request: httpx.Request) -> httpx.Response:
        return pages[request.url.params.get("last")]

    async with make_client(handler, page_size=2) as client:
        assert await client.list_tags("team/web") == ["a", "b", "c", "d", "e"]
        assert client.counter is not None and client.counter.requests["tags"] == 3


async def test_without_a_page_size_no_page_size_is_asked_for() -> None:
    seen: list[httpx.URL] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url)
        return tags_page(["1.0"])

    async with make_client(handler, page_size=None) as client:
        assert await client.list_tags("team/web") == ["1.0"]
    assert seen == [httpx.URL(f"{BASE}/v2/team/web/tags/list")]


async def test_duplicate_tags_are_listed_once_where_they_first_appear() -> None:
    pages = {
        None: tags_page(["b", "a", "b"], "/v2/team/web/tags/list?n=2&last=b"),
        "b": tags_page(["a", "c", "c"]),
    }
    async with make_client(lambda request: pages[request.url.params.get("last")]) as client:
        assert await client.list_tags("team/web") == ["b", "a", "c"]
    async with make_client(lambda request: tags_page(["b", "a", "b"])) as client:
        assert await client.list_tags("team/web") == ["b", "a"]


@pytest.mark.parametrize(
    ("pages", "listed"),
    [
        ({None: tags_page(["a", "b", "c"])}, None),
        ({None: tags_page(["a", "b"], "/v2/team/web/tags/list?last=b"), "b": tags_page(["c"])}, None),
        ({None: tags_page(["a", "b"], "/v2/team/web/tags/list?last=b"), "b": tags_page(["b", "a"])}, ["a", "b"]),
        ({None: tags_page(["a", "b", "b", "a"])}, ["a", "b"]),
    ],
)
async def test_the_number_of_distinct_tags_is_bounded(pages: dict[str | None, httpx.Response], listed: Any) -> None:
    async with make_client(lambda request: pages[request.url.params.get("last")], max_tags=2) as client:
        if listed is not None:
            assert await client.list_tags("team/web") == listed
            return
        with pytest.raises(RegistryError, match="more than 2 tags"):
            await client.list_tags("team/web")


async def test_a_page_read_again_byte_for_byte_gives_the_same_tags_in_a_new_list() -> None:
    bodies = [b'{"tags": ["1.0", "1.1"]}', b'{"tags": ["1.0", "1.1"]}', b'{"tags": ["1.0", "1.2"]}']
    answers = iter(bodies)
    async with make_client(lambda request: httpx.Response(200, content=next(answers))) as client:
        first = await client.list_tags("team/web")
        first.append("changed by the caller")
        again = await client.list_tags("team/web")
        changed = await client.list_tags("team/web")
    assert again == ["1.0", "1.1"] and again[0] is first[0]  # not decoded again
    assert changed == ["1.0", "1.2"]


async def test_remembered_pages_still_list_each_tag_once_and_refuse_what_they_refused() -> None:
    pages = {
        None: tags_page(["b", "a", "b"], "/v2/team/web/tags/list?n=2&last=b"),
        "b": tags_page(["a", "c"]),
    }

    def handler(request: httpx.Request) -> httpx.Response:
        return pages[request.url.params.get("last")]

    async with make_client(handler) as client:
        assert await client.list_tags("team/web") == ["b", "a", "c"]
        assert await client.list_tags("team/web") == ["b", "a", "c"]
    async with make_client(lambda request: tags_page(["a", "a"])) as client:
        assert await client.list_tags("team/web") == ["a"]
        assert await client.list_tags("team/web") == ["a"]
    async with make_client(lambda request: tags_page(["a", "b", "c"]), max_tags=2) as client:
        for _ in range(2):
            with pytest.raises(RegistryError, match="more than 2 tags"):
                await client.list_tags("team/web")


async def test_pages_beyond_the_bound_are_read_every_time() -> None:
    async with make_client(lambda request: tags_page(["1.0"]), remembered_page_bytes=0) as client:
        first = await client.list_tags("team/web")
        again = await client.list_tags("team/web")
    assert first == again == ["1.0"] and again[0] is not first[0]


@pytest.mark.parametrize(
    "link", ["https://evil.example/v2/team/web/tags/list?last=b", "http://registry.example/v2/team/web/tags/list"]
)
async def test_next_page_on_another_host_or_scheme_is_refused(link: str) -> None:
    followed: list[httpx.URL] = []

    def handler(request: httpx.Request) -> httpx.Response:
        followed.append(request.url)
        return tags_page(["a"], link)

    async with make_client(handler) as client:
        with pytest.raises(RegistryError, match="another host or scheme"):
            await client.list_tags("team/web")
    assert len(followed) == 1


async def test_pagination_loop_is_detected() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.params.get("last") == "b":
            return tags_page(["c"], "/v2/team/web/tags/list?n=1000")
        return tags_page(["a", "b"], "/v2/team/web/tags/list?n=1000&last=b")

    async with make_client(handler) as client:
        with pytest.raises(RegistryError, match="loops back"):
            await client.list_tags("team/web")


async def test_number_of_pages_is_bounded() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        last = int(request.url.params.get("last", "0"))
        return tags_page([str(last + 1)], f"/v2/team/web/tags/list?last={last + 1}")

    async with make_client(handler, max_pages=5) as client:
        with pytest.raises(RegistryError, match="more than 5 pages"):
            await client.list_tags("team/web")


async def test_null_tags_means_no_tags() -> None:
    async with make_client(lambda request: tags_page(None)) as client:
        assert await client.list_tags("team/web") == []


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"<html>oops</html>", "not valid JSON"),
        (b"[]", "expected a JSON object"),
        (b'{"name": "team/web"}', "no 'tags' field"),
        (b'{"tags": [1, 2]}', "not a list of strings"),
    ],
)
async def test_malformed_tag_lists_are_registry_errors(body: bytes, message: str) -> None:
    async with make_client(lambda request: httpx.Response(200, content=body)) as client:
        with pytest.raises(RegistryError, match=message) as caught:
            await client.list_tags("team/web")
    assert type(caught.value) is RegistryError


async def test_a_cookie_the_registry_sets_is_sent_back_with_every_later_request() -> None:
    sent: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request.headers.get("cookie"))
        if request.url.path == "/v2/":
            return httpx.Response(200, json={}, headers={"Set-Cookie": "lb=node-1; Path=/"})
        return tags_page(["1.0"])

    async with make_client(handler) as client:
        await client.ping()
        await client.list_tags("team/web")
        await client.list_tags("team/web")
    assert sent == [None, "lb=node-1", "lb=node-1"]


def test_credentials_in_the_base_url_are_refused() -> None:
    with pytest.raises(RegistryError, match="pass them as credentials") as caught:
        make_client(lambda request: httpx.Response(200), "https://bob:pw@registry.example")
    assert "pw" not in str(caught.value)


async def test_invalid_repository_name_is_refused_before_any_request() -> None:
    async with make_client(lambda request: pytest.fail("no request expected")) as client:
        with pytest.raises(RegistryError, match="invalid repository"):
            await client.list_tags("../etc")


# --- error mapping ----------------------------------------------------------------------------------


async def test_404_name_unknown_is_not_found_with_codes() -> None:
    body = {"errors": [{"code": "NAME_UNKNOWN", "message": "repository name not known to registry"}]}
    async with make_client(lambda request: httpx.Response(404, json=body)) as client:
        with pytest.raises(RegistryNotFoundError) as caught:
            await client.list_tags("team/gone")
    error = caught.value
    assert error.codes == ("NAME_UNKNOWN",)
    assert error.status == 404
    assert error.url == f"{BASE}/v2/team/gone/tags/list?n=1000"
    assert "repository name not known" in str(error)


async def test_refused_credentials_are_an_auth_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        body = {"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]}
        return httpx.Response(401, json=body, headers={"WWW-Authenticate": 'Basic realm="r"'})

    async with make_client(handler, credentials=Credentials("u", "p")) as client:
        with pytest.raises(RegistryAuthError) as caught:
            await client.list_tags("team/web")
    assert caught.value.codes == ("UNAUTHORIZED",)


async def test_403_is_an_auth_error() -> None:
    async with make_client(lambda request: httpx.Response(403, json={"errors": [{"code": "DENIED"}]})) as client:
        with pytest.raises(RegistryAuthError):
            await client.ping()


async def test_503_after_the_retries_is_unavailable() -> None:
    sleeps = Sleeps()
    calls: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(503, text="busy")

    async with make_client(handler, sleep=sleeps) as client:
        with pytest.raises(RegistryUnavailableError) as caught:
            await client.list_tags("team/web")
    assert caught.value.status == 503
    assert len(calls) == 3
    assert sleeps.calls == [0.1, 0.2]


async def test_429_with_retry_after_waits_then_succeeds() -> None:
    sleeps = Sleeps()
    answers = [httpx.Response(429, headers={"Retry-After": "2"}), tags_page(["1.0"])]
    async with make_client(lambda request: answers.pop(0), sleep=sleeps) as client:
        assert await client.list_tags("team/web") == ["1.0"]
    assert sleeps.calls and min(sleeps.calls) >= 2


async def test_timeouts_are_unavailable() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    async with make_client(handler) as client:
        with pytest.raises(RegistryUnavailableError, match="timed out") as caught:
            await client.get_manifest("team/web", "1.0")
    assert isinstance(caught.value.__cause__, httpx.ReadTimeout)


async def test_connection_errors_are_unavailable() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    async with make_client(handler) as client:
        with pytest.raises(RegistryUnavailableError, match="connection refused"):
            await client.ping()


async def test_error_urls_are_redacted() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "storage.example":
            return httpx.Response(500)
        return httpx.Response(307, headers={"Location": "https://storage.example/b?X-Amz-Signature=secret"})

    async with make_client(handler) as client:
        with pytest.raises(RegistryError) as caught:
            await client.get_config_blob("team/web", digest_of(b"{}"))
    assert caught.value.url == "https://storage.example/b?X-Amz-Signature=REDACTED"
    assert "secret" not in str(caught.value)


# --- manifests and blobs ----------------------------------------------------------------------------

MANIFEST = json.dumps(
    {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": {"digest": "sha256:" + "a" * 64}, "layers": []}
).encode()
INDEX = json.dumps(
    {
        "schemaVersion": 2,
        "manifests": [
            {
                "digest": "sha256:" + "b" * 64,
                "size": 10,
                "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"},
            }
        ],
    }
).encode()


async def test_get_manifest_asks_for_all_four_types_and_uses_the_registry_digest() -> None:
    accept: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        accept.append(request.headers["accept"])
        headers = {"Content-Type": OCI_MANIFEST, "Docker-Content-Digest": digest_of(MANIFEST)}
        return httpx.Response(200, content=MANIFEST, headers=headers)

    async with make_client(handler) as client:
        manifest = await client.get_manifest("team/web", "1.0")
    assert {t.strip() for t in accept[0].split(",")} == {DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_MANIFEST, OCI_INDEX}
    assert manifest.media_type == OCI_MANIFEST
    assert manifest.digest == digest_of(MANIFEST)
    assert manifest.config_digest == "sha256:" + "a" * 64
    assert not manifest.is_index


async def test_manifest_digest_is_computed_when_the_header_is_missing_and_index_children_are_read() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=INDEX, headers={"Content-Type": DOCKER_MANIFEST_LIST})

    async with make_client(handler) as client:
        index = await client.get_manifest("team/web", "1.0")
    assert index.digest == digest_of(INDEX)
    assert index.is_index
    assert [(m.digest[-4:], m.platform) for m in index.manifests] == [("bbbb", "linux/arm64/v8")]


async def test_manifest_digest_mismatch_is_an_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        headers = {"Content-Type": OCI_MANIFEST, "Docker-Content-Digest": "sha256:" + "0" * 64}
        return httpx.Response(200, content=MANIFEST, headers=headers)

    async with make_client(handler) as client:
        with pytest.raises(RegistryError, match="digest mismatch"):
            await client.get_manifest("team/web", "1.0")


async def test_manifest_by_digest_must_match_the_reference() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=MANIFEST, headers={"Content-Type": OCI_MANIFEST})

    async with make_client(handler) as client:
        assert (await client.get_manifest("team/web", digest_of(MANIFEST))).digest == digest_of(MANIFEST)
        with pytest.raises(RegistryError, match="digest mismatch"):
            await client.get_manifest("team/web", "sha256:" + "1" * 64)


@pytest.mark.parametrize(
    ("content_type", "body", "message"),
    [
        ("application/vnd.docker.distribution.manifest.v1+prettyjws", b'{"schemaVersion": 1}', "unsupported"),
        (OCI_MANIFEST, b'{"schemaVersion": 2, "layers": []}', "config.digest"),
        (OCI_INDEX, b'{"manifests": [{"size": 1}]}', "entry 0 has no 'digest'"),
    ],
)
async def test_unexpected_manifests_are_registry_errors(content_type: str, body: bytes, message: str) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=body, headers={"Content-Type": content_type})

    async with make_client(handler) as client:
        with pytest.raises(RegistryError, match=message):
            await client.get_manifest("team/web", "1.0")


async def test_head_digest_reads_the_header_and_falls_back_to_get() -> None:
    methods: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        methods.append(request.method)
        if request.url.path.endswith("/1.0"):
            return httpx.Response(200, headers={"Docker-Content-Digest": digest_of(MANIFEST)})
        return httpx.Response(200, content=MANIFEST, headers={"Content-Type": OCI_MANIFEST})

    async with make_client(handler) as client:
        assert await client.head_digest("team/web", "1.0") == digest_of(MANIFEST)
        assert await client.head_digest("team/web", "2.0") == digest_of(MANIFEST)
    assert methods == ["HEAD", "HEAD", "GET"]


async def test_config_blob_follows_a_redirect_without_credentials_and_is_verified() -> None:
    config = json.dumps({"created": "2024-05-01T10:00:00Z", "architecture": "amd64"}).encode()
    storage_auth: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "storage.example":
            storage_auth.append(request.headers.get("authorization"))
            return httpx.Response(200, content=config)
        if request.headers.get("authorization") is None:
            return httpx.Response(401, headers={"WWW-Authenticate": 'Basic realm="r"'})
        return httpx.Response(307, headers={"Location": "https://storage.example/blob?sig=1"})

    async with make_client(handler, credentials=Credentials("u", "p")) as client:
        blob = await client.get_config_blob("team/web", digest_of(config))
    assert blob["created"] == "2024-05-01T10:00:00Z"
    assert storage_auth == [None]


async def test_config_blob_with_the_wrong_content_is_an_error() -> None:
    async with make_client(lambda request: httpx.Response(200, content=b'{"x": 1}')) as client:
        with pytest.raises(RegistryError, match="digest mismatch"):
            await client.get_config_blob("team/web", digest_of(b'{"x": 2}'))


async def test_oversized_bodies_are_refused() -> None:
    huge = b'{"tags": [' + b'"t",' * 2_000_000 + b'"t"]}'
    async with make_client(lambda request: httpx.Response(200, content=huge)) as client:
        with pytest.raises(RegistryError, match="larger than"):
            await client.get_manifest("team/web", "1.0")


# --- loopback HTTP fallback -------------------------------------------------------------------------


def tls_failure(request: httpx.Request) -> httpx.ConnectError:
    error = httpx.ConnectError("[SSL: WRONG_VERSION_NUMBER] wrong version number", request=request)
    error.__cause__ = ssl.SSLError("wrong version number")
    return error


async def test_loopback_falls_back_to_http_once_and_remembers_it() -> None:
    schemes: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        schemes.append(request.url.scheme)
        if request.url.scheme == "https":
            raise tls_failure(request)
        return tags_page(["1.0"])

    memory: dict[str, str] = {}
    async with make_client(handler, "https://127.0.0.1:5000", scheme_memory=memory) as client:
        assert await client.list_tags("team/web") == ["1.0"]
        assert await client.list_tags("team/web") == ["1.0"]
        assert client.base_url == "http://127.0.0.1:5000"
    assert schemes == ["https", "http", "http"]
    assert memory == {"127.0.0.1:5000": "http"}
    async with make_client(handler, "https://127.0.0.1:5000", scheme_memory=memory) as again:
        await again.ping()
    assert schemes[-1] == "http"


async def test_no_http_fallback_for_other_hosts() -> None:
    schemes: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        schemes.append(request.url.scheme)
        raise tls_failure(request)

    async with make_client(handler, "https://registry.example") as client:
        with pytest.raises(RegistryUnavailableError):
            await client.ping()
    assert schemes == ["https"]


async def test_no_downgrade_once_https_worked() -> None:
    answers: list[httpx.Response | None] = [httpx.Response(200, json={}), None]
    schemes: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        schemes.append(request.url.scheme)
        answer = answers.pop(0)
        if answer is None:
            raise tls_failure(request)
        return answer

    async with make_client(handler, "https://localhost:5000") as client:
        await client.ping()
        with pytest.raises(RegistryUnavailableError):
            await client.ping()
    assert schemes == ["https", "https"]
