"""RegistryPool over httpx.MockTransport: endpoints, credentials, metadata fetching and its cache."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from image_updater.adapters.registry.manifest import DOCKER_MANIFEST, OCI_INDEX
from image_updater.adapters.registry.metadata import MetadataCache, parse_created
from image_updater.adapters.registry.pool import (
    RegistryPool,
    check_registries,
    load_registries_conf,
    resolve_endpoint,
)
from image_updater.adapters.registry.transport import RetryPolicy
from image_updater.config import RegistrySettings
from image_updater.errors import ConfigError, RegistryUnavailableError
from image_updater.model.ref import parse_image_name
from image_updater.model.spec import ImageSpec
from image_updater.selection.base import TagInfo
from image_updater.selection.platforms import Platform

HOST = "registry.example"
AMD64 = Platform("linux", "amd64")


def digest_of(body: bytes) -> str:
    return "sha256:" + hashlib.sha256(body).hexdigest()


@dataclass
class FakeRegistry:
    """A registry in memory: tags -> manifests, blobs by digest; records every request."""

    manifests: dict[str, tuple[bytes, str]] = field(default_factory=dict)  # digest -> (body, media type)
    tags: dict[str, str] = field(default_factory=dict)  # tag -> digest
    blobs: dict[str, bytes] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)
    auth: list[str | None] = field(default_factory=list)
    fail: Callable[[httpx.Request], httpx.Response | None] | None = None
    in_flight: int = 0
    most_in_flight: int = 0

    def image(self, tag: str | None, created: str, platform: str = "linux/amd64") -> str:
        os_name, arch, *variant = platform.split("/")
        config = json.dumps({"created": created, "os": os_name, "architecture": arch, "variant": "".join(variant)})
        config_digest = digest_of(config.encode())
        self.blobs[config_digest] = config.encode()
        body = json.dumps(
            {"schemaVersion": 2, "mediaType": DOCKER_MANIFEST, "config": {"digest": config_digest}, "layers": []}
        ).encode()
        digest = digest_of(body)
        self.manifests[digest] = (body, DOCKER_MANIFEST)
        if tag:
            self.tags[tag] = digest
        return digest

    def index(self, tag: str, children: dict[str, str]) -> str:
        entries = []
        for platform, child in children.items():
            os_name, arch, *variant = platform.split("/")
            plat = {"os": os_name, "architecture": arch} | ({"variant": variant[0]} if variant else {})
            entries.append({"mediaType": DOCKER_MANIFEST, "digest": child, "platform": plat})
        body = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}).encode()
        digest = digest_of(body)
        self.manifests[digest] = (body, OCI_INDEX)
        self.tags[tag] = digest
        return digest

    def count(self, method: str, kind: str) -> int:
        return sum(1 for m, path in self.requests if m == method and f"/{kind}/" in path)

    async def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        self.requests.append((request.method, path))
        self.auth.append(request.headers.get("authorization"))
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await asyncio.sleep(0)  # let other requests start, to observe concurrency
            if self.fail is not None and (answer := self.fail(request)) is not None:
                return answer
            if path == "/v2/":
                return httpx.Response(200)
            if path.endswith("/tags/list"):
                return httpx.Response(200, json={"name": "x", "tags": list(self.tags)})
            if "/manifests/" in path:
                ref = path.rsplit("/", 1)[1]
                digest = self.tags.get(ref, ref)
                if digest not in self.manifests:
                    return httpx.Response(404, json={"errors": [{"code": "MANIFEST_UNKNOWN"}]})
                body, media = self.manifests[digest]
                headers = {"Docker-Content-Digest": digest, "Content-Type": media}
                return httpx.Response(200, headers=headers, content=b"" if request.method == "HEAD" else body)
            if "/blobs/" in path:
                blob = self.blobs.get(path.rsplit("/", 1)[1])
                return httpx.Response(200, content=blob) if blob else httpx.Response(404)
            return httpx.Response(404)
        finally:
            self.in_flight -= 1


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def pool_for(
    registry: FakeRegistry,
    registries: list[RegistrySettings] | None = None,
    **kwargs: Any,
) -> RegistryPool:
    options = {
        "transport": httpx.MockTransport(registry.handle),
        "retry": RetryPolicy(max_retries=0, base_backoff_s=0.0, jitter=0.0),
    }
    kwargs.setdefault("default_platforms", [AMD64])
    return RegistryPool(registries or [], client_options=options, **kwargs)


def spec(name: str = f"{HOST}/team/app", **fields: Any) -> ImageSpec:
    return ImageSpec(name=parse_image_name(name), written_name=name, **fields)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


# -- endpoints ----------------------------------------------------------------------------------------


def test_longest_prefix_wins_and_hub_aliases_match() -> None:
    registries = [
        RegistrySettings(name="hub", prefix="index.docker.io", api_url="https://mirror.example"),
        RegistrySettings(name="team", prefix="docker.io/team", api_url="https://team.example"),
    ]
    assert resolve_endpoint(spec("nginx"), registries).base_url == "https://mirror.example"
    assert resolve_endpoint(spec("team/app"), registries).entry.name == "team"  # type: ignore[union-attr]
    assert resolve_endpoint(spec("teamx/app"), registries).entry.name == "hub"  # type: ignore[union-attr]
    assert resolve_endpoint(spec("ghcr.io/o/a"), registries).entry is None


def test_default_registry_takes_names_without_a_registry() -> None:
    registries = [RegistrySettings(name="quay", prefix="quay.io", api_url="https://quay.io", default=True)]
    endpoint = resolve_endpoint(spec("argoproj/argocd"), registries)
    assert str(endpoint.name) == "quay.io/argoproj/argocd" and endpoint.base_url == "https://quay.io"
    assert str(resolve_endpoint(spec("ghcr.io/o/a"), registries).name) == "ghcr.io/o/a"


def test_the_pool_works_an_endpoint_out_once_per_name_as_written() -> None:
    registries = [RegistrySettings(name="quay", prefix="quay.io", api_url="https://quay.io", default=True)]
    pool = RegistryPool(registries)
    written = spec("argoproj/argocd")  # no registry written: the default one
    named = ImageSpec(name=written.name, written_name="docker.io/argoproj/argocd")
    for _ in range(2):
        assert pool.endpoint(written) == resolve_endpoint(written, registries)
        assert str(pool.endpoint(written).name) == "quay.io/argoproj/argocd"
        assert pool.endpoint(named) == resolve_endpoint(named, registries)
        assert pool.endpoint(named).name.registry == "docker.io"
        assert pool.endpoint(named.name) == resolve_endpoint(named.name, registries)
    assert pool.endpoint(written) is pool.endpoint(written)


def test_defaultns_applies_to_single_component_names() -> None:
    registries = [RegistrySettings(name="r", prefix="r.example:5000", defaultns="base")]
    assert resolve_endpoint(spec("r.example:5000/app"), registries).name.repository == "base/app"
    assert resolve_endpoint(spec("r.example:5000/x/app"), registries).name.repository == "x/app"
    assert resolve_endpoint(spec("r.example:5000/app"), registries).base_url == "https://r.example:5000"


def test_docker_hub_v1_api_url_means_the_v2_api() -> None:
    registries = [RegistrySettings(name="hub", prefix="docker.io", api_url="https://index.docker.io/v1/")]
    assert resolve_endpoint(spec("nginx"), registries).base_url == "https://registry-1.docker.io"


@pytest.mark.parametrize(
    ("registries", "message"),
    [
        ([RegistrySettings(prefix="a.io"), RegistrySettings(prefix="A.io/")], "used by an earlier entry"),
        ([RegistrySettings(prefix="a.io", default=True), RegistrySettings(prefix="b.io", default=True)], "only one"),
    ],
)
def test_registry_list_rules(registries: list[RegistrySettings], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        check_registries(registries)


def test_aiu_registries_conf_is_read_unchanged(tmp_path: Path) -> None:
    conf = tmp_path / "registries.conf"
    conf.write_text(
        "registries:\n"
        "- name: Docker Hub\n  prefix: docker.io\n  api_url: https://registry-1.docker.io\n"
        "  ping: yes\n  credentials: env:HUB\n  credsexpire: 5h\n  defaultns: library\n  default: true\n"
        "  tagsortmode: latest-first\n  limit: 10\n"
        "- name: RedHat Quay\n  api_url: https://quay.io\n  prefix: quay.io\n  insecure: yes\n"
    )
    hub, quay = load_registries_conf(conf)
    assert (hub.ping, hub.tagsortmode, hub.credsexpire, hub.limit, hub.default) == (
        True,
        "latest-first",
        18000,
        10,
        True,
    )
    assert quay.insecure is True and quay.tagsortmode == "none" and quay.defaultns == ""


def test_unknown_tag_sort_mode_names_the_key(tmp_path: Path) -> None:
    conf = tmp_path / "registries.conf"
    conf.write_text("registries:\n- name: r\n  prefix: r.io\n  tagsortmode: newest\n")
    with pytest.raises(ConfigError, match=r"tagsortmode.*line 4"):
        load_registries_conf(conf)


# -- credentials --------------------------------------------------------------------------------------


def docker_config(entries: dict[str, dict[str, str]]) -> str:
    return json.dumps({"auths": entries})


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_pull_secret_overrides_the_registry_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("IU_TEST_REGISTRY_CREDS", "registry:one")
    config = tmp_path / "config.json"
    config.write_text(docker_config({HOST: {"auth": b64("image:two")}}))
    registry = FakeRegistry()
    registry.image("1.0", "2026-01-01T00:00:00Z")
    entry = RegistrySettings(name="r", prefix=HOST, credentials="env:IU_TEST_REGISTRY_CREDS")

    async def go() -> None:
        async with pool_for(registry, [entry]) as pool:
            await pool.list_tags(spec())
            await pool.list_tags(spec(pull_secret=f"dockerconfig:{config}"))

    # the fake registry never asks for auth, so send the credentials preemptively via a 401 first
    def challenge(request: httpx.Request) -> httpx.Response | None:
        if "authorization" not in request.headers:
            return httpx.Response(401, headers={"WWW-Authenticate": 'Basic realm="r"'})
        return None

    registry.fail = challenge
    run(go())
    used = {base64.b64decode(a.split()[1]).decode() for a in registry.auth if a}
    assert used == {"registry:one", "image:two"}


# -- metadata -----------------------------------------------------------------------------------------


def test_newest_build_fetches_each_tag_once_then_nothing_then_heads() -> None:
    registry = FakeRegistry()
    for day in range(1, 6):
        registry.image(f"t{day}", f"2026-01-0{day}T00:00:00.123456789Z")
    clock = Clock()
    cache = MetadataCache(clock=clock, revalidate_after=60)
    image = spec(strategy="newest-build")
    tags = [TagInfo(t) for t in registry.tags]

    def cycle() -> list[TagInfo]:
        async def go() -> list[TagInfo]:
            async with pool_for(registry, cache=cache, clock=clock) as pool:
                return await pool.with_metadata(image, tags)

        registry.requests.clear()
        return run(go())

    first = cycle()
    assert [i.created.day for i in first] == [1, 2, 3, 4, 5]  # type: ignore[union-attr]
    assert first[0].created.microsecond == 123456  # type: ignore[union-attr]
    assert (registry.count("GET", "manifests"), registry.count("GET", "blobs")) == (5, 5)
    cycle()
    assert (
        registry.count("GET", "manifests") + registry.count("HEAD", "manifests") + registry.count("GET", "blobs") == 0
    )
    clock.now = 61
    cycle()
    assert registry.count("HEAD", "manifests") == 5 and registry.count("GET", "manifests") == 0
    assert registry.count("GET", "blobs") == 0


def test_requests_are_bounded_and_one_config_is_fetched_once() -> None:
    registry = FakeRegistry()
    shared = registry.image("a0", "2026-01-01T00:00:00Z")
    for i in range(1, 40):
        registry.tags[f"a{i}"] = shared  # forty tags of one image: one config blob
    image = spec(strategy="newest-build")

    async def go() -> list[TagInfo]:
        async with pool_for(registry, metadata_concurrency=3) as pool:
            return await pool.with_metadata(image, [TagInfo(t) for t in registry.tags])

    infos = run(go())
    assert len({i.digest for i in infos}) == 1
    assert registry.count("GET", "blobs") == 1
    assert registry.most_in_flight <= 3 + 1  # the metadata bound, plus the ping


def test_index_children_are_filtered_by_platform() -> None:
    registry = FakeRegistry()
    amd = registry.image(None, "2026-01-02T00:00:00Z", "linux/amd64")
    arm = registry.image(None, "2026-01-09T00:00:00Z", "linux/arm64/v8")
    registry.index("multi", {"linux/amd64": amd, "linux/arm64/v8": arm})
    registry.index("armonly", {"linux/arm64/v8": arm})

    def fill(platforms: tuple[str, ...]) -> dict[str, TagInfo]:
        async def go() -> list[TagInfo]:
            async with pool_for(registry) as pool:
                image = spec(strategy="newest-build", platforms=platforms)
                return await pool.with_metadata(image, [TagInfo("multi"), TagInfo("armonly")])

        return {i.tag: i for i in run(go())}

    default = fill(())  # the pool's default platform: linux/amd64
    assert default["multi"].created.day == 2  # type: ignore[union-attr]
    assert default["armonly"].problem == "no image for linux/amd64 in the index (it has linux/arm64/v8)"
    arm64 = fill(("linux/arm64",))  # os/arch admits the v8 variant
    assert arm64["multi"].created.day == 9 and arm64["armonly"].problem is None  # type: ignore[union-attr]


def test_digest_strategy_always_heads_and_never_fetches_configs_of_an_index() -> None:
    registry = FakeRegistry()
    amd = registry.image(None, "2026-01-02T00:00:00Z")
    index = registry.index("latest", {"linux/amd64": amd})
    cache = MetadataCache()
    image = spec("registry.example/team/app", strategy="digest", constraint="latest")

    def fill() -> TagInfo:
        async def go() -> list[TagInfo]:
            async with pool_for(registry, cache=cache) as pool:
                return await pool.with_metadata(image, [TagInfo("latest")])

        registry.requests.clear()
        return run(go())[0]

    first = fill()
    assert first.digest == index and first.created is None
    assert (registry.count("GET", "manifests"), registry.count("GET", "blobs")) == (1, 0)
    again = fill()
    assert again.digest == index and registry.count("HEAD", "manifests") == 1
    assert registry.count("GET", "manifests") == 0


def test_a_vanished_tag_is_a_problem_but_an_unavailable_registry_fails() -> None:
    registry = FakeRegistry()
    registry.image("kept", "2026-01-01T00:00:00Z")
    image = spec(strategy="newest-build")

    async def go(tags: list[str]) -> list[TagInfo]:
        async with pool_for(registry) as pool:
            return await pool.with_metadata(image, [TagInfo(t) for t in tags])

    infos = run(go(["kept", "gone"]))
    assert infos[1].problem == "the registry no longer has this tag" and infos[0].problem is None

    registry.fail = lambda r: httpx.Response(503) if "/manifests/" in r.url.path else None
    with pytest.raises(RegistryUnavailableError):
        run(go(["kept"]))


def test_tag_sort_mode_dates_tags_by_listing_order_without_requests() -> None:
    registry = FakeRegistry()
    entry = RegistrySettings(name="r", prefix=HOST, tagsortmode="latest-first")

    async def go() -> list[TagInfo]:
        async with pool_for(registry, [entry]) as pool:
            return await pool.with_metadata(spec(strategy="newest-build"), [TagInfo("new"), TagInfo("old")])

    new, old = run(go())
    assert new.created > old.created  # type: ignore[operator]
    assert registry.requests == []


def test_a_webhook_can_forget_a_re_pushed_tag() -> None:
    cache = MetadataCache()
    cache.remember_digest(("r.io", "a/b", "latest"), "sha256:" + "1" * 64)
    cache.remember_digest(("r.io", "a/b", "1.0"), "sha256:" + "2" * 64)
    assert cache.forget_tag("r.io", "a/b", "latest") == 1
    assert cache.known_digest(("r.io", "a/b", "latest")) is None
    assert cache.known_digest(("r.io", "a/b", "1.0")) is not None


@pytest.mark.parametrize(
    ("text", "iso"),
    [
        ("2026-01-02T03:04:05Z", "2026-01-02T03:04:05+00:00"),
        ("2026-01-02T03:04:05.123456789Z", "2026-01-02T03:04:05.123456+00:00"),
        ("2026-01-02T05:04:05+02:00", "2026-01-02T03:04:05+00:00"),
        ("2026-01-02T03:04:05", "2026-01-02T03:04:05+00:00"),
    ],
)
def test_created_dates_are_read_as_rfc3339(text: str, iso: str) -> None:
    assert parse_created(text).isoformat() == iso  # type: ignore[union-attr]


def test_unreadable_created_date_is_none() -> None:
    assert parse_created("yesterday") is None
