"""Every write-back target through a real cycle against the real Git server, one commit per repository
and branch, and the refusals: paths that leave the repository, ``.git``, symlinks that lead out."""

from __future__ import annotations

import subprocess
import tempfile
import textwrap
from pathlib import Path

import pytest

from image_updater.service.cycle import Status
from tests.harness.gitserver import GitHttpServer, run_git
from tests.integration.writeback_kit import git_settings, make_app, run_once

pytestmark = pytest.mark.integration

KUSTOMIZATION = "kind: Kustomization\nresources: [deployment.yaml]\nimages:\n- name: nginx\n  newTag: 1.25.3\n"
DEPLOYMENT = textwrap.dedent(
    """\
    apiVersion: apps/v1
    kind: Deployment
    metadata: {name: web}
    spec:
      template:
        spec:
          containers:
            - name: web
              image: nginx:1.25.3   # plain manifest
    """
)
VALUES = textwrap.dedent(
    """\
    # chart defaults
    frontend:
      image:
        repository: nginx
        tag: 1.25.3

    backend:
      image:
        repository: nginx
        tag: "1.25.3"   # quoted
    """
)
TAGS = {"library/nginx": ["1.25.3", "1.26.0"], "acme/web": ["1.0.0", "1.1.0"]}


def test_three_applications_in_a_monorepo_give_exactly_one_commit(git_server: GitHttpServer, tmp_path: Path) -> None:
    url = git_server.create_repo(
        "mono-three",
        {
            "apps/kust/kustomization.yaml": KUSTOMIZATION,
            "apps/kust/deployment.yaml": DEPLOYMENT,
            "apps/plain/web.yaml": DEPLOYMENT,
            "apps/chart/Chart.yaml": "name: web\n",
            "apps/chart/values.yaml": VALUES,
        },
    )
    apps = [
        make_app("kust", url, "apps/kust", "nginx", target="kustomization"),
        make_app("plain", url, "apps/plain", "nginx", target="manifests"),
        make_app(
            "chart",
            url,
            "apps/chart",
            "fe=nginx, be=nginx",
            target="helmvalues",
            fe__helm__image_name="frontend.image.repository",
            fe__helm__image_tag="frontend.image.tag",
            be__helm__image_name="backend.image.repository",
            be__helm__image_tag="backend.image.tag",
        ),
    ]

    result = run_once(apps, git_server, tmp_path / "cache", TAGS)

    assert [a.status for a in result.apps] == [Status.UPDATED] * 3, [a.errors() for a in result.apps]
    assert git_server.commit_count("mono-three") == 2
    assert len(result.commits) == 1 and {a.commit for a in result.apps} == {result.commits[0]}
    message = git_server.commit_message("mono-three")
    assert message.splitlines()[0] == "build: update images of kust, plain, chart"
    # one line per distinct change (the two Helm aliases and the other two Applications all move nginx)
    assert message.endswith("\n\n- nginx: 1.25.3 -> 1.26.0")
    assert [c.file for c in result.apps[2].changes] == ["apps/chart/values.yaml"] * 2
    assert git_server.read_file("mono-three", "apps/kust/kustomization.yaml") == KUSTOMIZATION.replace(
        "1.25.3", "1.26.0"
    )
    assert git_server.read_file("mono-three", "apps/plain/web.yaml") == DEPLOYMENT.replace("1.25.3", "1.26.0")
    assert git_server.read_file("mono-three", "apps/chart/values.yaml") == VALUES.replace("1.25.3", "1.26.0")
    assert git_server.read_file("mono-three", "apps/kust/deployment.yaml") == DEPLOYMENT

    again = run_once(apps, git_server, tmp_path / "cache", TAGS)
    assert not again.commits and git_server.commit_count("mono-three") == 2


def test_argocd_source_files_are_merged_and_named_by_namespace(git_server: GitHttpServer, tmp_path: Path) -> None:
    existing = "# kept\nkustomize:\n  images:\n  - redis:7.2.4\n  - nginx:1.25.3   # ours\n"
    url = git_server.create_repo(
        "argocd-source",
        {
            "kust/kustomization.yaml": "resources: []\n",
            "kust/.argocd-source-web.yaml": existing,
            "chart/Chart.yaml": "name: api\n",
        },
    )
    apps = [
        make_app("web", url, "kust", "nginx"),
        # another namespace: AIU's file name carries it; no file yet, so force-update writes one
        make_app("api", url, "chart", "nginx", namespace="team-a", force_update="true"),
        make_app("web2", url, "kust", "ghcr.io/acme/web", status={"sourceType": "Helm"}, force_update="true"),
    ]

    result = run_once(apps, git_server, tmp_path / "cache", TAGS)

    assert [a.status for a in result.apps] == [Status.UPDATED] * 3, [a.errors() for a in result.apps]
    assert git_server.commit_count("argocd-source") == 2
    assert git_server.read_file("argocd-source", "kust/.argocd-source-web.yaml") == existing.replace(
        "1.25.3", "1.26.0"
    )
    assert git_server.read_file("argocd-source", "chart/.argocd-source-team-a_api.yaml") == (
        "helm:\n  parameters:\n  - name: image.name\n    value: nginx\n    forcestring: true\n"
        "  - name: image.tag\n    value: 1.26.0\n    forcestring: true\n"
    )
    assert "value: ghcr.io/acme/web\n" in (git_server.read_file("argocd-source", "kust/.argocd-source-web2.yaml") or "")


