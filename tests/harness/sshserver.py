"""A real Git-over-SSH server for integration tests: Debian's ``sshd`` started by hand.

:class:`SshGitServer` runs ``/usr/sbin/sshd -D`` with its own ``sshd_config`` on ``127.0.0.1`` and a free
port, its own ed25519 host key and one authorised client key it generates, public-key authentication
only, for the user running the tests. It serves whatever bare repositories lie in the folder it is
given (the :class:`~tests.harness.gitserver.GitHttpServer`'s repositories, so one repository is reachable
over HTTP and SSH). Nothing of the system's SSH set-up is read or changed, except that sshd needs its
privilege-separation folder ``/run/sshd`` to exist.
"""

from __future__ import annotations

import getpass
import shutil
import subprocess
import time
from pathlib import Path

from tests.harness.util import find_binary, free_port, port_open, scratch_dir, stop_process, tail, wait_until

_SSHD_CONFIG = """\
Port {port}
ListenAddress 127.0.0.1
HostKey {work}/host_ed25519
PidFile {work}/sshd.pid
AuthorizedKeysFile {work}/authorized_keys
AllowUsers {user}
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
UsePAM no
StrictModes no
PrintMotd no
LogLevel VERBOSE
"""


class SshGitServer:
    """sshd on 127.0.0.1 serving the bare repositories under ``root`` over ``ssh://``.

    Attributes: :attr:`port`, :attr:`user`, :attr:`client_key` (the private key text of the one
    authorised key), :attr:`known_hosts` (a ``known_hosts`` line for this server's host key),
    :attr:`startup_seconds`.
    """

    def __init__(self, root: Path, *, start_timeout: float = 10.0) -> None:
        self.sshd = find_binary("/usr/sbin/sshd") if Path("/usr/sbin/sshd").exists() else find_binary("sshd")
        self.keygen = find_binary("ssh-keygen")
        self.root = root
        self.user = getpass.getuser()
        self.workdir = scratch_dir("harness-ssh-")
        self.log = self.workdir / "sshd.log"
        self.port = 0
        self.startup_seconds = 0.0
        self._proc: subprocess.Popen[bytes] | None = None
        try:
            self._keys()
            self._start(start_timeout)
        except BaseException:
            self.close()
            raise

    def _keys(self) -> None:
        for name in ("host_ed25519", "client_ed25519", "stranger_ed25519"):
            subprocess.run(
                [self.keygen, "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(self.workdir / name)],
                check=True,
                capture_output=True,
            )
        (self.workdir / "authorized_keys").write_text((self.workdir / "client_ed25519.pub").read_text())
        self.client_key = (self.workdir / "client_ed25519").read_text()

    def _start(self, timeout: float) -> None:
        t0 = time.monotonic()
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        for _attempt in range(3):
            self.port = free_port()
            config = self.workdir / "sshd_config"
            config.write_text(_SSHD_CONFIG.format(port=self.port, work=self.workdir, user=self.user))
            with self.log.open("ab") as log:
                self._proc = subprocess.Popen(
                    [self.sshd, "-D", "-e", "-f", str(config)],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
            if wait_until(lambda: port_open(self.port) or self._exited(), timeout=timeout) and not self._exited():
                self.startup_seconds = time.monotonic() - t0
                return
            stop_process(self._proc)
            self._proc = None
        raise RuntimeError(f"sshd did not start on port {self.port}:\n{self.log_tail()}")

    def _exited(self) -> bool:
        return self._proc is not None and self._proc.poll() is not None

    @property
    def known_hosts(self) -> str:
        """This server's host key as a ``known_hosts`` line."""
        key = (self.workdir / "host_ed25519.pub").read_text().split()
        return f"[127.0.0.1]:{self.port} {key[0]} {key[1]}\n"

    @property
    def stranger_known_hosts(self) -> str:
        """A ``known_hosts`` line for this address with some other host's key (a man in the middle)."""
        key = (self.workdir / "stranger_ed25519.pub").read_text().split()
        return f"[127.0.0.1]:{self.port} {key[0]} {key[1]}\n"

    def repo_url(self, name: str) -> str:
        """``ssh://user@127.0.0.1:PORT/<root>/NAME.git``."""
        return f"ssh://{self.user}@127.0.0.1:{self.port}{self.root}/{name.removesuffix('.git')}.git"

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of sshd's log."""
        text = tail(self.log, lines)
        return f"--- sshd.log\n{text}" if text else ""

    def close(self) -> None:
        """Stop sshd and delete its keys and configuration."""
        stop_process(self._proc)
        self._proc = None
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> SshGitServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["SshGitServer"]
