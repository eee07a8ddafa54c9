"""Bad input from the network and from the config repository, end to end with the real CLI.

- A registry that lists tags that are not valid OCI tags: they are skipped, the best valid tag is
  written, never one of them.
- A registry with 100,000 tags over ``Link`` pages (100 per page, as Quay sends them; 50 in long mode): the CLI,
  as a subprocess, lists them all and updates within a peak-memory bound above a 3-tag run.
- A target file far larger than any real one: refused with a bounded cost, the others updated.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ProxyFactory
from tests.faults.kit import Config, run_cli, scaled
from tests.harness.gitserver import GitHttpServer
from tests.harness.proxy import Fault, FaultHook, RequestInfo
from tests.harness.registry import RegistryServer
from tests.integration.scenario import application, kustomization, push_tags

pytestmark = pytest.mark.integration

CLI = Path(sys.executable).with_name("image-updater")
#: peak resident memory a 100,000-tag listing may add to a 3-tag run of the CLI
TAGS_MEMORY_BOUND_MB = 100


def test_tags_that_are_not_valid_oci_tags_are_skipped(
    registry_anon: RegistryServer,
    git_server: GitHttpServer,
    tags_proxy: ProxyFactory,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    repo = "badinput/oci"
    push_tags(registry_anon, repo, "1.0.0", "1.1.0")
    proxy = tags_proxy(registry_anon)
    invalid = ["9.9.9+build", "99.0.0 ", " 98.0.0", "97.0.0\n", "-96.0.0", ".95.0.0", "9" * 129, "94.0.0;rm", "é93"]
    body = json.dumps({"name": repo, "tags": ["1.0.0", "1.1.0", *invalid, "../../etc/passwd", "a/b"]})
    proxy.fault = lambda info: Fault(status=200, body=body) if info.kind == "tags" else None
    image = f"{proxy.host}/{repo}"
    url = git_server.create_repo("badinput-oci", {"k/kustomization.yaml": kustomization(image, "1.0.0")})
    config = Config(tmp_path, git_server, registries=[{"name": "p", "prefix": proxy.host, "api_url": proxy.url}])
    config.add_app("k.yaml", application("k", url, "k", image))

    run = run_cli(config, monkeypatch)

    assert run.code == 0, run.stderr
    assert git_server.read_file("badinput-oci", "k/kustomization.yaml") == kustomization(image, "1.1.0")


def paged_tags(repo: str, count: int, page: int) -> FaultHook:
    """Tag listings of ``repo``: ``count`` tags, ``page`` per page, linked with ``Link`` headers."""
    tags = [f"1.{i // 1000}.{i % 1000}" for i in range(count)]

    def hook(info: RequestInfo) -> Fault | None:
        if info.kind != "tags" or info.repo != repo:
            return None
        index = int(info.params.get("page", ["0"])[0])
        body = json.dumps({"name": repo, "tags": tags[index * page : (index + 1) * page]})
        headers = {"Content-Type": "application/json"}
        if (index + 1) * page < count:
            headers["Link"] = f'</v2/{repo}/tags/list?n={page}&page={index + 1}>; rel="next"'
        return Fault(status=200, headers=headers, body=body)

    return hook


def _run_measured(config: Config) -> tuple[int, float, float, str]:
    """The CLI as a subprocess: exit code, wall seconds, peak RSS in MB, stderr."""
    started = time.monotonic()
    proc = subprocess.Popen(
        [str(CLI), "run", "--once", "--config", str(config.write())],
        env=config.env(),
        stdout=subprocess.DEVNULL,
        stderr=open(config.tmp / "stderr.txt", "w"),  # noqa: SIM115 - closed with the process
    )
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    elapsed = time.monotonic() - started
    return proc.returncode, elapsed, usage.ru_maxrss / 1024, (config.tmp / "stderr.txt").read_text()


def test_a_registry_with_100000_tags_is_listed_and_used_within_a_memory_bound(
    registry_anon: RegistryServer, git_server: GitHttpServer, tags_proxy: ProxyFactory, tmp_path: Path
) -> None:
    page = scaled(100, 50)
    results = {}
    for count in (3, 100_000):
        repo = f"badinput/many{count}"
        push_tags(registry_anon, repo, "1.0.0")
        proxy = tags_proxy(registry_anon)
        proxy.fault = paged_tags(repo, count, page)
        image = f"{proxy.host}/{repo}"
        name = f"badinput-many{count}"
        url = git_server.create_repo(name, {"k/kustomization.yaml": kustomization(image, "1.0.0")})
        config = Config(
            tmp_path / str(count), git_server, registries=[{"name": "p", "prefix": proxy.host, "api_url": proxy.url}]
        )
        config.add_app("k.yaml", application("k", url, "k", image))
        code, elapsed, peak_mb, err = _run_measured(config)
        assert code == 0, err
        newest = f"1.{(count - 1) // 1000}.{(count - 1) % 1000}"
        assert git_server.read_file(name, "k/kustomization.yaml") == kustomization(image, newest)
        assert proxy.count("tags") == -(-count // page)
        results[count] = (elapsed, peak_mb)
    small_mb, (big_s, big_mb) = results[3][1], results[100_000]
    print(f"100,000 tags in pages of {page}: {big_s:.1f} s, peak RSS {big_mb:.0f} MB ({small_mb:.0f} MB for 3 tags)")
    assert big_mb - small_mb < TAGS_MEMORY_BOUND_MB
    assert big_s < 60


def test_a_huge_target_file_is_refused_with_a_bounded_cost_and_the_others_are_updated(
    registry_anon: RegistryServer, git_server: GitHttpServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    image = f"{registry_anon.host}/badinput/huge"
    push_tags(registry_anon, "badinput/huge", "1.0.0", "1.1.0")
    huge = "image:\n  name: nginx\n  tag: 1.0.0\n" + "".join(f"key{n}: {'v' * 60}\n" for n in range(300_000))
    url = git_server.create_repo(
        "badinput-huge",
        {"a/values.yaml": huge.replace("nginx", image), "b/kustomization.yaml": kustomization(image, "1.0.0")},
    )
    config = Config(
        tmp_path, git_server, registries=[{"name": "r", "prefix": registry_anon.host, "api_url": registry_anon.url}]
    )
    config.add_app("a.yaml", application("a", url, "a", image, target="helmvalues:values.yaml"))
    config.add_app("b.yaml", application("b", url, "b", image))

    started = time.monotonic()
    run = run_cli(config, monkeypatch)
    elapsed = time.monotonic() - started

    assert run.code == 1
    (line,) = [e for e in run.errors() if "application a" in e]
    assert "values.yaml: refusing to read" in line, line
    assert git_server.read_file("badinput-huge", "b/kustomization.yaml") == kustomization(image, "1.1.0")
    assert elapsed < 15


async def _list(count: int, page: int, **options: int) -> list[str]:
    import httpx

    from image_updater.adapters.registry.client import RegistryClient

    def handler(request: httpx.Request) -> httpx.Response:
        start = int(request.url.params.get("page", "0"))
        tags = [f"t{i}" for i in range(start * page, min(count, (start + 1) * page))]
        headers = {"Link": f'</v2/a/tags/list?page={start + 1}>; rel="next"'} if (start + 1) * page < count else {}
        return httpx.Response(200, json={"name": "a", "tags": tags}, headers=headers)

    async with RegistryClient(
        "http://127.0.0.1:1", registry="r", transport=httpx.MockTransport(handler), **options
    ) as client:
        return await client.list_tags("a")


def test_the_number_of_tags_is_bounded_whatever_the_pages_say() -> None:
    import asyncio

    from image_updater.errors import RegistryError

    assert len(asyncio.run(_list(250, 10, max_tags=250))) == 250
    with pytest.raises(RegistryError, match="more than 100 tags"):
        asyncio.run(_list(250, 10, max_tags=100))
    with pytest.raises(RegistryError, match="more than 5 pages"):
        asyncio.run(_list(250, 10, max_pages=5))
