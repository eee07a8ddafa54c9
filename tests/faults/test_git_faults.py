"""Git faults against the real Git server, run by the real CLI.

Two Applications share one config repository and are updated together (one commit holds both edits).
After every fault the remote holds either the old state or the whole intended commit, never a part of
it (both files old, or both new; ``git fsck`` clean), the Applications are reported with the cause, and
the next cycle, with the fault gone, makes the update exactly once.
"""

from __future__ import annotations

import re
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from image_updater.adapters.git.workspace import GitWorkspace
from tests.conftest import ProxyFactory
from tests.faults.kit import CliRun, Config, bodies, fsck, run_cli
from tests.faults.netfault import TcpSwitch, tcp_switch
from tests.harness.gitserver import GitHttpServer, run_git
from tests.harness.proxy import Fault, RegistryProxy, RequestInfo
from tests.harness.registry import RegistryServer
from tests.integration.scenario import application, kustomization, push_tags

pytestmark = pytest.mark.integration


class Repo:
    """The config repository of one test, its two Applications and their images."""

    def __init__(
        self,
        name: str,
        registry: RegistryServer,
        git: GitHttpServer,
        tmp: Path,
        base_url: str,
        *,
        branch: str = "main",
    ) -> None:
        self.name, self.git, self.registry, self.branch = f"gf-{name}", git, registry, branch
        self.repos = {app: f"gitfaults/{name}/{app}" for app in ("a", "b")}
        self.images = {app: f"{registry.host}/{repo}" for app, repo in self.repos.items()}
        for repo in self.repos.values():
            push_tags(registry, repo, "1.0.0", "1.1.0")
        git.create_repo(self.name, {f"{app}/kustomization.yaml": self.text(app, "1.0.0") for app in self.repos})
        if branch != "main":
            run_git(["branch", branch, "main"], git_dir=git.bare_path(self.name))
        self.url = f"{base_url}/{self.name}.git"
        self.config = Config(
            tmp,
            git,
            registries=[{"name": "local", "prefix": registry.host, "api_url": registry.url}],
            git_urls=[f"{base_url}/"],
        )
        extra = {"git_branch": branch} if branch != "main" else {}
        for app in self.repos:
            self.config.add_app(f"{app}.yaml", application(app, self.url, app, self.images[app], **extra))

    def text(self, app: str, tag: str) -> str:
        """The kustomization of ``app`` at ``tag``."""
        return kustomization(self.images[app], tag)

    def push(self, tag: str) -> None:
        """A new tag of both images in the registry."""
        for repo in self.repos.values():
            push_tags(self.registry, repo, tag)

    def tags(self) -> dict[str, str | None]:
        """The tag each Application's file holds on the remote (``None``: something else)."""
        found: dict[str, str | None] = {}
        for app in self.repos:
            text = self.git.read_file(self.name, f"{app}/kustomization.yaml", self.branch) or ""
            match = re.search(r"newTag: (\S+)", text)
            found[app] = match.group(1) if match and text == self.text(app, match.group(1)) else None
        return found

    def assert_whole(self, *tags: str) -> None:
        """Both files at the same one of ``tags`` (never one old and one new), and the repository whole."""
        state = self.tags()
        assert state["a"] == state["b"] and state["a"] in tags, state
        fsck(self.git, self.name)

    def commits(self) -> int:
        """Commits on the branch."""
        return self.git.commit_count(self.name, self.branch)

    def update_commits(self, old: str, new: str) -> int:
        """How many commits say they moved both images from ``old`` to ``new``."""
        wanted = [f"{image}: {old} -> {new}" for image in self.images.values()]
        return sum(1 for body in bodies(self.git, self.name, self.branch) if all(w in body for w in wanted))


def _failed_with(run: CliRun, pattern: str) -> None:
    """Exit 1, and one error line for each Application, naming it, with the cause."""
    assert run.code == 1, run.stderr
    for app in ("a", "b"):
        lines = [e for e in run.errors() if e.startswith(f"error: application {app}:")]
        assert len(lines) == 1 and re.search(pattern, lines[0]), run.stderr


@pytest.fixture
def switch(git_server: GitHttpServer) -> Iterator[TcpSwitch]:
    """A TCP switch in front of the Git server."""
    with tcp_switch(git_server.port) as sw:
        yield sw


