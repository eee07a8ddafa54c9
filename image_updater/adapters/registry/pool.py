"""Registries as the cycle sees them: configuration -> one client per registry, credentials, tags.

``RegistryPool`` implements the cycle's ``TagSource``. For an image it finds the ``registries`` entry
(:func:`resolve_endpoint`: the longest matching ``prefix``; the ``default: true`` entry for names that
name no registry; ``defaultns`` for single-component names), builds one :class:`RegistryClient` per
registry and credentials (the image's ``pull-secret`` before the entry's ``credentials``), pings each
registry once before fanning out (so concurrent first requests do not all run the token dance), lists
tags, and fills in digests and creation dates through a :class:`MetadataCache` that can outlive the
pool (pass the same cache to the pool of every cycle).
"""

from __future__ import annotations

import asyncio
import platform as host_platform
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from image_updater.adapters.registry.auth import Credentials
from image_updater.adapters.registry.client import RegistryClient
from image_updater.adapters.registry.credentials import CredentialsProvider, resolve_credentials, run_program
from image_updater.adapters.registry.metadata import MetadataCache, MetadataFetcher
from image_updater.adapters.registry.responses import Remembered
from image_updater.adapters.registry.transport import RequestCounter
from image_updater.adapters.registry.urls import base_url_for
from image_updater.config import RegistrySettings, _Reader, _registry
from image_updater.errors import ConfigError
from image_updater.model.ref import DOCKER_HUB, ImageName, names_registry, normalize_registry_host
from image_updater.model.spec import ImageSpec
from image_updater.selection.base import TagInfo
from image_updater.selection.platforms import Platform, parse_platforms

DEFAULT_METADATA_CONCURRENCY = 8
#: the tags whose ``TagInfo`` a pool keeps between listings (some 150 bytes each, with the tag's text)
MAX_REMEMBERED_TAGS = 250_000
MAX_REMEMBERED_ENDPOINTS = 100_000
_MACHINES = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64", "i386": "386", "i686": "386"}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


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
    registries = tuple(_registry(_Reader(entry, f"registries[{i}]")) for i, entry in enumerate(entries))
    check_registries(registries)
    return registries


def check_registries(registries: Sequence[RegistrySettings]) -> None:
    """AIU's rules across entries: prefixes are unique, and at most one entry is the default."""
    seen: set[str] = set()
    for index, entry in enumerate(registries):
        prefix = _normalize_prefix(entry.prefix)
        if prefix in seen:
            raise ConfigError(f"prefix {entry.prefix!r} is used by an earlier entry", key=f"registries[{index}].prefix")
        seen.add(prefix)
    defaults = [r.name or r.prefix for r in registries if r.default]
    if len(defaults) > 1:
        raise ConfigError(f"only one registry may be the default, not {', '.join(defaults)}", key="registries")


def runtime_platform() -> Platform:
    """The platform this process runs on (``linux/amd64``), AIU's default for ``platforms``."""
    machine = host_platform.machine().lower()
    return Platform(host_platform.system().lower() or "linux", _MACHINES.get(machine, machine or "amd64"))


@dataclass(frozen=True)
class Endpoint:
    """Where an image really is: its name on the registry, the entry that applies, the API root."""

    name: ImageName
    entry: RegistrySettings | None
    base_url: str

    @property
    def key(self) -> str:
        """Which client serves it (one per registry entry, or per host when there is no entry)."""
        return self.entry.prefix if self.entry is not None else self.name.registry


def registry_for(image: ImageName, registries: Sequence[RegistrySettings]) -> RegistrySettings | None:
    """The entry whose ``prefix`` matches the image (the longest wins), or ``None``."""
    full = str(image)
    matches = [r for r in registries if _matches(full, _normalize_prefix(r.prefix))]
    return max(matches, key=lambda r: len(_normalize_prefix(r.prefix))) if matches else None


def resolve_endpoint(image: ImageSpec | ImageName, registries: Sequence[RegistrySettings]) -> Endpoint:
    """The registry, repository and entry for an image (see the module docstring)."""
    name = image if isinstance(image, ImageName) else image.name
    written = None if isinstance(image, ImageName) else image.written_name
    default = next((r for r in registries if r.default), None)
    if written is not None and not names_registry(written) and default is not None:
        host = _normalize_prefix(default.prefix).split("/", 1)[0]
        if host != DOCKER_HUB:
            name = ImageName(host, written.strip())
    entry = registry_for(name, registries)
    if entry is not None and entry.defaultns and name.registry != DOCKER_HUB and "/" not in name.repository:
        name = ImageName(name.registry, f"{entry.defaultns}/{name.repository}")
    base = _api_url(entry.api_url) if entry is not None and entry.api_url else base_url_for(name.registry)
    return Endpoint(name=name, entry=entry, base_url=base)


