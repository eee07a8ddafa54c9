"""Small shared helpers for the integration-test harness.

Nothing here imports the product (``image_updater``); the harness stands alone.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import bcrypt

#: Debian package that provides each external binary the harness runs.
DEBIAN_PACKAGES: dict[str, str] = {
    "docker-registry": "docker-registry",
    "nginx": "nginx-light",
    "fcgiwrap": "fcgiwrap",
    "git": "git",
    "git-http-backend": "git",
    "skopeo": "skopeo",
    "htpasswd": "apache2-utils",
}

#: Where git-http-backend lives on Debian.
GIT_HTTP_BACKEND = "/usr/lib/git-core/git-http-backend"


class MissingBinaryError(RuntimeError):
    """A binary the harness needs is not installed; the message names the Debian package."""

    def __init__(self, binary: str, package: str | None = None) -> None:
        self.binary = binary
        self.package = package or DEBIAN_PACKAGES.get(binary, binary)
        super().__init__(
            f"required binary {binary!r} was not found; install the Debian package "
            f"{self.package!r} (apt-get install -y {self.package})"
        )


def find_binary(name: str) -> str:
    """Return the absolute path of ``name`` (a command or an absolute path) or raise MissingBinaryError.

    ``/usr/sbin`` is searched as well, since ``nginx`` and ``fcgiwrap`` live there and it is not
    always on a non-root ``PATH``.
    """
    if name == "git-http-backend":
        if os.access(GIT_HTTP_BACKEND, os.X_OK):
            return GIT_HTTP_BACKEND
        raise MissingBinaryError(name)
    if os.path.isabs(name):
        if os.access(name, os.X_OK):
            return name
        raise MissingBinaryError(os.path.basename(name))
    path = os.environ.get("PATH", "") + os.pathsep + "/usr/sbin:/sbin:/usr/bin:/bin"
    found = shutil.which(name, path=path)
    if found is None:
        raise MissingBinaryError(name)
    return found


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago (the caller must tolerate a race)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def scratch_dir(prefix: str) -> Path:
    """Create a private temporary directory, on tmpfs (``/dev/shm``) when it is available.

    distribution fsyncs every file it writes, so tmpfs makes pushes markedly faster.
    """
    base: str | None = None
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        base = str(shm)
    return Path(tempfile.mkdtemp(prefix=prefix, dir=base))


def write_htpasswd(path: Path, username: str, password: str) -> None:
    """Write an htpasswd file with one bcrypt (``$2y$``) entry, as ``htpasswd -Bbn`` does.

    Cost 4 (the bcrypt minimum) keeps the per-request password check of the registry and nginx cheap.
    """
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()
    # Apache tools write $2y$; both distribution and nginx (via crypt(3)/libxcrypt) accept it.
    hashed = "$2y$" + hashed[4:]
    path.write_text(f"{username}:{hashed}\n")


def wait_until(predicate: Callable[[], bool], *, timeout: float, interval: float = 0.02) -> bool:
    """Poll ``predicate`` until it returns true or ``timeout`` seconds pass; return the last result."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    """Return True when a TCP connection to ``host:port`` succeeds."""
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.2):
        return True
    return False


def stop_process(proc: subprocess.Popen[bytes] | None, *, timeout: float = 5.0) -> None:
    """Stop a child started by the harness: SIGTERM its process group, wait, then SIGKILL.

    Children are started with ``start_new_session=True``, so the group holds only processes the
    harness itself started (for example nginx workers or preforked fcgiwrap children).
    """
    if proc is None or proc.poll() is not None:
        return
    try:
        pgid = os.getpgid(proc.pid)
    except ProcessLookupError:
        pgid = None

    def _signal(sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if pgid is not None and pgid == proc.pid:
                os.killpg(pgid, sig)
            else:
                proc.send_signal(sig)

    _signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        _signal(signal.SIGKILL)
        proc.wait(timeout=timeout)
    else:
        # Reap stragglers of the group (e.g. fcgiwrap children) if the leader left them behind.
        if pgid is not None and pgid == proc.pid:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, signal.SIGKILL)


def tail(path: Path, lines: int = 60) -> str:
    """Return the last ``lines`` lines of a log file (empty string if it does not exist)."""
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return ""
    return "\n".join(text.splitlines()[-lines:])
