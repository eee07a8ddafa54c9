"""Applications kept in Git (``applications.path: <git URL>#<path>``, the app-of-apps pattern): read from
the cached clone of the real Git server, including when they live in the config repository they update."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from image_updater.cli import main
from tests.harness.gitserver import GitHttpServer
from tests.harness.registry import RegistryServer
from tests.integration.scenario import application, kustomization, push_tags

pytestmark = pytest.mark.integration


def config(tmp_path: Path, git: GitHttpServer, applications: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(
        textwrap.dedent(
            f"""\
            applications:
              path: "{applications}"
            git:
              cache_dir: {tmp_path / "cache"}
              credentials:
                - url: {git.url}/
                  username: {git.username}
                  password: env:IU_TEST_GIT_PASSWORD
            log:
              format: json
            """
        )
    )
    return path


def test_applications_in_the_config_repository_itself_are_read_and_updated(
    registry_anon: RegistryServer,
    git_server: GitHttpServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("IU_TEST_GIT_PASSWORD", git_server.password)
    image = f"{registry_anon.host}/in-git/web"
    push_tags(registry_anon, "in-git/web", "1.0.0", "1.3.0")
    url = git_server.repo_url("app-of-apps")
    git_server.create_repo(
        "app-of-apps",
        {
            "argocd/web.yaml": application("web", url, "apps/web", image),
            "argocd/README.md": "not an Application",
            "apps/web/kustomization.yaml": kustomization(image, "1.0.0"),
        },
    )
    cfg = config(tmp_path, git_server, f"{url}#argocd")

    assert main(["check", "--config", str(cfg)]) == 0
    assert "1 applications, 0 errors" in capsys.readouterr().out

    assert main(["run", "--once", "--config", str(cfg)]) == 0
    assert git_server.read_file("app-of-apps", "apps/web/kustomization.yaml") == kustomization(image, "1.3.0")
    assert git_server.commit_count("app-of-apps") == 2
    assert main(["run", "--once", "--config", str(cfg)]) == 0  # read again from the fetched clone
    assert git_server.commit_count("app-of-apps") == 2


def test_a_path_that_is_not_a_folder_of_the_repository_is_a_configuration_error(
    git_server: GitHttpServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("IU_TEST_GIT_PASSWORD", git_server.password)
    url = git_server.create_repo("apps-missing", {"argocd/web.yaml": "kind: ConfigMap\n"})

    assert main(["run", "--once", "--config", str(config(tmp_path, git_server, f"{url}#nowhere"))]) == 2
    assert main(["run", "--once", "--config", str(config(tmp_path, git_server, f"{url}#../out"))]) == 2

    err = capsys.readouterr().err
    assert f"{url}#nowhere is not a folder in the repository" in err and "applications.path" in err
    assert "leads outside the repository" in err and git_server.password not in err