class RegistryPool:
    """One client per registry and credentials, shared by a cycle; metadata cached across cycles.

    ``cache`` is the :class:`MetadataCache` to use (pass one that outlives the pool to keep manifests
    and config blobs between cycles). ``credentials`` reads Kubernetes Secrets for ``secret:`` and
    ``pullsecret:``. ``default_platforms`` apply to images without ``platforms`` (AIU's default: the
    platform the updater runs on). ``rate_limit`` overrides every registry's ``limit``.
    """

    def __init__(
        self,
        registries: Sequence[RegistrySettings] = (),
        *,
        counter: RequestCounter | None = None,
        clock: Callable[[], float] = time.monotonic,
        client_options: dict[str, Any] | None = None,
        cache: MetadataCache | None = None,
        credentials: CredentialsProvider | None = None,
        default_platforms: Sequence[Platform] | None = None,
        metadata_concurrency: int = DEFAULT_METADATA_CONCURRENCY,
        rate_limit: float | None = None,
        run: Callable[..., Any] = run_program,
    ) -> None:
        check_registries(registries)
        self.registries = tuple(registries)
        self.counter = counter or RequestCounter()
        self.cache = cache if cache is not None else MetadataCache(clock=clock)
        self.default_platforms = tuple(default_platforms) if default_platforms is not None else (runtime_platform(),)
        self._clock = clock
        self._credentials = credentials
        self._rate_limit = rate_limit
        self._run = run
        self._clients: dict[tuple[str, str], tuple[RegistryClient, float | None]] = {}
        self._making: dict[tuple[str, str], asyncio.Future[RegistryClient]] = {}
        self._pinged: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._schemes: dict[str, str] = {}
        self._options = client_options or {}
        self._metadata_limit = asyncio.Semaphore(metadata_concurrency)
        self._inflight: dict[str, asyncio.Future[Any]] = {}
        self._listings = RememberedListings()
        self._endpoints: Remembered[tuple[ImageName, str | None], Endpoint] = Remembered(MAX_REMEMBERED_ENDPOINTS)

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

    def endpoint(self, image: ImageSpec | ImageName) -> Endpoint:
        """See :func:`resolve_endpoint` (worked out once per name as written: every cycle asks again)."""
        key = (image, None) if isinstance(image, ImageName) else (image.name, image.written_name)
        found = self._endpoints.get(key)
        if found is None:
            found = resolve_endpoint(image, self.registries)
            self._endpoints.put(key, found, 1)
        return found

    async def client(self, image: ImageSpec | ImageName) -> RegistryClient:
        """The client for the image's registry and credentials, pinged once (unless ``ping: false``)."""
        return await self._client_for(image, self.endpoint(image))

    async def list_tags(self, image: ImageSpec) -> list[TagInfo]:
        """Every tag of the image's repository, in the registry's order."""
        endpoint = self.endpoint(image)
        client = await self._client_for(image, endpoint)
        return self._listings.tag_infos(endpoint.name, await client.list_tags(endpoint.name.repository))

    async def _client_for(self, image: ImageSpec | ImageName, endpoint: Endpoint) -> RegistryClient:
        spec = (image.pull_secret if isinstance(image, ImageSpec) else None) or (
            endpoint.entry.credentials if endpoint.entry is not None else None
        )
        what = "pull-secret" if isinstance(image, ImageSpec) and image.pull_secret else "credentials"
        key = (endpoint.key, spec or "")
        client = await self._client(key, endpoint, spec, what)
        if endpoint.entry is None or endpoint.entry.ping:
            await self._ensure_pinged(key, client)
        return client

    async def with_metadata(self, image: ImageSpec, tags: Sequence[TagInfo]) -> list[TagInfo]:
        """``tags`` with their digest and, except for the ``digest`` strategy, creation date.

        Only the allowed platforms of an index count (``platforms``, else :attr:`default_platforms`).
        A registry whose ``tagsortmode`` says its listing is in push order gets no metadata request for
        ``newest-build``: the listing order stands in for the dates, as in AIU.
        """
        endpoint = self.endpoint(image)
        sort_mode = endpoint.entry.tagsortmode if endpoint.entry is not None else "none"
        if image.strategy != "digest" and sort_mode in ("latest-first", "latest-last"):
            return _dated_by_position(tags, newest_first=sort_mode == "latest-first")
        fetcher = MetadataFetcher(
            await self.client(image),
            registry=endpoint.name.registry,
            repository=endpoint.name.repository,
            cache=self.cache,
            platforms=parse_platforms(image.platforms) or self.default_platforms,
            limit=self._metadata_limit,
            inflight=self._inflight,
        )
        return await fetcher.fill(tags, digest_only=image.strategy == "digest")

    async def _client(self, key: tuple[str, str], endpoint: Endpoint, spec: str | None, what: str) -> RegistryClient:
        cached = self._clients.get(key)
        if cached is not None and (cached[1] is None or self._clock() < cached[1]):
            return cached[0]
        making = self._making.get(key)
        if making is None:
            making = self._making[key] = asyncio.ensure_future(self._make_client(key, endpoint, spec, what))
            making.add_done_callback(lambda _: self._making.pop(key, None))
        return await asyncio.shield(making)

    async def _make_client(
        self, key: tuple[str, str], endpoint: Endpoint, spec: str | None, what: str
    ) -> RegistryClient:
        entry = endpoint.entry
        creds: Credentials | None = await resolve_credentials(
            spec,
            image=endpoint.name,
            api_host=_host_of(endpoint.base_url),
            provider=self._credentials,
            run=self._run,
            what=what,
        )
        options: dict[str, Any] = {}
        expires = None
        if entry is not None:
            options["verify"] = _verify(entry)
            if entry.limit:
                options["rate_limit"] = entry.limit
            if entry.credsexpire and spec:
                expires = self._clock() + entry.credsexpire
        if self._rate_limit:
            options["rate_limit"] = self._rate_limit
        client = RegistryClient(
            endpoint.base_url,
            registry=endpoint.name.registry,
            credentials=creds,
            counter=self.counter,
            scheme_memory=self._schemes,
            **{**options, **self._options},
        )
        old = self._clients.get(key)
        self._clients[key] = (client, expires)
        self._pinged.pop(key, None)
        if old is not None:
            await old[0].aclose()
        return client

    async def _ensure_pinged(self, key: tuple[str, str], client: RegistryClient) -> None:
        task = self._pinged.get(key)
        if task is None:
            task = self._pinged[key] = asyncio.ensure_future(client.ping())
        try:
            await asyncio.shield(task)
        except Exception:
            self._pinged.pop(key, None)
            raise


