"""Every strategy against the real registry: table rows re-run, digests, multi-arch indexes, request counts.

Images are really pushed (harness ``push_image`` / ``push_index`` with chosen ``created`` dates) and the
choice is asked through the real ``image-updater test`` command or the registry pool the cycle uses; the
registry's answers are counted by the paginating proxy in front of it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
from pathlib import Path

import pytest

from image_updater.adapters.registry.metadata import MetadataCache
from image_updater.adapters.registry.pool import RegistryPool
from image_updater.cli import main
from image_updater.config import RegistrySettings
from image_updater.model.ref import parse_image_name
from image_updater.model.spec import ImageSpec
from image_updater.selection.base import Selection
from image_updater.selection.factory import build_selector
from image_updater.selection.platforms import Platform
from image_updater.service.cycle import select_tags
from tests.conftest import ProxyFactory
from tests.harness.gitserver import GitHttpServer
from tests.harness.registry import RegistryServer, manifest_digest, push_image, push_tags
from tests.integration.scenario import Scenario, application, kustomization
from tests.unit.test_selection_table import BASE, SELECTIONS, Case

pytestmark = pytest.mark.integration

AMD64 = Platform("linux", "amd64")


def repo_name(text: str) -> str:
    return "strategies/" + re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60]


def push_case(registry: RegistryServer, repo: str, case: Case) -> dict[str, str]:
    """Push the case's tags (built on the row's day, else one day apart); return each tag's digest."""
    digests: dict[str, str] = {}
    for index, spec in enumerate(case.tags):
        tag = spec if isinstance(spec, str) else spec[0]
        day = spec[1] if isinstance(spec, tuple) and isinstance(spec[1], int) else index
        digests[tag] = push_image(registry, repo, tag, created=BASE + dt.timedelta(days=day))
    return digests


def ask(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, object]]:
    code = main(["test", *args, "--platforms", "linux/amd64", "--output", "json"])
    return code, json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("case", [c for c in SELECTIONS if c.real], ids=lambda c: c.rule)
