"""A real Git smart-HTTP server for integration tests: nginx + fcgiwrap + git-http-backend.

:class:`GitHttpServer` runs Debian's nginx (non-daemon, own config, pid file, temp paths and logs)
and fcgiwrap (several single-process workers sharing one unix socket) serving ``git-http-backend``
with HTTP basic auth (bcrypt htpasswd).
``REMOTE_USER`` is passed to the backend, which is what lets authenticated users push.

The helper methods read "the remote truth" straight from the bare repositories, and can act as a
second client pushing over HTTP (for race tests). Every git command runs with an isolated
environment: no system or global git config is read or written, and author/committer identities
are given through the environment, so it works on a machine with no git identity at all.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.parse
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

import httpx

from tests.harness.util import (
    find_binary,
    free_port,
    scratch_dir,
    stop_process,
    tail,
    wait_until,
    write_htpasswd,
)

#: Identity the harness uses for commits it makes itself.
HARNESS_AUTHOR = ("Harness Seeder", "harness@example.test")
#: Identity of the "other client" in :meth:`GitHttpServer.push_commit`.
OTHER_AUTHOR = ("Other Client", "other-client@example.test")


class LogEntry(NamedTuple):
    """One commit of :meth:`GitHttpServer.log` (newest first)."""

    sha: str
    subject: str
    author_name: str


class GitCommandError(RuntimeError):
    """A git command run by the harness failed; carries its stderr."""

    def __init__(self, args: list[str], returncode: int, stdout: str, stderr: str) -> None:
        self.cmd = args
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        super().__init__(f"git {' '.join(args)} failed ({returncode}):\n{stderr.strip()}")


def git_env(author: tuple[str, str] = HARNESS_AUTHOR, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """An environment for git that ignores system/global config and needs no configured identity.

    Inherited ``GIT_*`` variables (and any askpass helper) are dropped and terminal prompts are
    disabled, so a push without credentials fails at once instead of waiting for input.
    """
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("GIT_") and k not in ("SSH_ASKPASS", "GCM_INTERACTIVE")
    }
    env.update(
        {
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_AUTHOR_NAME": author[0],
            "GIT_AUTHOR_EMAIL": author[1],
            "GIT_COMMITTER_NAME": author[0],
            "GIT_COMMITTER_EMAIL": author[1],
            "LC_ALL": "C",
        }
    )
    if extra:
        env.update(extra)
    return env


def run_git(
    args: list[str],
    *,
    cwd: Path | None = None,
    git_dir: Path | None = None,
    input_bytes: bytes | None = None,
    author: tuple[str, str] = HARNESS_AUTHOR,
    check: bool = True,
    timeout: float = 60.0,
) -> subprocess.CompletedProcess[bytes]:
    """Run ``git ARGS`` in the isolated environment; raise :class:`GitCommandError` on failure."""
    cmd = ["git"]
    if git_dir is not None:
        cmd += ["--git-dir", str(git_dir)]
    proc = subprocess.run(
        cmd + args,
        cwd=cwd,
        input=input_bytes,
        capture_output=True,
        env=git_env(author),
        timeout=timeout,
        check=False,
    )
    if check and proc.returncode != 0:
        raise GitCommandError(
            args, proc.returncode, proc.stdout.decode(errors="replace"), proc.stderr.decode(errors="replace")
        )
    return proc


_NGINX_CONF = """\
{user}worker_processes 1;
daemon off;
master_process on;
pid {work}/nginx.pid;
error_log {work}/nginx-error.log notice;

events {{
    worker_connections 256;
}}

