"""The registry client against the real distribution server: pagination, token reuse, errors."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from image_updater.adapters.registry import Credentials, RegistryClient
from image_updater.errors import RegistryAuthError, RegistryNotFoundError
from tests.conftest import ProxyFactory
from tests.harness.registry import RegistryServer, push_tags

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def big_repo(registry_anon: RegistryServer) -> str:
    tags = {f"1.0.{i}": datetime(2026, 1, 1, tzinfo=UTC) for i in range(300)}
    push_tags(registry_anon, "real/big", tags)
    return "real/big"


def test_300_tags_read_whole_over_link_pages_of_50(
    registry_anon: RegistryServer, big_repo: str, tags_proxy: ProxyFactory
) -> None:
    proxy = tags_proxy(registry_anon, page_size=50)

    async def go() -> list[str]:
        async with RegistryClient(proxy.url, registry=proxy.host) as client:
            return await client.list_tags(big_repo)

    tags = asyncio.run(go())
    assert len(tags) == 300 and len(set(tags)) == 300
    assert set(tags) == {f"1.0.{i}" for i in range(300)}
    assert proxy.count("tags") == 6


def test_token_is_fetched_once_and_reused(registry_token: RegistryServer) -> None:
    push_tags(registry_token, "real/token-reuse", {"1.0.0": datetime(2026, 1, 1, tzinfo=UTC)})
    tokens = registry_token.token_server
    assert tokens is not None

    async def go() -> tuple[list[str], list[str]]:
        creds = Credentials(registry_token.username, registry_token.password or "")
        async with RegistryClient(registry_token.url, registry=registry_token.host, credentials=creds) as client:
            await client.ping()
            before = tokens.request_count
            first = await client.list_tags("real/token-reuse")
            second = await client.list_tags("real/token-reuse")
            assert tokens.request_count - before == 1  # one token for the repository scope, reused
            return first, second

    first, second = asyncio.run(go())
    assert first == second == ["1.0.0"]


def test_wrong_password_is_an_auth_error_naming_the_registry(registry_basic: RegistryServer) -> None:
    async def go() -> None:
        creds = Credentials(registry_basic.username, "not-the-password")
        async with RegistryClient(registry_basic.url, registry=registry_basic.host, credentials=creds) as client:
            await client.list_tags("real/anything")

    with pytest.raises(RegistryAuthError) as info:
        asyncio.run(go())
    assert info.value.status == 401 and registry_basic.host in str(info.value)
    assert "not-the-password" not in str(info.value)


def test_unknown_repository_is_not_found_with_the_registry_code(registry_anon: RegistryServer) -> None:
    async def go() -> None:
        async with RegistryClient(registry_anon.url, registry=registry_anon.host) as client:
            await client.list_tags("real/never-pushed")

    with pytest.raises(RegistryNotFoundError) as info:
        asyncio.run(go())
    assert "NAME_UNKNOWN" in info.value.codes
