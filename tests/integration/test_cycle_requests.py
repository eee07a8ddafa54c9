"""The fewest registry requests a cycle can make, counted at a proxy in front of the real registry.

A cycle lists each distinct repository once, however many Applications and images use it; a second
cycle with nothing new, in the same service (the same tag source), fetches no manifest and no config
blob again and pushes nothing.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import pytest

from image_updater.service.cycle import CycleDeps, CycleResult, Status, run_cycle
from image_updater.service.wiring import RegistryTags
from image_updater.settings import RegistrySettings
from tests.conftest import ProxyFactory
from tests.harness.gitserver import GitHttpServer
from tests.harness.registry import RegistryServer, push_image
from tests.integration.writeback_kit import cycle_logger, git_settings, make_app

pytestmark = pytest.mark.integration

BASE = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)


def kustomization(entries: dict[str, str]) -> str:
    lines = "".join(f"  - name: {name}\n    newTag: {tag}\n" for name, tag in entries.items())
    return f"images:\n{lines}"


def test_one_listing_per_repository_and_a_second_cycle_fetches_no_manifest(
    registry_anon: RegistryServer, git_server: GitHttpServer, tags_proxy: ProxyFactory, tmp_path: Path
) -> None:
    host = registry_anon.host
    for index, tag in enumerate(("1.0.0", "1.1.0", "2.0.0")):
        for repo in ("creq/web", "creq/api"):
            push_image(registry_anon, repo, tag, created=BASE + dt.timedelta(days=index))
    for index, tag in enumerate(("b1", "b2", "b3")):
        push_image(registry_anon, "creq/built", tag, created=BASE + dt.timedelta(days=index))
    web, api, built = (f"{host}/creq/{name}" for name in ("web", "api", "built"))
    files = {
        "a1/kustomization.yaml": kustomization({web: "1.0.0", api: "1.0.0"}),
        "a2/kustomization.yaml": kustomization({web: "1.0.0"}),
        "a3/kustomization.yaml": kustomization({web: "1.1.0", api: "2.0.0"}),
        "a4/kustomization.yaml": kustomization({api: "1.0.0"}),
        "b1/kustomization.yaml": kustomization({built: "b1"}),
        "b2/kustomization.yaml": kustomization({built: "b1"}),
    }
    url = git_server.create_repo("cycle-requests", files)
    apps = [
        make_app("a1", url, "a1", f"w={web}:1.x, a={api}", target="kustomization"),
        make_app("a2", url, "a2", f"w={web}:~1.1", target="kustomization"),
        make_app("a3", url, "a3", f"w={web}, a={api}", target="kustomization"),
        make_app("a4", url, "a4", f"a={api}:^1", target="kustomization"),
        make_app("b1", url, "b1", f"b={built}", target="kustomization", b__update_strategy="newest-build"),
        make_app("b2", url, "b2", f"b={built}", target="kustomization", b__update_strategy="newest-build"),
    ]
    proxy = tags_proxy(registry_anon)
    tags = RegistryTags([RegistrySettings(name="local", prefix=host, api_url=proxy.url)])
    deps = CycleDeps(tags=tags, git=git_settings(git_server), cache_dir=tmp_path / "cache", log=cycle_logger())

    async def cycles() -> list[tuple[CycleResult, dict[str, int]]]:
        done = []
        for _ in range(2):
            proxy.reset_counts()
            result = await run_cycle(apps, deps)
            done.append((result, proxy.counts))
        await tags.aclose()
        return done

    (first, counted), (second, again) = asyncio.run(cycles())
    assert not first.failed, [str(e) for a in first.apps for e in a.errors()]
    assert [a.status for a in first.apps] == [Status.UPDATED] * 6
    assert len(first.commits) == 1
    # three repositories: three listings (and one ping), shared by six Applications and eight images
    assert counted["tags"] == 3 and counted["ping"] == 1
    # newest-build: the manifest of each of the three tags once, and their configs, for two Applications
    assert counted["manifest"] == 3 and counted["blob"] == 3
    assert sum(counted.values()) == 10

    assert not second.failed and not second.commits
    assert [a.status for a in second.apps] == [Status.UNCHANGED] * 6
    assert again["tags"] == 3
    assert again["manifest"] == 0 and again["blob"] == 0 and again["ping"] == 0
    assert git_server.commit_count("cycle-requests") == 2
