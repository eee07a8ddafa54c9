"""Registries as the cycle sees them: configuration -> one client per registry, credentials, tags.

``RegistryPool`` implements the cycle's ``TagSource``: it picks the ``registries`` entry for an image
(the longest matching ``prefix``), builds one :class:`RegistryClient` per registry with that entry's
credentials, rate limit and TLS setting, pings each registry once before fanning out (so concurrent
first requests do not all run the token dance), and lists tags.
"""

from __future__ import annotations

import asyncio
import shlex
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from image_updater.adapters.registry.auth import Credentials
from image_updater.adapters.registry.client import RegistryClient
from image_updater.adapters.registry.transport import RequestCounter
from image_updater.adapters.registry.urls import base_url_for
from image_updater.config import RegistrySettings, _Reader, _registry, resolve_secret
from image_updater.errors import ConfigError, RegistryAuthError
from image_updater.logsetup import register_secret
from image_updater.model.ref import ImageName
from image_updater.model.spec import ImageSpec
from image_updater.selection.base import TagInfo

EXT_TIMEOUT_S = 10.0


def load_registries_conf(path: str | Path) -> tuple[RegistrySettings, ...]:
    """Read AIU's ``registries.conf`` (a ``registries:`` list) as it is."""
    try:
        data = YAML(typ="rt").load(Path(path).read_text())
    except OSError as e:
        raise ConfigError(f"cannot read registries file {path}: {e.strerror}") from e
    except YAMLError as e:
        raise ConfigError(f"registries file {path} is not valid YAML: {e}") from e
    reader = _Reader(data, "")
    reader.check_known({"registries"})
    entries = reader.get("registries", list, [])
    return tuple(_registry(_Reader(entry, f"registries[{i}]")) for i, entry in enumerate(entries))


def registry_for(image: ImageName, registries: Sequence[RegistrySettings]) -> RegistrySettings | None:
    """The entry whose ``prefix`` matches the image (the longest wins), else the ``default`` entry."""
    full = str(image)
    matches = [
        r
        for r in registries
        if full == r.prefix or full.startswith(r.prefix.rstrip("/") + "/") or image.registry == r.prefix
    ]
    if matches:
        return max(matches, key=lambda r: len(r.prefix))
    return None


def parse_credentials(
    spec: str | None, *, registry: str, run: Callable[..., Any] = subprocess.run
) -> Credentials | None:
    """Resolve a registry ``credentials`` value to a username and password.

    ``env:VAR`` and ``file:/path`` hold ``user:password``; ``ext:/path`` is a program (run with no shell
    and a timeout) that prints ``user:password``; ``secret:`` and ``pullsecret:`` need the Kubernetes
    source. The secret's text is registered for log redaction.
    """
    if not spec:
        return None
    if spec.startswith(("secret:", "pullsecret:")):
        raise RegistryAuthError(
            f"credentials {spec.split(':', 1)[0]}: read Kubernetes Secrets, which need the kubernetes source",
            registry=registry,
        )
    if spec.startswith("ext:"):
        command = shlex.split(spec[4:])
        try:
            done = run(command, capture_output=True, text=True, timeout=EXT_TIMEOUT_S, check=False, shell=False)
        except (OSError, subprocess.SubprocessError) as e:
            raise RegistryAuthError(f"credentials script {command[0]!r} could not run: {e}", registry=registry) from e
        if done.returncode != 0:
            raise RegistryAuthError(
                f"credentials script {command[0]!r} exited with {done.returncode}", registry=registry
            )
        text = done.stdout.strip()
    else:
        text = resolve_secret(spec, key="registries.credentials") or ""
    user, sep, password = text.partition(":")
    if not sep or not user:
        raise RegistryAuthError("credentials must read as 'username:password'", registry=registry)
    register_secret(password)
    register_secret(text)
    return Credentials(user, password)


class RegistryPool:
    """One client per registry, shared by a cycle (or by the service across cycles)."""

    def __init__(
        self,
        registries: Sequence[RegistrySettings] = (),
        *,
        counter: RequestCounter | None = None,
        clock: Callable[[], float] = time.monotonic,
        client_options: dict[str, Any] | None = None,
    ) -> None:
        self.registries = tuple(registries)
        self.counter = counter or RequestCounter()
        self._clock = clock
        self._clients: dict[str, tuple[RegistryClient, float | None]] = {}
        self._pinged: dict[str, asyncio.Task[None]] = {}
        self._schemes: dict[str, str] = {}
        self._options = client_options or {}

    async def __aenter__(self) -> RegistryPool:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close every client."""
        for client, _ in self._clients.values():
            await client.aclose()
        self._clients.clear()

    def client_for(self, image: ImageName) -> RegistryClient:
        """The client for the image's registry, made on first use (and again once credentials expire)."""
        entry = registry_for(image, self.registries)
        key = entry.prefix if entry else image.registry
        cached = self._clients.get(key)
        if cached is not None and (cached[1] is None or self._clock() < cached[1]):
            return cached[0]
        if entry is not None:
            base = entry.api_url or base_url_for(image.registry)
            creds = parse_credentials(entry.credentials, registry=entry.name or image.registry)
            expires = self._clock() + entry.credsexpire if entry.credsexpire else None
            options: dict[str, Any] = {"verify": not entry.insecure}
            if entry.limit:
                options["rate_limit"] = entry.limit
        else:
            base, creds, expires, options = base_url_for(image.registry), None, None, {}
        client = RegistryClient(
            base,
            registry=image.registry,
            credentials=creds,
            counter=self.counter,
            scheme_memory=self._schemes,
            **{**options, **self._options},
        )
        self._clients[key] = (client, expires)
        self._pinged.pop(key, None)
        return client

    async def _ensure_pinged(self, image: ImageName, client: RegistryClient) -> None:
        entry = registry_for(image, self.registries)
        key = entry.prefix if entry else image.registry
        task = self._pinged.get(key)
        if task is None:
            task = self._pinged[key] = asyncio.ensure_future(client.ping())
        try:
            await asyncio.shield(task)
        except Exception:
            self._pinged.pop(key, None)
            raise

    async def list_tags(self, image: ImageSpec) -> list[TagInfo]:
        """Every tag of the image's repository."""
        client = self.client_for(image.name)
        await self._ensure_pinged(image.name, client)
        return [TagInfo(tag) for tag in await client.list_tags(image.name.repository)]

    async def with_metadata(self, image: ImageSpec, tags: Sequence[TagInfo]) -> list[TagInfo]:
        """Not needed by the semver strategy; the metadata-driven strategies come with their fetcher."""
        raise NotImplementedError("metadata fetching arrives with the newest-build and digest strategies")
