"""The walking skeleton end to end: real registries, a real Git server, the real CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from image_updater.cli import main
from tests.harness.gitserver import GitHttpServer
from tests.harness.registry import RegistryServer
from tests.integration.scenario import (
    Scenario,
    application,
    deployment,
    kustomization,
    kustomize_images,
    push_tags,
)

pytestmark = pytest.mark.integration


def test_kustomization_update_is_committed_and_renders(
    registry_anon: RegistryServer, git_server: GitHttpServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    image = f"{registry_anon.host}/skeleton/kust"
    push_tags(registry_anon, "skeleton/kust", "1.0.0", "2.0.0")
    original = kustomization(image, "1.0.0")
    url = git_server.create_repo(
        "kust", {"apps/web/kustomization.yaml": original, "apps/web/deployment.yaml": deployment(f"{image}:0.0.1")}
    )
    scenario = Scenario(tmp_path, git_server)
    scenario.add_app("web.yaml", application("web", url, "apps/web", image))

    assert scenario.run(monkeypatch) == 0

    edited = git_server.read_file("kust", "apps/web/kustomization.yaml")
    assert edited == original.replace("newTag: 1.0.0", "newTag: 2.0.0")
    assert git_server.commit_count("kust") == 2
    message = git_server.commit_message("kust")
    assert "web" in message.splitlines()[0] and f"{image}: 1.0.0 -> 2.0.0" in message
    assert git_server.log("kust")[0].author_name == "image-updater"
    assert kustomize_images(git_server, "kust", "apps/web", tmp_path) == [f"{image}:2.0.0"]


def test_plain_deployment_update_and_second_run_makes_no_commit(
    registry_anon: RegistryServer, git_server: GitHttpServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    image = f"{registry_anon.host}/skeleton/plain"
    push_tags(registry_anon, "skeleton/plain", "1.0.0", "2.0.0", "latest")
    url = git_server.create_repo("plain", {"deploy/app.yaml": deployment(f"{image}:1.0.0")})
    scenario = Scenario(tmp_path, git_server)
    scenario.add_app("plain.yaml", application("plain", url, "deploy", image, target="manifests"))

    assert scenario.run(monkeypatch) == 0
    assert git_server.read_file("plain", "deploy/app.yaml") == deployment(f"{image}:2.0.0")
    head = git_server.rev_parse("plain")

    assert scenario.run(monkeypatch) == 0
    assert git_server.rev_parse("plain") == head
    assert git_server.commit_count("plain") == 2


@pytest.mark.parametrize(
    ("constraint", "expected"),
    [
        ("~1.1", "1.1.3"),  # newest 1.1.x, never 1.2 or 2.x, and not the 1.1.4 pre-release
        ("1.1", "1.1.3"),  # a short version is a 1.1.x range, as AIU reads nginx:1.19
        ("~1.1.4-0", "1.1.4-rc.1"),  # a constraint that names a pre-release admits it
        ("^1.0", "1.2.0"),
    ],
)
def test_semver_constraint_through_the_real_registry(
    registry_anon: RegistryServer,
    git_server: GitHttpServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    constraint: str,
    expected: str,
) -> None:
    repo = "skeleton/semver"
    if not git_server.rev_parse("semver-seed"):
        push_tags(registry_anon, repo, "1.0.0", "1.1.0", "1.1.3", "1.1.4-rc.1", "1.2.0", "2.0.0", "2.1.0-beta")
        git_server.create_repo("semver-seed", {"README": "tags pushed"})
    image = f"{registry_anon.host}/{repo}"
    name = f"semver-{abs(hash(constraint)) % 10**8}"
    url = git_server.create_repo(name, {"app/kustomization.yaml": kustomization(image, "1.0.0")})
    scenario = Scenario(tmp_path, git_server)
    scenario.add_app("a.yaml", application("a", url, "app", f"{image}:{constraint}"))

    assert scenario.run(monkeypatch) == 0
    assert f"newTag: {expected} " in (git_server.read_file(name, "app/kustomization.yaml") or "")


def test_dry_run_prints_a_diff_and_writes_nothing(
    registry_anon: RegistryServer,
    git_server: GitHttpServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    image = f"{registry_anon.host}/skeleton/dry"
    push_tags(registry_anon, "skeleton/dry", "1.0.0", "1.5.0")
    url = git_server.create_repo("dry", {"k/kustomization.yaml": kustomization(image, "1.0.0")})
    scenario = Scenario(tmp_path, git_server)
    scenario.add_app("dry.yaml", application("dry", url, "k", image))

    assert scenario.run(monkeypatch, "--dry-run") == 0

    out = capsys.readouterr().out
    assert "--- a/k/kustomization.yaml" in out and "+    newTag: 1.5.0" in out and "-    newTag: 1.0.0" in out
    assert git_server.commit_count("dry") == 1


def test_unparsable_target_is_reported_and_untouched_while_others_update(
    registry_anon: RegistryServer,
    git_server: GitHttpServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    image = f"{registry_anon.host}/skeleton/mixed"
    push_tags(registry_anon, "skeleton/mixed", "1.0.0", "1.1.0")
    broken = f"images:\n  - name: {image}\n    newTag: 1.0.0\n  bad: [unclosed\n"
    url = git_server.create_repo(
        "mixed",
        {"broken/kustomization.yaml": broken, "good/kustomization.yaml": kustomization(image, "1.0.0")},
    )
    scenario = Scenario(tmp_path, git_server)
    scenario.add_app("broken.yaml", application("broken", url, "broken", image))
    scenario.add_app("good.yaml", application("good", url, "good", image))

    assert scenario.run(monkeypatch) == 1

    assert git_server.read_file("mixed", "broken/kustomization.yaml") == broken
    assert "newTag: 1.1.0" in (git_server.read_file("mixed", "good/kustomization.yaml") or "")
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1
    assert "application broken" in errors[0] and "broken/kustomization.yaml" in errors[0]


def test_wrong_registry_credentials_fail_one_app_and_not_the_others(
    registry_basic: RegistryServer,
    registry_anon: RegistryServer,
    git_server: GitHttpServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    locked = f"{registry_basic.host}/skeleton/locked"
    open_image = f"{registry_anon.host}/skeleton/open"
    push_tags(registry_basic, "skeleton/locked", "1.0.0", "2.0.0")
    push_tags(registry_anon, "skeleton/open", "1.0.0", "2.0.0")
    url = git_server.create_repo(
        "creds",
        {
            "locked/kustomization.yaml": kustomization(locked, "1.0.0"),
            "open/kustomization.yaml": kustomization(open_image, "1.0.0"),
        },
    )
    scenario = Scenario(tmp_path, git_server)
    scenario.registries.append(
        {
            "name": "basic",
            "prefix": registry_basic.host,
            "api_url": registry_basic.url,
            "credentials": "env:IU_TEST_REG",
        }
    )
    monkeypatch.setenv("IU_TEST_REG", f"{registry_basic.username}:wrong-password")
    scenario.add_app("locked.yaml", application("locked", url, "locked", locked))
    scenario.add_app("open.yaml", application("open", url, "open", open_image))

    assert scenario.run(monkeypatch) == 1

    captured = capsys.readouterr()
    errors = [line for line in captured.err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, errors
    line = errors[0]
    assert "application locked" in line and f"image {locked}" in line and f"registry {registry_basic.host}" in line
    assert "HTTP 401" in line
    assert "wrong-password" not in captured.err + captured.out
    assert "newTag: 2.0.0" in (git_server.read_file("creds", "open/kustomization.yaml") or "")
    assert "newTag: 1.0.0" in (git_server.read_file("creds", "locked/kustomization.yaml") or "")


@pytest.mark.parametrize("mode", ["basic", "token"])
def test_authenticated_registries_update_through_the_cycle(
    mode: str,
    registry_basic: RegistryServer,
    registry_token: RegistryServer,
    git_server: GitHttpServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    registry = registry_basic if mode == "basic" else registry_token
    repo = f"skeleton/auth-{mode}"
    push_tags(registry, repo, "1.0.0", "1.0.1")
    image = f"{registry.host}/{repo}"
    url = git_server.create_repo(f"auth-{mode}", {"k/kustomization.yaml": kustomization(image, "1.0.0")})
    scenario = Scenario(tmp_path, git_server)
    scenario.registries.append(
        {"name": mode, "prefix": registry.host, "api_url": registry.url, "credentials": "env:IU_TEST_REG"}
    )
    monkeypatch.setenv("IU_TEST_REG", f"{registry.username}:{registry.password}")
    scenario.add_app("a.yaml", application("a", url, "k", image))

    assert scenario.run(monkeypatch) == 0
    assert "newTag: 1.0.1" in (git_server.read_file(f"auth-{mode}", "k/kustomization.yaml") or "")


def test_test_command_prints_the_spec_json(registry_anon: RegistryServer, capsys: pytest.CaptureFixture[str]) -> None:
    push_tags(registry_anon, "demo/nodeapp", "1.0.0", "1.1.0", "1.1.2", "1.2.0", "2.0.0", "latest")
    image = f"{registry_anon.host}/demo/nodeapp"

    code = main(["test", image, "--semver-constraint", "~1.1", "--current-tag", "1.1.0", "--output", "json"])

    assert code == 0
    payload = json.loads(capsys.readouterr().out)
    assert set(payload) == {"image", "current", "selected", "digest", "strategy", "considered", "skipped"}
    assert payload["image"] == image and payload["current"] == "1.1.0"
    assert payload["selected"] == "1.1.2" and payload["strategy"] == "semver"
    assert payload["considered"] == ["1.1.0", "1.1.2"]
    reasons = {s["tag"]: s["reason"] for s in payload["skipped"]}
    assert reasons["latest"] == "not a semantic version" and "does not satisfy ~1.1" in reasons["2.0.0"]


@pytest.mark.parametrize("mode", ["anonymous", "basic", "token"])
def test_test_command_lists_tags_with_each_auth(
    mode: str,
    registry_anon: RegistryServer,
    registry_basic: RegistryServer,
    registry_token: RegistryServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    registry = {"anonymous": registry_anon, "basic": registry_basic, "token": registry_token}[mode]
    push_tags(registry, f"skeleton/test-{mode}", "0.9.0", "1.0.0")
    args = ["test", f"{registry.host}/skeleton/test-{mode}", "--output", "json"]
    if mode != "anonymous":
        monkeypatch.setenv("IU_TEST_REG", f"{registry.username}:{registry.password}")
        args += ["--credentials", "env:IU_TEST_REG"]

    assert main(args) == 0
    assert json.loads(capsys.readouterr().out)["selected"] == "1.0.0"


def test_the_cycle_line_gives_its_wall_time_and_cpu_time(
    registry_anon: RegistryServer,
    git_server: GitHttpServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    image = f"{registry_anon.host}/skeleton/timed"
    push_tags(registry_anon, "skeleton/timed", "1.0.0", "2.0.0")
    url = git_server.create_repo("timed", {"deploy/app.yaml": deployment(f"{image}:1.0.0")})
    scenario = Scenario(tmp_path, git_server)
    scenario.add_app("timed.yaml", application("timed", url, "deploy", image, target="manifests"))

    assert scenario.run(monkeypatch) == 0

    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    finished = [line for line in lines if line.get("event") == "cycle finished"]
    assert len(finished) == 1
    assert finished[0]["duration_s"] > 0 and finished[0]["cpu_s"] > 0
    assert finished[0]["updated"] == 1
