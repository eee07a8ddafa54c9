"""Shared pieces of the fault suite: the long-mode switch, a config writer, the real CLI run in-process
with injected registry clocks, a sniffing server for "must receive nothing" checks, and remote checks.

Long mode: ``IMAGE_UPDATER_TEST_LONG=1`` makes :func:`scaled` return the long count (see
docs/reliability.md for both counts of each test).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import textwrap
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

import image_updater.cli
from image_updater.adapters.registry.pool import RegistryPool
from image_updater.cli import main
from tests.harness.gitserver import GitHttpServer, run_git

LONG_ENV = "IMAGE_UPDATER_TEST_LONG"
#: whether the long variants run (``IMAGE_UPDATER_TEST_LONG=1``)
LONG = os.environ.get(LONG_ENV, "").strip().lower() not in ("", "0", "false", "no")
GIT_PASSWORD_ENV = "IU_FAULTS_GIT_PASSWORD"


def scaled(default: int, long: int) -> int:
    """``long`` in long mode, else ``default``."""
    return long if LONG else default


@dataclass
class Config:
    """Applications in a folder and a config file for the real CLI (``image-updater run --once``)."""

    tmp: Path
    git: GitHttpServer
    registries: list[dict[str, str]] = field(default_factory=list)
    #: URL prefixes that get the Git server's credentials (default: the server's own URL)
    git_urls: list[str] = field(default_factory=list)
    extra: str = ""
    log_level: str = "info"

    def __post_init__(self) -> None:
        self.apps = self.tmp / "applications"
        self.apps.mkdir(parents=True, exist_ok=True)
        self.cache = self.tmp / "cache"

    def add_app(self, filename: str, manifest: str) -> None:
        """Write one Application manifest."""
        (self.apps / filename).write_text(manifest)

    def write(self) -> Path:
        """Write the config file; returns its path."""
        urls = self.git_urls or [f"{self.git.url}/"]
        credentials = "".join(
            f"    - url: {url}\n      username: {self.git.username}\n      password: env:{GIT_PASSWORD_ENV}\n"
            for url in urls
        )
        registries = ""
        if self.registries:
            registries = "registries:\n" + "".join(
                "  - " + "\n    ".join(f"{k}: {v}" for k, v in entry.items()) + "\n" for entry in self.registries
            )
        config = self.tmp / "config.yaml"
        config.write_text(
            textwrap.dedent(
                f"""\
                applications:
                  path: {self.apps}
                git:
                  user: image-updater
                  email: bot@example.com
                  cache_dir: {self.cache}
                  credentials:
                """
            )
            + credentials
            + f"log:\n  format: json\n  level: {self.log_level}\n"
            + registries
            + self.extra
        )
        return config

    def env(self) -> dict[str, str]:
        """The environment a CLI subprocess needs (the Git password)."""
        return {**os.environ, GIT_PASSWORD_ENV: self.git.password}


@dataclass
class CliRun:
    """What one in-process CLI run returned and printed."""

    code: int
    stdout: str
    stderr: str
    sleeps: list[float]

    @property
    def logs(self) -> list[dict[str, Any]]:
        """The JSON log lines of stderr."""
        found = []
        for line in self.stderr.splitlines():
            if line.startswith("{"):
                with contextlib.suppress(ValueError):
                    found.append(json.loads(line))
        return found

    def errors(self) -> list[str]:
        """The ``error: ...`` lines the CLI printed."""
        return [line for line in self.stderr.splitlines() if line.startswith("error: ")]


async def _no_sleep(_seconds: float) -> None:
    await asyncio.sleep(0)


def patch_pool(monkeypatch: pytest.MonkeyPatch, **client_options: Any) -> list[float]:
    """Make the CLI's registry clients record the waits they are asked for and return at once (so
    backoffs and ``Retry-After`` are checked, never waited out), with ``client_options`` on top (a short
    ``timeout``, ...). Returns the list the waits are recorded in."""
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        await _no_sleep(seconds)

    options = {"sleep": sleep, **client_options}

    class Pool(RegistryPool):
        def __init__(self, registries: Sequence[Any] = (), **kwargs: Any) -> None:
            super().__init__(registries, client_options=options, **kwargs)

    monkeypatch.setattr(image_updater.cli, "RegistryPool", Pool)
    return sleeps


def run_cli(
    config: Config,
    monkeypatch: pytest.MonkeyPatch,
    *args: str,
    client_options: dict[str, Any] | None = None,
) -> CliRun:
    """``image-updater run --once --config ...`` in-process, output captured; registry clients as
    :func:`patch_pool` makes them."""
    sleeps = patch_pool(monkeypatch, **(client_options or {}))
    monkeypatch.setenv(GIT_PASSWORD_ENV, config.git.password)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["run", "--once", "--config", str(config.write()), *args])
    return CliRun(code, out.getvalue(), err.getvalue(), sleeps)


# -- a server that must receive nothing of value ----------------------------------------------------


@dataclass
class Seen:
    """One request the sniffer received."""

    method: str
    path: str
    headers: dict[str, str]


class Sniffer:
    """An HTTP server on another port of 127.0.0.1 that records every request and answers ``401`` with
    a Basic challenge (bait: a client that sends credentials to any host that asks would send them)."""

    def __init__(self) -> None:
        self.seen: list[Seen] = []
        sniffer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet."""

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                sniffer.seen.append(Seen(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}))
                body = b'{"errors":[{"code":"UNAUTHORIZED","message":"sniffer"}]}'
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="sniffer"')
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_HEAD = do_POST = _handle

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.port = int(self._httpd.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def authorizations(self) -> list[str]:
        """Every ``Authorization`` header received."""
        return [s.headers["authorization"] for s in self.seen if "authorization" in s.headers]

    def close(self) -> None:
        """Stop serving."""
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


@contextlib.contextmanager
def sniffer() -> Iterator[Sniffer]:
    """A :class:`Sniffer` for the length of a ``with`` block."""
    server = Sniffer()
    try:
        yield server
    finally:
        server.close()


# -- remote checks ----------------------------------------------------------------------------------


def fsck(git: GitHttpServer, name: str) -> None:
    """The bare repository is whole: ``git fsck --full`` finds nothing."""
    proc = run_git(["fsck", "--full", "--no-progress"], git_dir=git.bare_path(name), check=False)
    assert proc.returncode == 0, proc.stderr.decode()


def subjects(git: GitHttpServer, name: str, ref: str = "main") -> list[str]:
    """Commit subjects newest first."""
    return [entry.subject for entry in git.log(name, ref)]


def bodies(git: GitHttpServer, name: str, ref: str = "main") -> list[str]:
    """Full commit messages, newest first."""
    proc = run_git(["log", "--format=%B%x00", ref, "--"], git_dir=git.bare_path(name))
    return [m.strip() for m in proc.stdout.decode().split("\0") if m.strip()]
