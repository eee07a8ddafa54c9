"""Shared pytest fixtures: real registries, a token server, a Git HTTP server and a tags proxy.

Servers are session-scoped and start lazily, only when a test asks for them, so unit tests pay
nothing. A missing external binary makes the requesting test *fail* (never skip) with the name of
the Debian package to install. When a test fails, the tail of each server's log is attached to the
report.

The session servers are shared by every test of the run: give repositories (image and Git) names
unique to the test, e.g. derived from ``request.node.name``. Use ``registry_factory`` for a registry
of your own (webhook ``notifications``, anonymous pulls through a token server, short token lifetimes).
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import pytest

if TYPE_CHECKING:
    from tests.harness.gitserver import GitHttpServer
    from tests.harness.proxy import FaultHook, RegistryProxy
    from tests.harness.registry import RegistryMode, RegistryServer, TokenServer


#: External binaries and the Debian package that provides each.
REQUIRED_PACKAGES: dict[str, str] = {
    "docker-registry": "docker-registry",
    "nginx": "nginx-light",
    "fcgiwrap": "fcgiwrap",
    "git": "git",
    "git-http-backend": "git",
    "skopeo": "skopeo",
}


def require_binary(name: str, package: str | None = None) -> str:
    """Return the path of binary ``name``; fail the test (not skip) naming the Debian package if absent."""
    from tests.harness.util import MissingBinaryError, find_binary

    try:
        return find_binary(name)
    except MissingBinaryError as exc:
        pkg = package or REQUIRED_PACKAGES.get(name, exc.package)
        pytest.fail(
            f"required binary {name!r} is missing: install the Debian package {pkg!r} "
            f"(apt-get install -y {pkg}, or run scripts/setup.sh as root)",
            pytrace=False,
        )


def require_binaries(*names: str) -> None:
    """:func:`require_binary` for each name."""
    for name in names:
        require_binary(name)


_T = TypeVar("_T")


def _start(factory: Callable[[], _T]) -> _T:
    """Run a harness constructor, turning MissingBinaryError into a clear test failure."""
    from tests.harness.util import MissingBinaryError

    try:
        return factory()
    except MissingBinaryError as exc:
        pytest.fail(str(exc), pytrace=False)


# -- registries -------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def registry_anon() -> Iterator[RegistryServer]:
    """docker-registry with no authentication."""
    from tests.harness.registry import RegistryServer

    require_binary("docker-registry")
    server = _start(lambda: RegistryServer("anonymous"))
    yield server
    server.close()


@pytest.fixture(scope="session")
def registry_basic() -> Iterator[RegistryServer]:
    """docker-registry with HTTP basic auth (``.username``/``.password``)."""
    from tests.harness.registry import RegistryServer

    require_binary("docker-registry")
    server = _start(lambda: RegistryServer("basic"))
    yield server
    server.close()


@pytest.fixture(scope="session")
def registry_token() -> Iterator[RegistryServer]:
    """docker-registry with bearer-token auth; its :class:`TokenServer` is ``.token_server``."""
    from tests.harness.registry import RegistryServer, TokenServer

    require_binary("docker-registry")
    tokens = TokenServer()
    try:
        server = _start(lambda: RegistryServer("token", token_server=tokens))
    except BaseException:
        tokens.close()
        raise
    yield server
    server.close()
    tokens.close()


class RegistryFactory(Protocol):
    """Signature of the ``registry_factory`` fixture."""

    def __call__(
        self,
        mode: RegistryMode = "anonymous",
        *,
        notifications: list[str] | None = None,
        allow_anonymous_pull: bool = False,
        token_expires_in: int = 300,
    ) -> RegistryServer: ...


@pytest.fixture
def registry_factory() -> Iterator[RegistryFactory]:
    """Start private registries (e.g. with webhook ``notifications``); stopped after the test."""
    from tests.harness.registry import RegistryServer, TokenServer

    require_binary("docker-registry")
    started: list[RegistryServer | TokenServer] = []

    def make(
        mode: RegistryMode = "anonymous",
        *,
        notifications: list[str] | None = None,
        allow_anonymous_pull: bool = False,
        token_expires_in: int = 300,
    ) -> RegistryServer:
        tokens = None
        if mode == "token":
            tokens = TokenServer(allow_anonymous_pull=allow_anonymous_pull, expires_in=token_expires_in)
            started.append(tokens)
        server = _start(lambda: RegistryServer(mode, token_server=tokens, notifications=notifications))
        started.append(server)
        return server

    yield make
    for item in reversed(started):
        item.close()


# -- git --------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def git_server() -> Iterator[GitHttpServer]:
    """nginx + fcgiwrap + git-http-backend with basic auth (``.url``, ``.username``, ``.password``)."""
    from tests.harness.gitserver import GitHttpServer

    require_binaries("git", "git-http-backend", "nginx", "fcgiwrap")
    server = _start(GitHttpServer)
    yield server
    server.close()


# -- proxy ------------------------------------------------------------------------------------------


class ProxyFactory(Protocol):
    """Signature of the ``tags_proxy`` fixture."""

    def __call__(
        self,
        upstream: RegistryServer | str,
        *,
        page_size: int | None = None,
        delay_s: float = 0.0,
        fault: FaultHook | None = None,
    ) -> RegistryProxy: ...


@pytest.fixture
def tags_proxy() -> Iterator[ProxyFactory]:
    """Factory: ``tags_proxy(registry, page_size=50)`` starts a :class:`RegistryProxy`; closed after the test."""
    from tests.harness.proxy import RegistryProxy

    proxies: list[RegistryProxy] = []

    def make(
        upstream: RegistryServer | str,
        *,
        page_size: int | None = None,
        delay_s: float = 0.0,
        fault: FaultHook | None = None,
    ) -> RegistryProxy:
        proxy = RegistryProxy(upstream, page_size=page_size, delay_s=delay_s, fault=fault)
        proxies.append(proxy)
        return proxy

    yield make
    for proxy in proxies:
        proxy.close()


# -- failure reports --------------------------------------------------------------------------------


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Attach the log tail of every harness server a failed test used to its report."""
    report = yield
    if report.failed:
        funcargs: dict[str, Any] = getattr(item, "funcargs", {})
        for name, value in funcargs.items():
            servers = [value, getattr(value, "token_server", None)]
            for server in servers:
                log_tail = getattr(server, "log_tail", None)
                if callable(log_tail):
                    try:
                        text = log_tail()
                    except Exception as exc:  # a report must never crash on a broken log
                        text = f"(could not read log: {exc})"
                    if text:
                        report.sections.append((f"{name} log ({type(server).__name__})", text))
    return report


# -- kubernetes -------------------------------------------------------------------------------------


if TYPE_CHECKING:
    from pathlib import Path

    from tests.harness.kubetarget import KubeTarget


@pytest.fixture
def kube(tmp_path: Path) -> Iterator[KubeTarget]:
    """The Kubernetes API of one test: a fresh in-process fake API server (real HTTP on 127.0.0.1),
    or the cluster of ``$IMAGE_UPDATER_TEST_KUBECONFIG`` (see docs/kubernetes.md); a
    :class:`tests.harness.kubetarget.KubeTarget`."""
    from tests.harness.kubetarget import open_target

    target = open_target(tmp_path)
    yield target
    target.close()


# -- logging ----------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _reset_structlog() -> Iterator[None]:
    """Every test starts and ends with structlog's defaults, so a test that configured logging to a
    capture stream never leaves later tests writing to a closed file."""
    import structlog

    structlog.reset_defaults()
    yield
    structlog.reset_defaults()


@pytest.fixture
def anyio_backend() -> str:
    """Async tests (``pytest.mark.anyio``) run on asyncio, the event loop the product uses."""
    return "asyncio"