def test_the_kind_of_an_application_that_is_neither_is_reported(git_server: GitHttpServer, tmp_path: Path) -> None:
    url = git_server.create_repo("argocd-source-none", {"plain/web.yaml": DEPLOYMENT})
    result = run_once([make_app("web", url, "plain", "nginx")], git_server, tmp_path / "cache", TAGS)
    assert result.apps[0].status is Status.FAILED
    assert "cannot tell whether 'plain' is Kustomize or Helm" in str(result.apps[0].errors()[0])


def test_a_templated_branch_gets_the_update_and_the_base_stays(git_server: GitHttpServer, tmp_path: Path) -> None:
    url = git_server.create_repo("branches", {"k/kustomization.yaml": KUSTOMIZATION})
    app = make_app("web", url, "k", "nginx", target="kustomization", git_branch="main:image-updater-{{.SHA256}}")

    first = run_once([app], git_server, tmp_path / "cache", TAGS)

    branches = [b for b in git_server.branches("branches") if b != "main"]
    assert len(branches) == 1 and branches[0].startswith("image-updater-") and len(branches[0]) == 14 + 64
    assert first.commits == [git_server.rev_parse("branches", branches[0])]
    assert "newTag: 1.26.0" in (git_server.read_file("branches", "k/kustomization.yaml", branches[0]) or "")
    assert git_server.read_file("branches", "k/kustomization.yaml") == KUSTOMIZATION
    # the next cycle finds the same update on its branch: nothing more to push
    second = run_once([app], git_server, tmp_path / "cache", TAGS)
    assert not second.commits and git_server.commit_count("branches", branches[0]) == 2


def test_a_branch_named_from_images_builds_on_an_existing_branch(git_server: GitHttpServer, tmp_path: Path) -> None:
    url = git_server.create_repo("branches-named", {"k/kustomization.yaml": KUSTOMIZATION, "other": "1"})
    template = "main:updates/{{range .Images}}{{.Alias}}-{{.NewTag}}{{end}}"
    app = make_app("web", url, "k", "web=nginx", target="kustomization", git_branch=template)
    git_server.push_commit("branches-named", {"other": "2"}, "someone's work", branch="main")
    run_git(["branch", "updates/web-1.26.0", "main"], git_dir=git_server.bare_path("branches-named"))

    result = run_once([app], git_server, tmp_path / "cache", TAGS)

    assert result.commits and git_server.rev_parse("branches-named", "updates/web-1.26.0") == result.commits[0]
    assert git_server.log("branches-named", "updates/web-1.26.0")[1].subject == "someone's work"


def test_message_template_sign_off_and_ssh_signature(git_server: GitHttpServer, tmp_path: Path) -> None:
    url = git_server.create_repo("signed", {"k/kustomization.yaml": KUSTOMIZATION})
    key = tmp_path / "signing"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "signer", "-f", str(key)], check=True)
    template = (
        "build: automatic update of {{ .AppName }}\n\n{{ range .AppChanges -}}\n"
        "updates image {{ .Image }} tag '{{ .OldTag }}' to '{{ .NewTag }}'\n{{ end -}}\n"
    )
    settings = git_settings(
        git_server, commit_message=template, signing_key=str(key), signing_method="ssh", sign_off=True
    )
    app = make_app("web", url, "k", "nginx", target="kustomization")

    result = run_once([app], git_server, tmp_path / "cache", TAGS, git=settings)

    assert result.commits
    message = git_server.commit_message("signed")
    assert message == (
        "build: automatic update of web\n\nupdates image nginx tag '1.25.3' to '1.26.0'\n\n"
        "Signed-off-by: image-updater <bot@example.com>"
    )
    allowed = tmp_path / "allowed"
    allowed.write_text(f"bot@example.com {(tmp_path / 'signing.pub').read_text()}")
    verify = run_git(
        ["-c", f"gpg.ssh.allowedSignersFile={allowed}", "verify-commit", "-v", "main"],
        git_dir=git_server.bare_path("signed"),
        check=False,
    )
    assert verify.returncode == 0, verify.stderr
    assert b'Good "git" signature for bot@example.com' in verify.stderr


def test_openpgp_signature(git_server: GitHttpServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = Path(tempfile.mkdtemp(prefix="gnupg-", dir="/tmp"))
    home.chmod(0o700)
    monkeypatch.setenv("GNUPGHOME", str(home))
    subprocess.run(
        ["gpg", "--batch", "--quiet", "--passphrase", "", "--quick-gen-key", "Bot <bot@example.com>", "ed25519"],
        check=True,
        capture_output=True,
    )
    url = git_server.create_repo("signed-gpg", {"k/kustomization.yaml": KUSTOMIZATION})
    settings = git_settings(git_server, signing_key="bot@example.com", signing_method="openpgp")

    app = make_app("web", url, "k", "nginx", target="kustomization")

    result = run_once([app], git_server, tmp_path / "cache", TAGS, git=settings)

    assert result.commits, [a.errors() for a in result.apps]
    verify = run_git(["verify-commit", "main"], git_dir=git_server.bare_path("signed-gpg"), check=False)
    assert b"Good signature" in verify.stderr
    subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"], check=False, capture_output=True)
