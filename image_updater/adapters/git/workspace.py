"""A cached clone of one remote repository: sync, read, write, commit and push.

Clones live under a cache folder, one per remote URL, and are updated with ``fetch`` so that a cycle's
Git cost does not grow with the repository's history. A clone is made in a temporary folder and renamed
into place only when complete, so a half-done clone is never mistaken for a good one (and the half-done
clones a killed process left are removed). A cache that Git cannot read is cloned again; one that fails
to fetch or check out is replaced by a fresh clone, once, and kept when that clone fails too (the
server is unreachable: an outage must not cost the cache). A lock file next to the clone keeps two
processes sharing the cache folder from using one clone at once.

Files are read and written only inside the working tree: a path that leads out of it (``..``, a symlink
to elsewhere) or into ``.git`` is refused. Credentials and signing keys: see
:mod:`image_updater.adapters.git.credentials`.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import stat
import tempfile
from pathlib import Path
from typing import IO

import git
from git.exc import GitCommandError, InvalidGitRepositoryError, NoSuchPathError

from image_updater.adapters.git.credentials import Identity, Signing, git_process_env
from image_updater.config import GitCredential
from image_updater.errors import EditError, GitError, PushRejectedError, WriteBackError

__all__ = ["GitWorkspace", "Identity", "Signing", "default_cache_dir", "redact_url"]

_REJECTED = re.compile(r"\[rejected\]|\[remote rejected\]|non-fast-forward|fetch first|failed to push", re.I)
#: a server hook that declines the push (a protected branch): a retry on a newer tip cannot help
_DECLINED = re.compile(r"\[remote rejected\][^\n]*hook declined", re.I)
_HOST_KEY = re.compile(
    r"host key verification failed|no \S+ host key is known|remote host identification has changed", re.I
)
DEFAULT_IDENTITY = Identity("image-updater", "image-updater@example.com")
#: largest file read from a clone (the YAML parser refuses far less; this bounds memory before it)
MAX_READ_BYTES = 16 << 20


def redact_url(url: str) -> str:
    """A URL with any userinfo password removed, safe for logs and errors."""
    return re.sub(r"(://[^/@:]+):[^/@]*@", r"\1:***@", url)


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/image-updater/git``, or ``~/.cache/image-updater/git``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "image-updater" / "git"


class GitWorkspace:
    """A cached working clone of ``url``; one writer at a time (see :meth:`acquire`)."""

    def __init__(
        self,
        url: str,
        cache_root: Path,
        *,
        credential: GitCredential | None = None,
        identity: Identity = DEFAULT_IDENTITY,
        signing: Signing | None = None,
    ) -> None:
        self.url = url
        self.credential = credential
        self.identity = identity
        self.signing = signing or Signing()
        digest = hashlib.sha256(url.encode()).hexdigest()[:16]
        tail = re.sub(r"[^A-Za-z0-9._-]+", "-", url.rstrip("/").rsplit("/", 1)[-1])[:40]
        self.path = cache_root / f"{tail}-{digest}"
        self._cache_root = cache_root
        self._repo: git.Repo | None = None
        self._real_root: Path | None = None
        #: real paths of folders in the working tree, by their path as joined (see :meth:`_real_path`);
        #: forgotten whenever Git runs, since a checkout may turn a folder into a symlink
        self._real_dirs: dict[str, str] = {}
        #: remote branches' commits as the last fetch saw them (``None``: absent); forgotten at a fetch
        #: or a push, the two commands that move remote-tracking refs
        self._tips: dict[str, str | None] = {}
        #: the commit :meth:`commit` made and its parent; forgotten whenever Git runs again
        self._made: tuple[str, str | None] | None = None
        self._lock: IO[bytes] | None = None
        #: clones made from scratch by this workspace (a fresh clone, or a damaged cache replaced)
        self.clones = 0

    # -- locking ------------------------------------------------------------------------------------

    def acquire(self) -> None:
        """Take the clone's lock file (blocks while another process holds it)."""
        if self._lock is not None:
            return
        self._cache_root.mkdir(parents=True, exist_ok=True)
        handle = open(f"{self.path}.lock", "ab")  # noqa: SIM115 - held until release()
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        self._lock = handle

    def release(self) -> None:
        """Give the lock back."""
        if self._lock is not None:
            fcntl.flock(self._lock.fileno(), fcntl.LOCK_UN)
            self._lock.close()
            self._lock = None

    def __enter__(self) -> GitWorkspace:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    # -- running git --------------------------------------------------------------------------------

    def _git(self, *args: str, config: bool = False) -> str:
        self._real_dirs.clear()
        self._made = None
        if args and args[0] in ("fetch", "push"):
            self._tips.clear()
        with git_process_env(self.credential, self.identity, self.signing, os.environ, url=self.url) as process:
            options = [item for pair in (("-c", c) for c in process.config) for item in pair] if config else []
            try:
                return str(self.repo.git.execute(["git", *options, *args], env=process.env))
            except GitCommandError as e:
                raise GitError(self._describe(e, args)) from e

    def _describe(self, error: GitCommandError, args: tuple[str, ...]) -> str:
        output = " ".join(f"{error.stdout or ''} {error.stderr or ''}".split())
        output = output.replace(self.url, redact_url(self.url))
        if _HOST_KEY.search(output):
            return (
                f"git {args[0]} failed for {redact_url(self.url)}: the SSH server's host key is not trusted "
                "(it is not in the known_hosts given for this URL); add the server's key to "
                "git.credentials known_hosts"
            )
        return f"git {args[0]} failed for {redact_url(self.url)}: {output or error.status}"

    @property
    def repo(self) -> git.Repo:
        if self._repo is None:
            raise GitError(f"{redact_url(self.url)} is not cloned yet")
        return self._repo

    # -- sync ---------------------------------------------------------------------------------------

    def sync(self, branch: str | None) -> str:
        """Clone or fetch, then check out ``branch`` (``None``/``HEAD``: the remote's default).

        The working tree is reset to the remote branch and cleaned: nothing local survives a sync. A
        cache that fails here is replaced by a fresh clone, once. Returns the branch name.
        """
        fresh = self._open_or_clone()
        try:
            return self._checkout(branch)
        except GitError as failed:
            if fresh:
                raise
            # The cache may be damaged, or the server unreachable. Clone afresh beside the cache and
            # replace it only once the new clone is complete: an outage must not cost the cache.
            try:
                self._replace(self._clone())
            except GitError:
                raise failed from None
        return self._checkout(branch)

    def _checkout(self, branch: str | None) -> str:
        self._git("fetch", "--prune", "--no-tags", "origin")
        name = self._resolve_branch(branch)
        if not self.remote_has(name):
            raise WriteBackError(
                f"branch {name!r} does not exist in {redact_url(self.url)}; "
                "set the git-branch annotation to a branch (targetRevision may be a tag or a commit)"
            )
        # a forced checkout puts the index and every tracked file back, as reset --hard would
        self._git("checkout", "--quiet", "--force", "-B", name, f"refs/remotes/origin/{name}")
        self._git("clean", "-qffdx")
        return name

    def _discard(self) -> None:
        self._repo = None
        shutil.rmtree(self.path, ignore_errors=True)

    def _open_or_clone(self) -> bool:
        """Open the cached clone, or clone; ``True`` when it was cloned now."""
        if self._repo is not None:
            return False
        if self.path.exists():
            try:
                repo = git.Repo(self.path)
                repo.git.execute(["git", "rev-parse", "--verify", "--quiet", "HEAD^{tree}"])
                for lock in (self.path / ".git").glob("**/*.lock"):
                    lock.unlink()  # left by a process killed mid-operation; we hold the clone's lock
                self._repo = repo
                return False
            except (InvalidGitRepositoryError, NoSuchPathError, GitCommandError, ValueError, OSError):
                self._discard()
        self._replace(self._clone())
        return True

    def _clone(self) -> Path:
        """A complete new clone in a temporary folder beside the cache (removed if the clone fails).

        Partial clones of this URL left by a killed process are removed first: we hold the clone's
        lock, so no other process is cloning it.
        """
        self._cache_root.mkdir(parents=True, exist_ok=True)
        prefix = f".partial-{self.path.name}-"
        for stale in self._cache_root.glob(f"{prefix}*"):
            shutil.rmtree(stale, ignore_errors=True)
        partial = Path(tempfile.mkdtemp(prefix=prefix, dir=self._cache_root))
        with git_process_env(self.credential, self.identity, None, os.environ, url=self.url) as process:
            try:
                git.Repo.clone_from(self.url, partial, env=process.env, no_checkout=True)
            except GitCommandError as e:
                shutil.rmtree(partial, ignore_errors=True)
                raise GitError(self._describe(e, ("clone",))) from e
        return partial

    def _replace(self, clone: Path) -> None:
        """Put a complete clone in the cache's place."""
        self._discard()
        self._real_dirs.clear()
        self._tips.clear()
        self._made = None
        clone.rename(self.path)
        self._repo = git.Repo(self.path)
        self.clones += 1

    def _resolve_branch(self, branch: str | None) -> str:
        if branch and branch != "HEAD":
            return branch
        out = self._git("ls-remote", "--symref", "origin", "HEAD")
        match = re.search(r"^ref: refs/heads/(\S+)\s+HEAD", out, re.M)
        if not match:
            raise GitError(f"cannot tell the default branch of {redact_url(self.url)}")
        return match.group(1)

    def remote_has(self, branch: str) -> bool:
        """Whether the last fetch saw ``branch`` on the remote."""
        return self._remote_tip(branch) is not None

    def head(self) -> str:
        """The commit checked out."""
        return self._git("rev-parse", "HEAD").strip()

    # -- files --------------------------------------------------------------------------------------

    def resolve(self, relative: str) -> Path:
        """The absolute path of ``relative`` inside the clone (a leading ``/`` is the repository root);
        refuses anything that leads out of it or into ``.git``."""
        return Path(self._checked(relative))

    def _checked(self, relative: str) -> str:
        """:meth:`resolve` as text."""
        root = str(self._root())
        real = self._real_path(os.path.join(root, relative.lstrip("/")))
        if real != root and not real.startswith(root + os.sep):
            raise WriteBackError(f"path {relative!r} leads outside the repository")
        if real[len(root) + 1 :].split(os.sep, 1)[0] == ".git":
            raise WriteBackError(f"path {relative!r} leads into the repository's .git folder")
        return real

    def _real_path(self, joined: str) -> str:
        """``os.path.realpath(joined)``, with the real paths of folders remembered: a cycle reads
        thousands of files in a few hundred folders, and ``realpath`` looks at every component of
        every path. A folder's real path is its parent's real path and its name, unless it is a symlink."""
        folder, name = os.path.split(joined)
        if name in ("", ".", "..") or folder == joined:
            return os.path.realpath(joined)
        real_folder = self._real_dirs.get(folder)
        if real_folder is None:
            real_folder = self._real_dirs[folder] = self._real_path(folder)
        candidate = os.path.join(real_folder, name)
        try:
            if stat.S_ISLNK(os.lstat(candidate).st_mode):
                return os.path.realpath(candidate)
        except OSError:
            pass  # missing (or unreadable): realpath leaves such a last component as it is
        return candidate

    def canonical(self, relative: str) -> str:
        """``relative`` with symlinks inside the repository followed, repo-relative."""
        return self.resolve(relative).relative_to(self._root()).as_posix()

    def _root(self) -> Path:
        """The clone's folder with symlinks followed (it stays the same: resolved once, not per read)."""
        if self._real_root is None:
            self._real_root = self.path.resolve()
        return self._real_root

    def read(self, relative: str) -> str | None:
        """The text of a file in the working tree, or ``None`` if it does not exist."""
        path = self._checked(relative)
        try:
            info = os.stat(path)  # one stat: a cycle reads thousands of files
        except (FileNotFoundError, NotADirectoryError):
            return None
        if stat.S_ISDIR(info.st_mode):
            raise WriteBackError(f"{relative!r} is a folder, not a file")
        if not stat.S_ISREG(info.st_mode):
            return None
        size = info.st_size
        if size > MAX_READ_BYTES:
            raise EditError(f"refusing to read {size} bytes (the limit is {MAX_READ_BYTES})", path=relative)
        try:
            with open(path, newline="", encoding="utf-8") as handle:
                return handle.read(MAX_READ_BYTES + 1)
        except UnicodeDecodeError:
            raise WriteBackError(f"{relative!r} is not UTF-8 text") from None

    def list_files(self, relative: str) -> list[str]:
        """Files below ``relative`` (or ``relative`` itself if it is a file), repo-relative and sorted.

        ``.git`` is left out, and so is any symlink that leads outside the repository.
        """
        root = self._root()
        start = self.resolve(relative)
        if start.is_file():
            return [str(start.relative_to(root))]
        if not start.is_dir():
            return []
        top = str(root)
        prefix = top + os.sep
        found = []
        # os.walk does not enter symlinked folders (as Path.rglob does not), and lists symlinks to files
        # with the files: those are kept when they lead to a file inside the repository
        for folder, folders, files in os.walk(start):
            if folder == top:
                folders[:] = [f for f in folders if f != ".git"]
                files = [f for f in files if f != ".git"]
            for name in files:
                path = os.path.join(folder, name)
                real = self._real_path(path)
                if (real == top or real.startswith(prefix)) and os.path.isfile(real):
                    found.append(path[len(prefix) :].replace(os.sep, "/"))
        return sorted(found)

    def write(self, relative: str, text: str) -> None:
        """Write a file in the working tree, keeping line endings exactly as given."""
        path = self.resolve(relative)  # symlinks inside the repository are followed to their target
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("w", newline="", encoding="utf-8") as handle:
                handle.write(text)
        except OSError as e:
            raise WriteBackError(f"cannot write {relative!r}: {e.strerror}") from e

    # -- commit and push ----------------------------------------------------------------------------

    def commit(self, message: str, paths: list[str]) -> str | None:
        """Commit ``paths`` with ``message`` (signed and signed off as configured); ``None`` when they
        hold no change."""
        self._git("add", "--", *paths)
        if not self._git("diff", "--cached", "--name-only").strip():
            return None
        with tempfile.NamedTemporaryFile("w", suffix=".msg", delete=False) as handle:
            handle.write(message)
        args = ["commit", "--quiet", "--no-verify", "-F", handle.name]
        if self.signing.sign_off:
            args.append("--signoff")
        if self.signing.key:
            args.append("--gpg-sign")
        try:
            self._git(*args, config=True)
        finally:
            os.unlink(handle.name)
        try:  # the commit and its parent in one process: push() need not ask whether HEAD descends
            made, _, parent = self._git("rev-parse", "HEAD", "HEAD^").strip().partition("\n")
        except GitError:  # a first commit has no parent
            return self.head()
        self._made = (made, parent.strip() or None)
        return made

    def push(self, branch: str) -> None:
        """Push HEAD to ``branch``; never forced. A rejection that a push on a newer tip may overcome
        (someone pushed meanwhile, or the push's answer was lost) is :class:`PushRejectedError`; one a
        server hook declined (a protected branch) is a plain :class:`GitError`.

        The push is conditional on the branch being where our last fetch saw it (absent, for a branch
        we create): the remote compares and updates the ref atomically. A plain push would re-create a
        branch that someone deleted after our fetch. HEAD always descends from that tip (it is checked
        here: at once when :meth:`commit` made HEAD on it, else by Git), so the push is a fast-forward;
        the lease never forces anything.
        """
        expected = self._remote_tip(branch)
        made_on_tip = self._made is not None and expected is not None and self._made[1] == expected
        if expected is not None and not made_on_tip and not self._descends_from(expected):
            raise GitError(f"refusing to push to {branch!r}: HEAD does not descend from the remote branch")
        lease = f"--force-with-lease=refs/heads/{branch}:{expected or ''}"
        try:
            self._git("push", "--porcelain", lease, "origin", f"HEAD:refs/heads/{branch}")
        except GitError as e:
            if _DECLINED.search(e.message):
                raise GitError(f"the server declined the push: {e.message}") from e
            if _REJECTED.search(e.message):
                raise PushRejectedError(e.message) from e
            raise

    def _remote_tip(self, branch: str) -> str | None:
        """The commit of ``branch`` on the remote at our last fetch, or ``None`` if it had none."""
        if branch not in self._tips:
            try:
                ref = f"refs/remotes/origin/{branch}"
                out = self.repo.git.execute(["git", "rev-parse", "--verify", "--quiet", ref])
            except GitCommandError:
                out = ""
            self._tips[branch] = str(out).strip() or None
        return self._tips[branch]

    def _descends_from(self, commit: str) -> bool:
        try:
            self.repo.git.execute(["git", "merge-base", "--is-ancestor", commit, "HEAD"])
        except GitCommandError:
            return False
        return True