@dataclass(frozen=True)
class _Listing:
    tags: list[str]
    infos: tuple[TagInfo, ...]


class RememberedListings:
    """The ``TagInfo`` of each repository's last listing, reused when it lists the same tags again.

    The service lists every repository every cycle and a listing seldom changes, while making 300
    frozen ``TagInfo`` costs more CPU than the request that read the tags. ``TagInfo`` is immutable, so
    the values are shared; every call returns a new list. A changed listing reuses the values of the
    tags it kept. At most ``max_tags`` tags are kept (see :class:`Remembered` for which go first).
    """

    def __init__(self, max_tags: int = MAX_REMEMBERED_TAGS) -> None:
        self._listings: Remembered[ImageName, _Listing] = Remembered(max_tags)

    @property
    def size(self) -> int:
        """The tags kept."""
        return self._listings.size

    def tag_infos(self, name: ImageName, tags: list[str]) -> list[TagInfo]:
        """One ``TagInfo`` per tag of ``tags``, the listing of ``name``, in the same order."""
        old = self._listings.get(name)
        if old is not None and old.tags == tags:
            return list(old.infos)
        if old is None:
            infos = [TagInfo(tag) for tag in tags]
        else:
            known = dict(zip(old.tags, old.infos, strict=True))
            infos = [known.get(tag) or TagInfo(tag) for tag in tags]
        self._listings.put(name, _Listing(tags, tuple(infos)), len(tags))
        return infos


def _dated_by_position(tags: Sequence[TagInfo], *, newest_first: bool) -> list[TagInfo]:
    """Stand-in creation dates from the listing order (one second apart) for ``tagsortmode``."""
    count = len(tags)
    return [
        TagInfo(info.tag, created=_EPOCH + timedelta(seconds=count - i if newest_first else i + 1), value=info.value)
        for i, info in enumerate(tags)
    ]


def _matches(full: str, prefix: str) -> bool:
    return bool(prefix) and (full == prefix or full.startswith(prefix + "/"))


def _normalize_prefix(prefix: str) -> str:
    """``Index.Docker.io/team/`` -> ``docker.io/team``: a prefix compared the way image names are."""
    host, _, path = prefix.strip().strip("/").partition("/")
    host = normalize_registry_host(host)
    return f"{host}/{path}" if path else host


def _api_url(api_url: str) -> str:
    """The API root of an ``api_url``; Docker Hub's v1 index URL (``https://index.docker.io/v1/``, as
    often copied from a pull secret) means Docker Hub's v2 API."""
    text = api_url.strip().rstrip("/")
    host = _host_of(text)
    if normalize_registry_host(host) == DOCKER_HUB and text.lower().endswith("/v1"):
        return base_url_for(DOCKER_HUB)
    return text


def _host_of(url: str) -> str:
    rest = url.split("://", 1)[-1]
    return rest.split("/", 1)[0]


def _verify(entry: RegistrySettings) -> bool | ssl.SSLContext:
    """``insecure`` skips verification; ``ca_file`` / ``ca_data`` add CAs to the system's."""
    if entry.insecure:
        return False
    if not entry.ca_file and not entry.ca_data:
        return True
    try:
        context = ssl.create_default_context()
        if entry.ca_file:
            context.load_verify_locations(cafile=entry.ca_file)
        if entry.ca_data:
            context.load_verify_locations(cadata=entry.ca_data)
    except (ssl.SSLError, OSError, ValueError) as e:
        raise ConfigError(f"the CA certificates of registry {entry.name!r} are not usable: {e}") from e
    return context