def test_server_down_at_clone_then_back(
    registry_anon: RegistryServer,
    git_server: GitHttpServer,
    switch: TcpSwitch,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    repo = Repo("down-at-clone", registry_anon, git_server, tmp_path, switch.url)
    switch.down()
    run = run_cli(repo.config, monkeypatch)
    _failed_with(run, r"git clone failed .*(Failed to connect|Connection refused|Could not connect)")
    repo.assert_whole("1.0.0")
    assert repo.commits() == 1
    assert not list(repo.config.cache.glob(".partial-*"))

    switch.up()
    assert run_cli(repo.config, monkeypatch).code == 0
    repo.assert_whole("1.1.0")
    assert repo.commits() == 2 and repo.update_commits("1.0.0", "1.1.0") == 1


def test_server_down_at_fetch_keeps_the_cache_and_then_recovers(
    registry_anon: RegistryServer,
    git_server: GitHttpServer,
    switch: TcpSwitch,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    repo = Repo("down-at-fetch", registry_anon, git_server, tmp_path, switch.url)
    assert run_cli(repo.config, monkeypatch).code == 0
    clone = GitWorkspace(repo.url, repo.config.cache).path
    inode = clone.stat().st_ino
    repo.push("1.2.0")
    switch.down()

    run = run_cli(repo.config, monkeypatch)

    _failed_with(run, r"git fetch failed .*(Failed to connect|Connection refused|Could not connect)")
    repo.assert_whole("1.1.0")
    # regression: a fetch that failed because the server was down deleted the clone cache, so every
    # network blip cost a full clone of the repository
    assert clone.stat().st_ino == inode
    switch.up()
    assert run_cli(repo.config, monkeypatch).code == 0
    repo.assert_whole("1.2.0")
    assert clone.stat().st_ino == inode  # fetched, not cloned again
    assert repo.commits() == 3 and repo.update_commits("1.1.0", "1.2.0") == 1


def test_connection_cut_in_the_middle_of_the_push(
    registry_anon: RegistryServer,
    git_server: GitHttpServer,
    switch: TcpSwitch,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    repo = Repo("cut-mid-push", registry_anon, git_server, tmp_path, switch.url)
    switch.cut = (f"POST /{repo.name}.git/git-receive-pack".encode(), 60)

    run = run_cli(repo.config, monkeypatch)

    assert switch.cuts >= 1
    _failed_with(run, r"git push failed")
    repo.assert_whole("1.0.0")
    assert repo.commits() == 1
    switch.cut = None
    assert run_cli(repo.config, monkeypatch).code == 0
    repo.assert_whole("1.1.0")
    assert repo.commits() == 2 and repo.update_commits("1.0.0", "1.1.0") == 1


def test_push_that_landed_but_whose_answer_was_lost_is_not_made_twice(
    registry_anon: RegistryServer,
    git_server: GitHttpServer,
    tags_proxy: ProxyFactory,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    proxy: RegistryProxy = tags_proxy(git_server.url)
    proxy.paginate, proxy.record_bodies = False, True
    repo = Repo("answer-lost", registry_anon, git_server, tmp_path, proxy.url)
    landed: list[int] = []

    def forward_then_reset(info: RequestInfo) -> Fault | None:
        if info.method != "POST" or not info.path.endswith("/git-receive-pack") or landed:
            return None
        status, _, _ = proxy.forward(info.method, info.path, info.query, list(info.headers.items()), info.body)
        landed.append(status)
        return Fault(reset=True)

    proxy.fault = forward_then_reset
    run = run_cli(repo.config, monkeypatch)

    assert landed == [200]
    repo.assert_whole("1.1.0")  # the server took the whole commit; only its answer was lost
    # git reports the lost answer as "failed to push": the write-back fetches, finds its edits already
    # on the new tip and has nothing left to commit, so no second commit is made
    assert run.code == 0, run.stderr
    assert repo.commits() == 2 and repo.update_commits("1.0.0", "1.1.0") == 1
    proxy.fault = None
    again = run_cli(repo.config, monkeypatch)
    assert again.code == 0, again.stderr
    assert repo.commits() == 2  # and none in the next cycle either
    repo.push("1.2.0")
    assert run_cli(repo.config, monkeypatch).code == 0
    repo.assert_whole("1.2.0")
    assert repo.commits() == 3


def test_a_rejected_push_leaves_the_remote_alone_until_it_is_accepted(
    registry_anon: RegistryServer, git_server: GitHttpServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = Repo("rejected", registry_anon, git_server, tmp_path, git_server.url)
    hook = git_server.bare_path(repo.name) / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'main is protected' >&2\nexit 1\n")
    hook.chmod(hook.stat().st_mode | stat.S_IXUSR)

    run = run_cli(repo.config, monkeypatch)

    _failed_with(run, r"the server declined the push: git push failed .*pre-receive hook declined")
    repo.assert_whole("1.0.0")
    assert repo.commits() == 1
    # regression: a declined push was taken for a conflict and re-applied and pushed 5 more times
    pushes = git_server.access_log.read_text().count(f"POST /{repo.name}.git/git-receive-pack")
    assert pushes == 1
    hook.unlink()
    assert run_cli(repo.config, monkeypatch).code == 0
    repo.assert_whole("1.1.0")
    assert repo.commits() == 2 and repo.update_commits("1.0.0", "1.1.0") == 1


def test_a_damaged_clone_cache_is_repaired(
    registry_anon: RegistryServer, git_server: GitHttpServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = Repo("damaged-cache", registry_anon, git_server, tmp_path, git_server.url)
    assert run_cli(repo.config, monkeypatch).code == 0
    dot_git = GitWorkspace(repo.url, repo.config.cache).path / ".git"
    for lock in ("index.lock", "HEAD.lock", "config.lock", "packed-refs.lock", "refs/heads/main.lock"):
        (dot_git / lock).write_text("")  # left by a process killed in the middle of a Git command
    for path in (dot_git / "objects").rglob("*"):
        if path.is_file():
            path.unlink()  # objects lost
    repo.push("1.2.0")

    run = run_cli(repo.config, monkeypatch)

    assert run.code == 0, run.stderr
    repo.assert_whole("1.2.0")
    assert repo.commits() == 3 and repo.update_commits("1.1.0", "1.2.0") == 1
    check = run_git(["fsck", "--no-progress"], cwd=dot_git.parent, check=False)
    assert check.returncode == 0, check.stderr
    assert not list(dot_git.rglob("*.lock"))


def test_a_branch_deleted_between_cycles_is_reported_and_not_created_again(
    registry_anon: RegistryServer, git_server: GitHttpServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = Repo("branch-gone", registry_anon, git_server, tmp_path, git_server.url, branch="release")
    assert run_cli(repo.config, monkeypatch).code == 0
    tip = git_server.rev_parse(repo.name, "release")
    run_git(["update-ref", "-d", "refs/heads/release"], git_dir=git_server.bare_path(repo.name))
    repo.push("1.2.0")

    run = run_cli(repo.config, monkeypatch)

    _failed_with(run, r"branch 'release' does not exist")
    assert "release" not in git_server.branches(repo.name)
    assert git_server.commit_count(repo.name, "main") == 1
    run_git(["update-ref", "refs/heads/release", str(tip)], git_dir=git_server.bare_path(repo.name))
    assert run_cli(repo.config, monkeypatch).code == 0
    repo.assert_whole("1.2.0")
    assert repo.update_commits("1.1.0", "1.2.0") == 1


def _before_first_push(monkeypatch: pytest.MonkeyPatch, action: Callable[[], None]) -> list[str]:
    """Run ``action`` once, right before the cycle's first push (after its sync, edit and commit)."""
    original = GitWorkspace.push
    done: list[str] = []

    def push(self: GitWorkspace, branch: str) -> None:
        if not done:
            done.append(branch)
            action()
        original(self, branch)

    monkeypatch.setattr(GitWorkspace, "push", push)
    return done


def test_a_branch_deleted_during_the_cycle_is_not_created_again(
    registry_anon: RegistryServer, git_server: GitHttpServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = Repo("branch-gone-mid-cycle", registry_anon, git_server, tmp_path, git_server.url, branch="release")
    bare = git_server.bare_path(repo.name)
    pushed = _before_first_push(monkeypatch, lambda: run_git(["update-ref", "-d", "refs/heads/release"], git_dir=bare))

    run = run_cli(repo.config, monkeypatch)

    assert pushed == ["release"]
    # regression: our push re-created the branch someone had just deleted
    assert "release" not in git_server.branches(repo.name)
    _failed_with(run, r"branch 'release' does not exist")


def test_files_changed_under_us_are_reported_and_left_as_the_remote_has_them(
    registry_anon: RegistryServer, git_server: GitHttpServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = Repo("changed-under-us", registry_anon, git_server, tmp_path, git_server.url)
    pinned = repo.text("a", "1.0.5")
    broken = repo.text("b", "1.0.0") + "  - name: [unclosed\n"

    def someone_pushes() -> None:
        git_server.push_commit(repo.name, {"a/kustomization.yaml": pinned, "b/kustomization.yaml": broken}, "pin a")

    _before_first_push(monkeypatch, someone_pushes)
    run = run_cli(repo.config, monkeypatch)

    assert run.code == 1, run.stderr
    (line_a,) = [e for e in run.errors() if "application a" in e]
    (line_b,) = [e for e in run.errors() if "application b" in e]
    assert "changed under us (now 1.0.5, planned from 1.0.0)" in line_a, line_a
    assert "not valid YAML" in line_b, line_b
    assert git_server.read_file(repo.name, "a/kustomization.yaml") == pinned
    assert git_server.read_file(repo.name, "b/kustomization.yaml") == broken
    assert [entry.subject for entry in git_server.log(repo.name)][:1] == ["pin a"]
    assert repo.commits() == 2
    fsck(git_server, repo.name)

    monkeypatch.undo()
    again = run_cli(repo.config, monkeypatch)  # a moves on from the pinned tag; b stays reported
    assert again.code == 1
    assert git_server.read_file(repo.name, "a/kustomization.yaml") == repo.text("a", "1.1.0")
    assert git_server.read_file(repo.name, "b/kustomization.yaml") == broken
    git_server.push_commit(repo.name, {"b/kustomization.yaml": repo.text("b", "1.0.0")}, "fix b")
    assert run_cli(repo.config, monkeypatch).code == 0
    repo.assert_whole("1.1.0")
