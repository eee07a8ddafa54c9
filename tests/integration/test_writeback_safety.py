"""What the write-back refuses and survives, against the real Git server: paths that leave the
repository or enter ``.git``, symlinks that lead out, credentials from a Secret, a damaged clone cache."""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

import pytest

from image_updater.adapters.git.workspace import GitWorkspace
from image_updater.config import GitCredential
from image_updater.errors import GitError, WriteBackError
from image_updater.service.cycle import Status
from tests.harness.gitserver import GitHttpServer, git_env
from tests.integration.writeback_kit import git_settings, make_app, run_once

pytestmark = pytest.mark.integration

KUSTOMIZATION = "kind: Kustomization\nimages:\n- name: nginx\n  newTag: 1.25.3\n"
TAGS = {"library/nginx": ["1.25.3", "1.26.0"]}


def push_symlinks(server: GitHttpServer, name: str, links: dict[str, str]) -> None:
    """Commit symlinks (path -> where they point) as another client would."""
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / "clone"
        env = git_env()
        remote = server.repo_url(name, with_credentials=True)
        subprocess.run(["git", "clone", "-q", remote, str(work)], check=True, env=env)
        for path, target in links.items():
            (work / path).parent.mkdir(parents=True, exist_ok=True)
            os.symlink(target, work / path)
        subprocess.run(["git", "add", "-A"], cwd=work, check=True, env=env)
        subprocess.run(["git", "commit", "-qm", "links"], cwd=work, check=True, env=env)
        subprocess.run(["git", "push", "-q", "origin", "HEAD:main"], cwd=work, check=True, env=env)


@pytest.mark.parametrize(
    ("path", "target", "message"),
    [
        ("apps/web", "kustomization:../../..", "leads outside the repository"),
        ("apps/web", "kustomization:/../elsewhere", "leads outside the repository"),
        ("apps/web", "helmvalues:../../../etc/values.yaml", "leads outside the repository"),
        ("apps/web", "helmvalues:/.git/config", "leads into the .git folder"),
        ("apps/web", "manifests:../../.git", "leads into the .git folder"),
        ("../outside", "kustomization", "leads outside the repository"),
        ("apps/web", "helmvalues:/apps", "is a folder, not a file"),
    ],
)
def test_paths_that_leave_the_repository_are_refused(
    git_server: GitHttpServer, tmp_path: Path, path: str, target: str, message: str
) -> None:
    name = f"escape-{abs(hash((path, target))) % 10**8}"
    url = git_server.create_repo(name, {"apps/web/kustomization.yaml": KUSTOMIZATION})
    result = run_once([make_app("web", url, path, "nginx", target=target)], git_server, tmp_path / "c", TAGS)
    assert result.apps[0].status is Status.FAILED
    assert message in str(result.apps[0].errors()[0])
    assert git_server.commit_count(name) == 1


def test_a_leading_slash_means_the_repository_root(git_server: GitHttpServer, tmp_path: Path) -> None:
    url = git_server.create_repo("rooted", {"shared/kustomization.yaml": KUSTOMIZATION})
    app = make_app("web", url, "apps/web", "nginx", target="kustomization:/shared")
    assert run_once([app], git_server, tmp_path / "c", TAGS).commits
    assert "newTag: 1.26.0" in (git_server.read_file("rooted", "shared/kustomization.yaml") or "")


def test_symlinks_that_lead_out_are_refused_and_ones_inside_are_followed(
    git_server: GitHttpServer, tmp_path: Path
) -> None:
    outside = tmp_path / "outside.yaml"
    outside.write_text(KUSTOMIZATION)
    git_server.create_repo("links", {"real/kustomization.yaml": KUSTOMIZATION})
    push_symlinks(
        git_server,
        "links",
        {"out/kustomization.yaml": str(outside), "in/kustomization.yaml": "../real/kustomization.yaml"},
    )
    url = git_server.repo_url("links")
    apps = [
        make_app("out", url, "out", "nginx", target="kustomization"),
        make_app("in", url, "in", "nginx", target="kustomization"),
    ]

    result = run_once(apps, git_server, tmp_path / "c", TAGS)

    assert result.apps[0].status is Status.FAILED
    assert "leads outside the repository" in str(result.apps[0].errors()[0])
    assert outside.read_text() == KUSTOMIZATION
    assert result.apps[1].status is Status.UPDATED
    assert "newTag: 1.26.0" in (git_server.read_file("links", "real/kustomization.yaml") or "")
    assert git_server.read_bytes("links", "in/kustomization.yaml") == b"../real/kustomization.yaml"


