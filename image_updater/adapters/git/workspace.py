"""A cached clone of one remote repository: sync, read, write, commit and push.

Clones live under a cache folder, one per remote URL, and are updated with ``fetch`` so that a cycle's
Git cost does not grow with the repository's history. A clone is made in a temporary folder and renamed
into place only when complete, so a half-done clone is never mistaken for a good one; a cache that Git
cannot read is removed and cloned again.

Credentials never enter a URL, a config file or an argument list: HTTPS passwords reach Git through a
``GIT_ASKPASS`` helper that reads them from the environment of that one Git process.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import git
from git.exc import GitCommandError, InvalidGitRepositoryError, NoSuchPathError

from image_updater.config import GitCredential, resolve_secret
from image_updater.errors import GitError, PushRejectedError, WriteBackError

_ASKPASS = """#!/bin/sh
case "$1" in
  Username*) printf '%s\\n' "$IMAGE_UPDATER_GIT_USERNAME" ;;
  *) printf '%s\\n' "$IMAGE_UPDATER_GIT_PASSWORD" ;;
esac
"""
_REJECTED = re.compile(r"\[rejected\]|\[remote rejected\]|non-fast-forward|fetch first|failed to push", re.I)
@dataclass(frozen=True)
class Identity:
    """Author and committer of our commits."""

    name: str
    email: str


def redact_url(url: str) -> str:
    """A URL with any userinfo password removed, safe for logs and errors."""
    return re.sub(r"(://[^/@:]+):[^/@]*@", r"\1:***@", url)


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/image-updater/git``, or ``~/.cache/image-updater/git``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "image-updater" / "git"


class GitWorkspace:
    """A cached working clone of ``url``; the caller makes sure one writer uses it at a time."""

    def __init__(
        self,
        url: str,
        cache_root: Path,
        *,
        credential: GitCredential | None = None,
        identity: Identity = Identity("image-updater", "image-updater@example.com"),
    ) -> None:
        self.url = url
        self.credential = credential
        self.identity = identity
        digest = hashlib.sha256(url.encode()).hexdigest()[:16]
        tail = re.sub(r"[^A-Za-z0-9._-]+", "-", url.rstrip("/").rsplit("/", 1)[-1])[:40]
        self.path = cache_root / f"{tail}-{digest}"
        self._cache_root = cache_root
        self._repo: git.Repo | None = None

    # -- environment -------------------------------------------------------------------------------

    @contextmanager
    def _env(self) -> Iterator[dict[str, str]]:
        env = {
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_AUTHOR_NAME": self.identity.name,
            "GIT_AUTHOR_EMAIL": self.identity.email,
            "GIT_COMMITTER_NAME": self.identity.name,
            "GIT_COMMITTER_EMAIL": self.identity.email,
        }
        with tempfile.TemporaryDirectory(prefix="image-updater-askpass-") as tmp:
            cred = self.credential
            if cred is not None and (cred.username or cred.password):
                script = Path(tmp) / "askpass.sh"
                script.write_text(_ASKPASS)
                script.chmod(stat.S_IRWXU)
                env["GIT_ASKPASS"] = str(script)
                env["IMAGE_UPDATER_GIT_USERNAME"] = resolve_secret(cred.username, key="git.credentials") or ""
                env["IMAGE_UPDATER_GIT_PASSWORD"] = resolve_secret(cred.password, key="git.credentials") or ""
            if cred is not None and cred.ssh_key:
                env["GIT_SSH_COMMAND"] = self._ssh_command(cred, Path(tmp))
            yield env

    @staticmethod
    def _ssh_command(cred: GitCredential, tmp: Path) -> str:
        key_text = resolve_secret(cred.ssh_key, key="git.credentials.ssh_key") or ""
        key_file = tmp / "id"
        key_file.write_text(key_text if key_text.endswith("\n") else key_text + "\n")
        key_file.chmod(stat.S_IRUSR | stat.S_IWUSR)
        options = ["-i", str(key_file), "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes"]
        if cred.known_hosts:
            hosts = tmp / "known_hosts"
            hosts.write_text(resolve_secret(cred.known_hosts, key="git.credentials.known_hosts") or "")
            options += ["-o", f"UserKnownHostsFile={hosts}", "-o", "StrictHostKeyChecking=yes"]
        else:
            options += ["-o", "StrictHostKeyChecking=yes"]
        return "ssh " + " ".join(options)

    def _git(self, *args: str) -> str:
        with self._env() as env:
            try:
                return str(self.repo.git.execute(["git", *args], env={**os.environ, **env}))
            except GitCommandError as e:
                raise GitError(self._describe(e, args)) from e

    def _describe(self, error: GitCommandError, args: tuple[str, ...]) -> str:
        output = " ".join(f"{error.stdout or ''} {error.stderr or ''}".split())
        output = output.replace(self.url, redact_url(self.url))
        return f"git {args[0]} failed for {redact_url(self.url)}: {output or error.status}"

    @property
    def repo(self) -> git.Repo:
        if self._repo is None:
            raise GitError(f"{redact_url(self.url)} is not cloned yet")
        return self._repo

    # -- sync ---------------------------------------------------------------------------------------

    def sync(self, branch: str | None) -> str:
        """Clone or fetch, then check out ``branch`` (``None``/``HEAD``: the remote's default).

        The working tree is reset to the remote branch and cleaned: nothing local survives a sync.
        Returns the branch name.
        """
        self._open_or_clone()
        self._git("fetch", "--prune", "--no-tags", "origin")
        name = self._resolve_branch(branch)
        if not self._remote_has(name):
            raise WriteBackError(
                f"branch {name!r} does not exist in {redact_url(self.url)}; "
                "set the git-branch annotation to a branch (targetRevision may be a tag or a commit)"
            )
        self._git("checkout", "--quiet", "-B", name, f"refs/remotes/origin/{name}")
        self._git("reset", "--quiet", "--hard", f"refs/remotes/origin/{name}")
        self._git("clean", "-qfdx")
        return name

    def _open_or_clone(self) -> None:
        if self._repo is not None:
            return
        if self.path.exists():
            try:
                repo = git.Repo(self.path)
                repo.git.execute(["git", "rev-parse", "--git-dir"])
                for lock in (self.path / ".git").glob("*.lock"):
                    lock.unlink()  # left by a process killed mid-operation; we hold the repo lock
                self._repo = repo
                return
            except (InvalidGitRepositoryError, NoSuchPathError, GitCommandError):
                shutil.rmtree(self.path, ignore_errors=True)
        self._cache_root.mkdir(parents=True, exist_ok=True)
        partial = Path(tempfile.mkdtemp(prefix=".partial-", dir=self._cache_root))
        with self._env() as env:
            try:
                git.Repo.clone_from(self.url, partial, env={**os.environ, **env}, no_checkout=True)
            except GitCommandError as e:
                shutil.rmtree(partial, ignore_errors=True)
                stderr = " ".join(str(e.stderr or "").split()).replace(self.url, redact_url(self.url))
                raise GitError(f"git clone failed for {redact_url(self.url)}: {stderr}") from e
        partial.rename(self.path)
        self._repo = git.Repo(self.path)

    def _resolve_branch(self, branch: str | None) -> str:
        if branch and branch != "HEAD":
            return branch
        out = self._git("ls-remote", "--symref", "origin", "HEAD")
        match = re.search(r"^ref: refs/heads/(\S+)\s+HEAD", out, re.M)
        if not match:
            raise GitError(f"cannot tell the default branch of {redact_url(self.url)}")
        return match.group(1)

    def _remote_has(self, branch: str) -> bool:
        try:
            self.repo.git.execute(
                ["git", "rev-parse", "--verify", "--quiet", f"refs/remotes/origin/{branch}"]
            )
            return True
        except GitCommandError:
            return False

    def head(self) -> str:
        """The commit checked out."""
        return self._git("rev-parse", "HEAD").strip()

    # -- files --------------------------------------------------------------------------------------

    def resolve(self, relative: str) -> Path:
        """The absolute path of ``relative`` inside the clone; refuses anything that leads out of it."""
        root = self.path.resolve()
        candidate = (root / relative.lstrip("/")).resolve()
        if candidate != root and root not in candidate.parents:
            raise WriteBackError(f"path {relative!r} leads outside the repository")
        return candidate

    def read(self, relative: str) -> str | None:
        """The text of a file in the working tree, or ``None`` if it does not exist."""
        path = self.resolve(relative)
        if not path.is_file():
            return None
        with path.open(newline="") as handle:
            return handle.read()

    def list_files(self, relative: str) -> list[str]:
        """Files below ``relative`` (or ``relative`` itself if it is a file), repo-relative and sorted.

        ``.git`` is left out, and so is any symlink that leads outside the repository.
        """
        root = self.path.resolve()
        start = self.resolve(relative)
        if start.is_file():
            return [str(start.relative_to(root))]
        if not start.is_dir():
            return []
        found = []
        for path in start.rglob("*"):
            rel = path.relative_to(root)
            if rel.parts and rel.parts[0] == ".git":
                continue
            real = path.resolve()
            if path.is_file() and (real == root or root in real.parents):
                found.append(str(rel))
        return sorted(found)

    def write(self, relative: str, text: str) -> None:
        """Write a file in the working tree, keeping line endings exactly as given."""
        path = self.resolve(relative)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="") as handle:
            handle.write(text)

    # -- commit and push ----------------------------------------------------------------------------

    def commit(self, message: str, paths: list[str]) -> str | None:
        """Commit ``paths`` with ``message``; ``None`` when they hold no change."""
        self._git("add", "--", *paths)
        if not self._git("diff", "--cached", "--name-only").strip():
            return None
        with tempfile.NamedTemporaryFile("w", suffix=".msg", delete=False) as handle:
            handle.write(message)
        try:
            self._git("commit", "--quiet", "--no-verify", "-F", handle.name)
        finally:
            os.unlink(handle.name)
        return self.head()

    def push(self, branch: str) -> None:
        """Push HEAD to ``branch``; never forced. A rejection is :class:`PushRejectedError`."""
        try:
            self._git("push", "--porcelain", "origin", f"HEAD:refs/heads/{branch}")
        except GitError as e:
            if _REJECTED.search(e.message):
                raise PushRejectedError(e.message) from e
            raise