http {{
    access_log {work}/nginx-access.log;
    client_body_temp_path {work}/tmp/client_body;
    proxy_temp_path {work}/tmp/proxy;
    fastcgi_temp_path {work}/tmp/fastcgi;
    uwsgi_temp_path {work}/tmp/uwsgi;
    scgi_temp_path {work}/tmp/scgi;
    client_max_body_size 0;
    server_tokens off;

    map $uri$arg_service $git_auth_realm {{
        default "git";
{anon_read}    }}

    server {{
        listen 127.0.0.1:{port};
        server_name localhost;

        location / {{
            auth_basic $git_auth_realm;
            auth_basic_user_file {work}/htpasswd;

            fastcgi_pass unix:{work}/fcgiwrap.sock;
            fastcgi_read_timeout 120s;
            fastcgi_param SCRIPT_FILENAME {backend};
            fastcgi_param GIT_PROJECT_ROOT {root};
            fastcgi_param GIT_HTTP_EXPORT_ALL "";
            fastcgi_param PATH_INFO $uri;
            fastcgi_param REMOTE_USER $remote_user;
            fastcgi_param REMOTE_ADDR $remote_addr;
            fastcgi_param QUERY_STRING $query_string;
            fastcgi_param REQUEST_METHOD $request_method;
            fastcgi_param REQUEST_URI $request_uri;
            fastcgi_param CONTENT_TYPE $content_type;
            fastcgi_param CONTENT_LENGTH $content_length;
            fastcgi_param HTTP_CONTENT_ENCODING $http_content_encoding;
            fastcgi_param GIT_PROTOCOL $http_git_protocol;
            fastcgi_param SERVER_PROTOCOL $server_protocol;
            fastcgi_param SERVER_NAME $server_name;
            fastcgi_param SERVER_PORT $server_port;
            fastcgi_param GATEWAY_INTERFACE CGI/1.1;
            fastcgi_param HOME {work};
            fastcgi_param PATH /usr/bin:/bin;
        }}
    }}
}}
"""


class GitHttpServer:
    """nginx + fcgiwrap + git-http-backend on 127.0.0.1 with basic auth.

    Attributes: :attr:`url` (``http://127.0.0.1:PORT``), :attr:`username`, :attr:`password`,
    :attr:`root` (folder of bare ``NAME.git`` repositories), :attr:`startup_seconds`,
    :attr:`error_log`, :attr:`access_log`.

    ``anonymous_read=True`` lets clones/fetches through without credentials (pushes still need them).
    """

    def __init__(
        self,
        *,
        username: str = "gitops",
        password: str | None = None,
        anonymous_read: bool = False,
        fcgi_children: int = 4,
        start_timeout: float = 10.0,
    ) -> None:
        self.nginx = find_binary("nginx")
        self.fcgiwrap = find_binary("fcgiwrap")
        self.backend = find_binary("git-http-backend")
        find_binary("git")
        self.username = username
        self.password = password or ("pw-" + os.urandom(6).hex())
        self.anonymous_read = anonymous_read
        self.fcgi_children = fcgi_children
        self.start_timeout = start_timeout
        self.workdir = scratch_dir("harness-git-")
        self.root = self.workdir / "repos"
        self.root.mkdir()
        for sub in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (self.workdir / "tmp" / sub).mkdir(parents=True)
        self.error_log = self.workdir / "nginx-error.log"
        self.access_log = self.workdir / "nginx-access.log"
        self.fcgi_log = self.workdir / "fcgiwrap.log"
        self.socket_path = self.workdir / "fcgiwrap.sock"
        self.port = 0
        self.url = ""
        self.startup_seconds = 0.0
        self._nginx_proc: subprocess.Popen[bytes] | None = None
        self._fcgi_procs: list[subprocess.Popen[bytes]] = []
        write_htpasswd(self.workdir / "htpasswd", self.username, self.password)
        try:
            self._start()
        except BaseException:
            self.close()
            raise

    # -- lifecycle --------------------------------------------------------------------------------

    def _start(self) -> None:
        t0 = time.monotonic()
        # fcgiwrap's own prefork (-c N) leaves its children to be reaped by PID 1 when it stops.
        # Instead the harness binds the socket itself and starts N single-process fcgiwrap children
        # that inherit it as stdin (FastCGI socket activation), so each one is ours to wait for.
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            listener.bind(str(self.socket_path))
            listener.listen(64)
            with self.fcgi_log.open("ab") as log:
                for _ in range(max(1, self.fcgi_children)):
                    self._fcgi_procs.append(
                        subprocess.Popen(
                            [self.fcgiwrap, "-f"],
                            stdin=listener.fileno(),
                            stdout=log,
                            stderr=subprocess.STDOUT,
                            start_new_session=True,
                            env=git_env(),
                        )
                    )
        finally:
            listener.close()
        last_error = ""
        for _attempt in range(3):
            self.port = free_port()
            self.url = f"http://127.0.0.1:{self.port}"
            anon = "        ~git-upload-pack$ off;\n" if self.anonymous_read else ""
            conf = _NGINX_CONF.format(
                user="user root;\n" if os.geteuid() == 0 else "",
                work=self.workdir,
                port=self.port,
                backend=self.backend,
                root=self.root,
                anon_read=anon,
            )
            conf_path = self.workdir / "nginx.conf"
            conf_path.write_text(conf)
            with (self.workdir / "nginx-stderr.log").open("ab") as log:
                self._nginx_proc = subprocess.Popen(
                    [self.nginx, "-p", str(self.workdir), "-c", str(conf_path), "-e", str(self.error_log)],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
            if wait_until(self._ready, timeout=self.start_timeout) and self._nginx_proc.poll() is None:
                self.startup_seconds = time.monotonic() - t0
                return
            last_error = self.log_tail()
            stop_process(self._nginx_proc)
            self._nginx_proc = None
        raise RuntimeError(f"nginx did not become ready on port {self.port}:\n{last_error}")

    def _ready(self) -> bool:
        if self._nginx_proc is not None and self._nginx_proc.poll() is not None:
            return True
        try:
            r = httpx.get(f"{self.url}/", timeout=0.5)
        except httpx.HTTPError:
            return False
        return r.status_code in (401, 404, 403)

    def log_tail(self, lines: int = 40) -> str:
        """Last lines of nginx's error log, nginx's stderr and fcgiwrap's output."""
        parts = []
        for path in (self.error_log, self.workdir / "nginx-stderr.log", self.fcgi_log):
            text = tail(path, lines)
            if text:
                parts.append(f"--- {path.name}\n{text}")
        return "\n".join(parts)

    def close(self) -> None:
        """Stop nginx and fcgiwrap (SIGTERM, wait, SIGKILL) and delete all repositories."""
        stop_process(self._nginx_proc)
        self._nginx_proc = None
        for proc in self._fcgi_procs:
            stop_process(proc)
        self._fcgi_procs.clear()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> GitHttpServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- repositories -----------------------------------------------------------------------------

    def bare_path(self, name: str) -> Path:
        """Filesystem path of the bare repository ``NAME.git``."""
        return self.root / f"{name.removesuffix('.git')}.git"

    def repo_url(self, name: str, with_credentials: bool = False) -> str:
        """HTTP URL of ``NAME.git``, optionally with ``user:password@`` embedded."""
        path = f"{name.removesuffix('.git')}.git"
        if not with_credentials:
            return f"{self.url}/{path}"
        user = urllib.parse.quote(self.username, safe="")
        pw = urllib.parse.quote(self.password, safe="")
        return f"http://{user}:{pw}@127.0.0.1:{self.port}/{path}"

    def create_repo(
        self,
        name: str,
        files: Mapping[str, str | bytes],
        branch: str = "main",
        message: str = "init",
        *,
        author: tuple[str, str] = HARNESS_AUTHOR,
    ) -> str:
        """Create bare ``NAME.git`` with one commit holding ``files`` on ``branch``; return its URL.

        Paths may contain ``/``. The URL has no credentials (see :meth:`repo_url`).
        """
        bare = self.bare_path(name)
        if bare.exists():
            raise FileExistsError(f"{bare} already exists")
        bare.parent.mkdir(parents=True, exist_ok=True)
        run_git(["init", "--quiet", "--bare", f"--initial-branch={branch}", str(bare)])
        if files:
            self._commit_direct(bare, files, branch, message, author)
        return self.repo_url(name)

    def _commit_direct(
        self,
        bare: Path,
        files: Mapping[str, str | bytes],
        branch: str,
        message: str,
        author: tuple[str, str],
    ) -> None:
        """Write one commit into a bare repository with ``git fast-import`` (one subprocess)."""
        now = int(time.time())
        ident = f"{author[0]} <{author[1]}> {now} +0000"
        msg = message.encode()
        stream = bytearray()
        stream += f"commit refs/heads/{branch}\nauthor {ident}\ncommitter {ident}\n".encode()
        stream += f"data {len(msg)}\n".encode() + msg + b"\n"
        for path, content in files.items():
            data = content.encode() if isinstance(content, str) else content
            clean = path.lstrip("/")
            stream += f'M 100644 inline "{_quote_path(clean)}"\n'.encode()
            stream += f"data {len(data)}\n".encode() + data + b"\n"
        stream += b"done\n"
        run_git(["fast-import", "--quiet", "--done"], git_dir=bare, input_bytes=bytes(stream), author=author)

    def set_config(self, name: str, key: str, value: str) -> None:
        """``git config KEY VALUE`` in the bare repository (e.g. ``receive.denyNonFastForwards``)."""
        run_git(["config", key, value], git_dir=self.bare_path(name))

    # -- remote truth -----------------------------------------------------------------------------

    def read_bytes(self, name: str, path: str, ref: str = "main") -> bytes | None:
        """Content of ``path`` at ``ref`` in the bare repository, or None if it does not exist."""
        proc = run_git(["cat-file", "blob", f"{ref}:{path.lstrip('/')}"], git_dir=self.bare_path(name), check=False)
        return proc.stdout if proc.returncode == 0 else None

    def read_file(self, name: str, path: str, ref: str = "main") -> str | None:
        """Like :meth:`read_bytes`, decoded as UTF-8."""
        data = self.read_bytes(name, path, ref)
        return None if data is None else data.decode()

    def list_files(self, name: str, ref: str = "main") -> list[str]:
        """All file paths at ``ref``."""
        proc = run_git(["ls-tree", "-r", "--name-only", "-z", ref], git_dir=self.bare_path(name))
        return [p for p in proc.stdout.decode().split("\0") if p]

    def rev_parse(self, name: str, ref: str = "main") -> str | None:
        """Commit sha of ``ref``, or None if it does not exist."""
        proc = run_git(
            ["rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"], git_dir=self.bare_path(name), check=False
        )
        return proc.stdout.decode().strip() if proc.returncode == 0 else None

    def branches(self, name: str) -> list[str]:
        """Branch names in the bare repository."""
        proc = run_git(["for-each-ref", "--format=%(refname:short)", "refs/heads/"], git_dir=self.bare_path(name))
        return proc.stdout.decode().split()

    def log(self, name: str, ref: str = "main") -> list[LogEntry]:
        """Commits reachable from ``ref``, newest first, as ``(sha, subject, author_name)``."""
        proc = run_git(["log", "--format=%H%x00%s%x00%an", ref, "--"], git_dir=self.bare_path(name))
        entries = []
        for line in proc.stdout.decode().splitlines():
            sha, subject, author_name = line.split("\0")
            entries.append(LogEntry(sha, subject, author_name))
        return entries

    def commit_count(self, name: str, ref: str = "main") -> int:
        """Number of commits reachable from ``ref``."""
        proc = run_git(["rev-list", "--count", ref, "--"], git_dir=self.bare_path(name))
        return int(proc.stdout.decode().strip())

    def commit_message(self, name: str, ref: str = "main") -> str:
        """Full message of the commit at ``ref``."""
        proc = run_git(["log", "-1", "--format=%B", ref, "--"], git_dir=self.bare_path(name))
        return proc.stdout.decode().rstrip("\n")

    # -- another client ---------------------------------------------------------------------------

    def push_commit(
        self,
        name: str,
        files: Mapping[str, str | bytes | None],
        message: str,
        branch: str = "main",
        *,
        author: tuple[str, str] = OTHER_AUTHOR,
        force: bool = False,
    ) -> str:
        """Act as another client: clone over HTTP with credentials, change files, commit, push.

        A ``None`` value deletes that file. Returns the new commit sha; raises
        :class:`GitCommandError` if the push is refused.
        """
        with tempfile.TemporaryDirectory(prefix="harness-client-") as tmp:
            work = Path(tmp) / "clone"
            url = self.repo_url(name, with_credentials=True)
            run_git(["clone", "--quiet", "--branch", branch, "--single-branch", url, str(work)], author=author)
            for path, content in files.items():
                target = work / path.lstrip("/")
                if content is None:
                    run_git(["rm", "--quiet", "--", path.lstrip("/")], cwd=work, author=author)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(content.encode() if isinstance(content, str) else content)
            run_git(["add", "-A"], cwd=work, author=author)
            run_git(["commit", "--quiet", "--allow-empty", "-m", message], cwd=work, author=author)
            push = ["push", "--quiet", "origin", f"HEAD:refs/heads/{branch}"]
            if force:
                push.insert(1, "--force")
            run_git(push, cwd=work, author=author)
            return run_git(["rev-parse", "HEAD"], cwd=work).stdout.decode().strip()


def _quote_path(path: str) -> str:
    """Quote a path for a fast-import ``M`` command (C-style, inside double quotes)."""
    return path.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


__all__ = [
    "HARNESS_AUTHOR",
    "OTHER_AUTHOR",
    "GitCommandError",
    "GitHttpServer",
    "LogEntry",
    "git_env",
    "run_git",
]