class Secrets:
    """A credentials source standing in for Kubernetes Secrets."""

    def __init__(self, server: GitHttpServer, password: str) -> None:
        self.server = server
        self.password = password
        self.asked: list[str] = []

    async def git(self, spec: str, *, url: str = "") -> GitCredential:
        self.asked.append(spec)
        return GitCredential(url=url, username=self.server.username, password=self.password)


def test_git_secret_credentials_come_from_the_credentials_source(
    git_server: GitHttpServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = git_server.create_repo("secret-creds", {"k/kustomization.yaml": KUSTOMIZATION})
    app = make_app("web", url, "k", "nginx", target="kustomization", write_back_method="git:secret:argocd/repo")
    no_config = git_settings(git_server, credentials=())

    good = Secrets(git_server, git_server.password)
    assert run_once([app], git_server, tmp_path / "c1", TAGS, git=no_config, git_credentials=good).commits
    assert good.asked == ["git:secret:argocd/repo"]

    url2 = git_server.create_repo("secret-creds-bad", {"k/kustomization.yaml": KUSTOMIZATION})
    bad_app = make_app("web", url2, "k", "nginx", target="kustomization", write_back_method="git:secret:argocd/repo")
    wrong = Secrets(git_server, "wrong-password-xyz")
    result = run_once([bad_app], git_server, tmp_path / "c2", TAGS, git=no_config, git_credentials=wrong)
    error = str(result.apps[0].errors()[0])
    assert result.apps[0].status is Status.FAILED and "git clone failed" in error
    assert "wrong-password-xyz" not in error + capsys.readouterr().out

    none = run_once([bad_app], git_server, tmp_path / "c3", TAGS, git=no_config)
    assert "needs the kubernetes source" in str(none.apps[0].errors()[0])


def test_a_damaged_cache_is_replaced_by_a_fresh_clone(git_server: GitHttpServer, tmp_path: Path) -> None:
    url = git_server.create_repo("damaged", {"k/kustomization.yaml": KUSTOMIZATION})
    cache = tmp_path / "cache"
    app = make_app("web", url, "k", "nginx", target="kustomization")
    tags = {"library/nginx": ["1.25.3", "1.26.0"]}
    assert run_once([app], git_server, cache, tags).commits
    clone = GitWorkspace(url, cache).path
    # a killed process leaves locks; a broken disk leaves garbage where objects were
    (clone / ".git" / "index.lock").write_text("")
    for pack in (clone / ".git" / "objects" / "pack").glob("*.pack"):
        pack.write_bytes(b"garbage")
    for loose in (clone / ".git" / "objects").glob("??/*"):
        loose.write_bytes(b"garbage")

    tags["library/nginx"].append("1.27.0")
    result = run_once([app], git_server, cache, tags)

    assert result.commits, [a.errors() for a in result.apps]
    assert "newTag: 1.27.0" in (git_server.read_file("damaged", "k/kustomization.yaml") or "")
    assert subprocess.run(["git", "-C", str(clone), "fsck", "--no-progress"], capture_output=True).returncode == 0
    # a clone that opens but cannot fetch (its remote went wrong) is replaced as well
    subprocess.run(["git", "-C", str(clone), "remote", "set-url", "origin", "http://127.0.0.1:1/gone.git"], check=True)
    tags["library/nginx"].append("1.28.0")
    assert run_once([app], git_server, cache, tags).commits
    (clone / ".git" / "HEAD").write_text("not a ref\n")
    tags["library/nginx"].append("1.29.0")
    assert run_once([app], git_server, cache, tags).commits
    assert "newTag: 1.29.0" in (git_server.read_file("damaged", "k/kustomization.yaml") or "")
    assert not list(cache.glob(".partial-*"))


def test_a_folder_that_becomes_a_symlink_out_is_refused_after_the_next_sync(
    git_server: GitHttpServer, tmp_path: Path
) -> None:
    """Folders' real paths are remembered between reads, and forgotten when Git changes the tree."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "values.yaml").write_text("image:\n  tag: secret\n")
    git_server.create_repo("turns-link", {"apps/a/values.yaml": "image:\n  tag: 1.0.0\n"})
    url = git_server.repo_url("turns-link")
    credential = GitCredential(url=url, username=git_server.username, password=git_server.password)
    workspace = GitWorkspace(url, tmp_path / "cache", credential=credential)
    with workspace:
        workspace.sync("main")
        assert workspace.read("apps/a/values.yaml") == "image:\n  tag: 1.0.0\n"
        assert workspace.list_files("apps") == ["apps/a/values.yaml"]

        work = tmp_path / "work"
        env = git_env()
        subprocess.run(
            ["git", "clone", "-q", git_server.repo_url("turns-link", with_credentials=True), str(work)],
            check=True,
            env=env,
        )
        subprocess.run(["git", "rm", "-rq", "apps/a"], cwd=work, check=True, env=env)
        (work / "apps").mkdir(exist_ok=True)
        os.symlink(outside, work / "apps" / "a")
        subprocess.run(["git", "add", "-A"], cwd=work, check=True, env=env)
        subprocess.run(["git", "commit", "-qm", "a is a link now"], cwd=work, check=True, env=env)
        subprocess.run(["git", "push", "-q", "origin", "HEAD:main"], cwd=work, check=True, env=env)

        workspace.sync("main")
        with pytest.raises(WriteBackError, match="leads outside the repository"):
            workspace.read("apps/a/values.yaml")
        assert workspace.list_files("apps") == []


def test_a_sync_puts_back_every_tracked_file_and_removes_the_rest(git_server: GitHttpServer, tmp_path: Path) -> None:
    """Whatever a killed process left in the clone (edits, staged edits, new files) is gone after a sync."""
    files = {"apps/a/values.yaml": "image:\n  tag: 1.0.0\n", "apps/b/values.yaml": "image:\n  tag: 2.0.0\n"}
    url = git_server.create_repo("dirty", files)
    credential = GitCredential(url=url, username=git_server.username, password=git_server.password)
    workspace = GitWorkspace(url, tmp_path / "cache", credential=credential)
    with workspace:
        workspace.sync("main")
        head = workspace.head()
        workspace.write("apps/a/values.yaml", "image:\n  tag: edited\n")
        workspace.write("apps/b/values.yaml", "image:\n  tag: staged\n")
        subprocess.run(["git", "add", "apps/b/values.yaml"], cwd=workspace.path, check=True, env=git_env())
        workspace.write("apps/c/new.yaml", "left: behind\n")
        (workspace.path / "apps/a/values.yaml").chmod(0o755)

        workspace.sync("main")

        assert workspace.head() == head
        assert {f: workspace.read(f) for f in workspace.list_files("apps")} == files
        status = subprocess.run(
            ["git", "status", "--porcelain", "--ignored"],
            cwd=workspace.path,
            check=True,
            capture_output=True,
            text=True,
            env=git_env(),
        ).stdout
        assert status == ""


def test_a_push_goes_only_on_top_of_the_fetched_tip(git_server: GitHttpServer, tmp_path: Path) -> None:
    """A commit made on the fetched tip is pushed; HEAD moved to a commit that does not descend from
    it (however that happened) is refused before anything is sent."""
    url = git_server.create_repo("lineage", {"a.yaml": "tag: 1\n"})
    credential = GitCredential(url=url, username=git_server.username, password=git_server.password)
    workspace = GitWorkspace(url, tmp_path / "cache", credential=credential)
    with workspace:
        workspace.sync("main")
        workspace.write("a.yaml", "tag: 2\n")
        made = workspace.commit("two", ["a.yaml"])
        workspace.push("main")
        assert git_server.rev_parse("lineage") == made

        workspace.sync("main")
        workspace.write("a.yaml", "tag: 3\n")
        workspace.commit("three", ["a.yaml"])
        orphan = workspace._git("commit-tree", "HEAD^{tree}", "-m", "unrelated").strip()
        workspace._git("reset", "--quiet", "--hard", orphan)
        with pytest.raises(GitError, match="does not descend"):
            workspace.push("main")
        assert git_server.rev_parse("lineage") == made


def test_credentials_go_with_the_first_request_and_never_into_the_clone(
    git_server: GitHttpServer, tmp_path: Path
) -> None:
    """A sync and a push over HTTP send the credentials at once (no 401 first, no askpass needed),
    and nothing of them lands in the clone's files."""
    url = git_server.create_repo("preemptive", {"a.yaml": "tag: 1\n"})
    credential = GitCredential(url=url, username=git_server.username, password=git_server.password)
    workspace = GitWorkspace(url, tmp_path / "cache", credential=credential)
    before = git_server.access_log.read_text().count("/preemptive.git/")
    with workspace:
        workspace.sync("main")
        workspace.write("a.yaml", "tag: 2\n")
        workspace.commit("two", ["a.yaml"])
        workspace.push("main")
    lines = [line for line in git_server.access_log.read_text().splitlines() if "/preemptive.git/" in line]
    assert len(lines) > before
    assert not [line for line in lines if '" 401 ' in line], lines
    assert git_server.read_file("preemptive", "a.yaml") == "tag: 2\n"
    for path in workspace.path.rglob("*"):
        if path.is_file():
            assert git_server.password.encode() not in path.read_bytes(), path