def test_table_rows_hold_against_the_real_registry(
    case: Case, registry_anon: RegistryServer, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = repo_name(case.rule)
    digests = push_case(registry_anon, repo, case)
    args = [f"{registry_anon.host}/{repo}", "--update-strategy", case.strategy]
    if case.constraint:
        args += ["--semver-constraint", case.constraint]
    if case.allow:
        args += ["--allow-tags", case.allow]
    if case.extract:
        args += ["--tag-extract", case.extract]
    for glob in case.ignore:
        args += ["--ignore-tags", glob]

    code, payload = ask(args, capsys)

    expected = case.expected
    if case.strategy == "digest" and expected is not None:
        tag = expected.split("@")[0]  # the table's made-up digest stands for the one really pushed
        expected = f"{tag}@{digests[tag]}"
        assert payload["digest"] == digests[tag] == manifest_digest(registry_anon, repo, tag)
    assert (code, payload["selected"]) == (0, expected)
    assert len(payload["considered"]) + len(payload["skipped"]) == len(case.tags)  # type: ignore[arg-type]


def test_digest_follows_a_re_pushed_tag(registry_anon: RegistryServer, capsys: pytest.CaptureFixture[str]) -> None:
    repo = "strategies/digest-repush"
    first = push_image(registry_anon, repo, "latest", created=BASE)
    push_image(registry_anon, repo, "1.0", created=BASE)
    image = f"{registry_anon.host}/{repo}:latest"

    _, before = ask([image, "--update-strategy", "digest"], capsys)
    second = push_image(registry_anon, repo, "latest", created=BASE + dt.timedelta(hours=1))
    _, after = ask([image, "--update-strategy", "digest"], capsys)

    assert first != second
    assert before["selected"] == f"latest@{first}" and after["selected"] == f"latest@{second}"
    assert after["digest"] == manifest_digest(registry_anon, repo, "latest")
    assert {"tag": "1.0", "reason": "not the tracked tag 'latest'"} in after["skipped"]  # type: ignore[operator]


def test_multi_arch_index_counts_only_the_allowed_platforms(
    registry_anon: RegistryServer, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = "strategies/multiarch"
    index = registry_anon.pusher.push_index_full(
        repo,
        "multi",
        platforms={"linux/amd64": BASE + dt.timedelta(days=1), "linux/arm64": BASE + dt.timedelta(days=9)},
    )
    push_image(registry_anon, repo, "single", created=BASE + dt.timedelta(days=5))
    image = f"{registry_anon.host}/{repo}"

    def newest(*platforms: str) -> dict[str, object]:
        args = [image, "--update-strategy", "newest-build", "--output", "json"]
        for value in platforms:
            args += ["--platforms", value]
        main(["test", *args])
        return json.loads(capsys.readouterr().out)  # type: ignore[no-any-return]

    amd = newest("linux/amd64")  # the index's amd64 image (day 1) is older than "single" (day 5)
    arm = newest("linux/arm64")  # "single" has no arm64 image; the index's arm64 image is from day 9
    both = newest("linux/amd64,linux/arm64")  # the index counts its newest allowed platform: day 9

    assert amd["selected"] == "single" and amd["considered"] == ["multi", "single"]
    assert arm["selected"] == "multi" and arm["digest"] == index.digest
    assert {"tag": "single", "reason": "the image is for linux/amd64, not linux/arm64"} in arm["skipped"]  # type: ignore[operator]
    assert both["selected"] == "multi"

    main(["test", f"{image}:multi", "--update-strategy", "digest", "--platforms", "windows/amd64", "--output", "json"])
    windows = json.loads(capsys.readouterr().out)
    assert windows["selected"] is None
    reasons = {s["tag"]: s["reason"] for s in windows["skipped"]}
    assert reasons["multi"] == "no image for windows/amd64 in the index (it has linux/amd64, linux/arm64)"


class FakeClock:
    """Monotonic seconds that a test moves forward by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_newest_build_over_300_tags_counts_requests(registry_anon: RegistryServer, tags_proxy: ProxyFactory) -> None:
    repo = "strategies/three-hundred"
    created = {f"build-{i:03d}": BASE + dt.timedelta(minutes=(i * 37) % 300) for i in range(300)}
    push_tags(registry_anon, repo, created)
    newest = max(created, key=lambda tag: created[tag])
    proxy = tags_proxy(registry_anon, page_size=100)
    clock = FakeClock()
    cache = MetadataCache(clock=clock, revalidate_after=3600)
    image = ImageSpec(
        name=parse_image_name(f"{proxy.host}/{repo}"), written_name=f"{proxy.host}/{repo}", strategy="newest-build"
    )
    selector = build_selector(image)
    registries = [RegistrySettings(name="proxy", prefix=proxy.host, api_url=proxy.url)]

    def cycle() -> tuple[Selection, dict[str, int], dict[str, int]]:
        proxy.reset_counts()

        async def run() -> Selection:
            async with RegistryPool(registries, cache=cache, clock=clock, default_platforms=[AMD64]) as pool:
                return await select_tags(selector, image, await pool.list_tags(image), pool)

        selection = asyncio.run(run())
        methods: dict[str, int] = {}
        for request in proxy.requests:
            if request.kind == "manifest":
                methods[request.method] = methods.get(request.method, 0) + 1
        return selection, proxy.counts, methods

    first, counts, methods = cycle()
    assert first.selected == newest and len(first.considered) == 300
    assert counts["tags"] == 3 and counts["manifest"] == 300 and counts["blob"] == 300
    assert methods == {"GET": 300}

    second, counts, methods = cycle()  # a new pool, the same cache: digests are still fresh
    assert second.selected == newest
    assert (counts["manifest"], counts["blob"]) == (0, 0)

    # Past revalidation, with one tag pushed again meanwhile: one HEAD per tag; the 299 unchanged digests
    # cost nothing more, the re-pushed tag one manifest and one config request.
    push_image(registry_anon, repo, "build-007", created=BASE + dt.timedelta(days=30))
    clock.now += 3601
    third, counts, methods = cycle()
    assert third.selected == "build-007"
    assert methods == {"HEAD": 300, "GET": 1} and counts["blob"] == 1


def test_pull_secret_from_a_docker_config_file(
    registry_basic: RegistryServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import base64

    repo = "strategies/pull-secret"
    push_image(registry_basic, repo, "1.0.0", created=BASE)
    push_image(registry_basic, repo, "1.1.0", created=BASE)
    auth = base64.b64encode(f"{registry_basic.username}:{registry_basic.password}".encode()).decode()
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"auths": {f"http://{registry_basic.host}/v2/": {"auth": auth}}}))

    code = main(
        ["test", f"{registry_basic.host}/{repo}", "--credentials", f"dockerconfig:{config}", "--output", "json"]
    )

    assert code == 0 and json.loads(capsys.readouterr().out)["selected"] == "1.1.0"


def test_digest_strategy_writes_tag_at_digest_through_the_cycle(
    registry_anon: RegistryServer, git_server: GitHttpServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = "strategies/cycle-digest"
    digest = push_image(registry_anon, repo, "stable", created=BASE)
    image = f"{registry_anon.host}/{repo}"
    url = git_server.create_repo("strategies-digest", {"app/kustomization.yaml": kustomization(image, "stable")})
    scenario = Scenario(tmp_path, git_server)
    scenario.add_app("a.yaml", application("a", url, "app", f"web={image}:stable", **{"web.update-strategy": "digest"}))

    assert scenario.run(monkeypatch) == 0
    written = git_server.read_file("strategies-digest", "app/kustomization.yaml") or ""
    # the kustomization editor writes tag@digest as kustomize's own fields: newTag and digest
    assert "newTag: stable " in written and f"digest: {digest}" in written
    head = git_server.rev_parse("strategies-digest")

    assert scenario.run(monkeypatch) == 0  # the same digest: nothing to write
    assert git_server.rev_parse("strategies-digest") == head


def test_newest_build_through_the_cycle(
    registry_anon: RegistryServer, git_server: GitHttpServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = "strategies/cycle-newest"
    push_tags(registry_anon, repo, {"a1b2c3d": BASE + dt.timedelta(days=2), "ffffff0": BASE, "latest": BASE})
    image = f"{registry_anon.host}/{repo}"
    url = git_server.create_repo("strategies-newest", {"app/kustomization.yaml": kustomization(image, "ffffff0")})
    scenario = Scenario(tmp_path, git_server)
    annotations = {"web.update-strategy": "latest", "web.allow-tags": "regexp:^[0-9a-f]{7}$"}
    scenario.add_app("a.yaml", application("a", url, "app", f"web={image}", **annotations))

    assert scenario.run(monkeypatch) == 0
    assert "newTag: a1b2c3d " in (git_server.read_file("strategies-newest", "app/kustomization.yaml") or "")
