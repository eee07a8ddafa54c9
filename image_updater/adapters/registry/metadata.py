"""Digests and creation dates behind tags, fetched sparingly and cached by digest across cycles.

What it costs (each line is at most one request, counted by kind in the client's ``RequestCounter``):

- a tag never seen: ``GET`` its manifest by tag (the answer gives the digest too), then ``GET`` the
  config blob; for an index, the manifest and config of each *allowed* platform instead;
- a tag seen within ``revalidate_after`` (default one hour): nothing at all, its digest is taken as
  known (tags other than the one the ``digest`` strategy tracks are immutable by convention, as AIU
  also assumes, and a registry webhook can :meth:`MetadataCache.forget_tag` a re-pushed tag at once);
- a tag seen longer ago, and the ``digest`` strategy's tag every time: ``HEAD`` its manifest (the
  ``Docker-Content-Digest``; Docker Hub does not count a ``HEAD`` as a pull); an unchanged digest costs
  nothing more, a new one its manifest and config once.

Manifests and config blobs are content-addressed, so they are kept by digest for as long as the cache
lives (bounded, least recently used first out) and verified against the digest when fetched. Requests
run concurrently, at most ``limit`` at a time, and one digest is fetched once even when many tags
point at it at the same moment.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from image_updater.adapters.registry.client import RegistryClient
from image_updater.adapters.registry.manifest import Manifest, ManifestDescriptor
from image_updater.errors import (
    ConstraintError,
    RegistryAuthError,
    RegistryError,
    RegistryNotFoundError,
    RegistryUnavailableError,
)
from image_updater.selection.base import TagInfo
from image_updater.selection.platforms import Platform, parse_platform, wants_platform

__all__ = ["ImageConfig", "ManifestSummary", "MetadataCache", "MetadataFetcher", "parse_created"]

DEFAULT_REVALIDATE_AFTER_S = 3600.0
DEFAULT_MAX_ENTRIES = 50_000
_FRACTION = re.compile(r"(\.\d{6})\d+")

K = TypeVar("K")
V = TypeVar("V")
TagKey = tuple[str, str, str]


@dataclass(frozen=True)
class ManifestSummary:
    """What selection needs of a manifest: its digest, its config or, for an index, its children."""

    digest: str
    is_index: bool
    config_digest: str | None = None
    children: tuple[ManifestDescriptor, ...] = ()

    @classmethod
    def of(cls, manifest: Manifest) -> ManifestSummary:
        """Summarise a fetched manifest (the raw bytes are not kept)."""
        return cls(manifest.digest, manifest.is_index, manifest.config_digest, manifest.manifests)


@dataclass(frozen=True)
class ImageConfig:
    """The parts of an image config blob that selection reads."""

    created: datetime | None
    platform: Platform | None
    created_text: str | None = None

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> ImageConfig:
        """Read ``created``, ``os``, ``architecture`` and ``variant`` from a config blob's JSON."""
        text = data.get("created")
        created = parse_created(text) if isinstance(text, str) else None
        os_name, arch, variant = data.get("os"), data.get("architecture"), data.get("variant")
        platform = None
        if isinstance(os_name, str) and isinstance(arch, str) and os_name and arch:
            platform = Platform(os_name, arch, variant if isinstance(variant, str) else "")
        return cls(created, platform, text if isinstance(text, str) else None)


def parse_created(text: str) -> datetime | None:
    """An RFC 3339 date as image configs write it (nanoseconds, ``Z``) in UTC; ``None`` if unreadable."""
    value = _FRACTION.sub(r"\1", text.strip()).replace("z", "Z")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


class _Lru(Generic[K, V]):
    def __init__(self, size: int) -> None:
        self.size = size
        self.items: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K) -> V | None:
        value = self.items.get(key)
        if value is not None:
            self.items.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> None:
        self.items[key] = value
        self.items.move_to_end(key)
        while len(self.items) > self.size:
            self.items.popitem(last=False)


class MetadataCache:
    """Tag digests, manifests and config blobs; one instance is meant to outlive many cycles.

    Not bound to an event loop or a client: share it between the pools of successive cycles. ``clock``
    is monotonic seconds; set ``revalidate_after`` to ``None`` to trust a tag's digest for as long as
    the entry lives.
    """

    def __init__(
        self,
        *,
        revalidate_after: float | None = DEFAULT_REVALIDATE_AFTER_S,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.revalidate_after = revalidate_after
        self._clock = clock
        self._tags: _Lru[TagKey, tuple[str, float]] = _Lru(max_entries)
        self._manifests: _Lru[str, ManifestSummary] = _Lru(max_entries)
        self._configs: _Lru[str, ImageConfig] = _Lru(max_entries)

    def known_digest(self, key: TagKey) -> tuple[str, bool] | None:
        """The digest last seen for a tag, and whether it is still fresh; ``None`` if never seen."""
        entry = self._tags.get(key)
        if entry is None:
            return None
        digest, seen = entry
        fresh = self.revalidate_after is None or self._clock() - seen < self.revalidate_after
        return digest, fresh

    def remember_digest(self, key: TagKey, digest: str) -> None:
        """Record that the tag points at ``digest`` now."""
        self._tags.put(key, (digest, self._clock()))

    def forget_tag(self, registry: str, repository: str, tag: str | None = None) -> int:
        """Drop what is known of one tag (or of every tag of a repository); returns how many entries.

        For a registry webhook: the next cycle then asks the registry again for those tags.
        """
        doomed = [
            k for k in self._tags.items if k[0] == registry and k[1] == repository and (tag is None or k[2] == tag)
        ]
        for key in doomed:
            del self._tags.items[key]
        return len(doomed)

    def manifest(self, digest: str) -> ManifestSummary | None:
        """A manifest fetched before, by digest."""
        return self._manifests.get(digest)

    def put_manifest(self, summary: ManifestSummary) -> None:
        """Keep a fetched manifest's summary."""
        self._manifests.put(summary.digest, summary)

    def config(self, digest: str) -> ImageConfig | None:
        """A config blob fetched before, by digest."""
        return self._configs.get(digest)

    def put_config(self, digest: str, config: ImageConfig) -> None:
        """Keep a fetched config's summary."""
        self._configs.put(digest, config)


class _Unusable(Exception):
    """This tag cannot be used; the message is the reason shown to the user."""


class MetadataFetcher:
    """Fills in the digest (and the creation date) of tags of one repository through one client.

    ``registry`` keys the cache (the registry host); ``platforms`` are the allowed ones; ``limit``
    bounds the requests in flight; ``inflight`` (shared by the fetchers of one pool) makes concurrent
    requests for one digest into one.
    """

    def __init__(
        self,
        client: RegistryClient,
        *,
        registry: str,
        repository: str,
        cache: MetadataCache,
        platforms: Sequence[Platform],
        limit: asyncio.Semaphore,
        inflight: dict[str, asyncio.Future[Any]] | None = None,
    ) -> None:
        self.client = client
        self.registry = registry
        self.repository = repository
        self.cache = cache
        self.platforms = tuple(platforms)
        self._limit = limit
        self._inflight: dict[str, asyncio.Future[Any]] = {} if inflight is None else inflight

    async def fill(self, tags: Sequence[TagInfo], *, digest_only: bool = False) -> list[TagInfo]:
        """Every tag with ``digest`` (and ``created`` unless ``digest_only``) or a ``problem``.

        Authentication and availability errors propagate (the image fails); a tag that vanished or
        whose manifest or config is unusable is kept with its ``problem`` for the strategy to skip.
        """
        tasks = [asyncio.ensure_future(self._one(info, digest_only)) for info in tags]
        try:
            return list(await asyncio.gather(*tasks))
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise

    async def _one(self, info: TagInfo, digest_only: bool) -> TagInfo:
        try:
            digest, manifest = await self._resolve(info.tag, always_check=digest_only)
        except RegistryNotFoundError:
            return TagInfo(info.tag, value=info.value, problem="the registry no longer has this tag")
        except (RegistryAuthError, RegistryUnavailableError):
            raise
        except RegistryError as e:
            return TagInfo(info.tag, value=info.value, problem=f"its manifest cannot be read: {e.message}")
        try:
            created = await self._created(manifest, digest_only)
        except _Unusable as e:
            return TagInfo(info.tag, digest=digest, value=info.value, problem=str(e))
        return TagInfo(info.tag, digest=digest, created=created, value=info.value)

    async def _resolve(self, tag: str, *, always_check: bool) -> tuple[str, ManifestSummary]:
        key = (self.registry, self.repository, tag)
        known = self.cache.known_digest(key)
        summary: ManifestSummary | None = None
        if known is not None and known[1] and not always_check:
            digest = known[0]
        elif known is not None:
            digest = await self._request(self.client.head_digest(self.repository, tag))
        else:
            summary = ManifestSummary.of(await self._request(self.client.get_manifest(self.repository, tag)))
            self.cache.put_manifest(summary)
            digest = summary.digest
        self.cache.remember_digest(key, digest)
        return digest, summary or await self._manifest(digest)

    async def _created(self, manifest: ManifestSummary, digest_only: bool) -> datetime | None:
        """The creation date of an image, or of the newest allowed platform of an index."""
        if not manifest.is_index:
            config = await self._image_config(manifest, None)
            return None if digest_only else config.created
        wanted = [child for child in manifest.children if self._wants(child)]
        if not wanted:
            offered = sorted({child.platform or "unknown" for child in manifest.children})
            raise _Unusable(
                f"no image for {self._platform_text()} in the index (it has {', '.join(offered) or 'none'})"
            )
        if digest_only:
            return None
        dates: list[datetime] = []
        for child in wanted:
            try:
                child_manifest = await self._manifest(child.digest)
            except RegistryNotFoundError as e:
                raise _Unusable(f"the index entry for {child.platform} ({child.digest}) is missing") from e
            if child_manifest.is_index:
                continue
            config = await self._image_config(child_manifest, child.platform)
            if config.created is not None:
                dates.append(config.created)
        if not dates:
            raise _Unusable(f"no image for {self._platform_text()} in the index has a creation date")
        return max(dates)

    async def _image_config(self, manifest: ManifestSummary, platform: str | None) -> ImageConfig:
        if manifest.config_digest is None:
            raise _Unusable("the manifest names no config blob")
        config = self.cache.config(manifest.config_digest)
        if config is None:
            try:
                data = await self._once(
                    manifest.config_digest, lambda: self.client.get_config_blob(self.repository, manifest.config_digest)
                )
            except RegistryNotFoundError as e:
                raise _Unusable(f"its config blob {manifest.config_digest} is missing") from e
            config = ImageConfig.parse(data)
            self.cache.put_config(manifest.config_digest, config)
        if platform is None:  # a single-platform image: its config says which platform it is for
            if config.platform is None:
                if self.platforms:
                    raise _Unusable("the image config names no platform")
            elif not wants_platform(self.platforms, config.platform):
                raise _Unusable(f"the image is for {config.platform}, not {self._platform_text()}")
        if config.created is None and config.created_text is not None:
            raise _Unusable(f"the creation date {config.created_text!r} is not an RFC 3339 date")
        return config

    async def _manifest(self, digest: str) -> ManifestSummary:
        cached = self.cache.manifest(digest)
        if cached is not None:
            return cached

        async def fetch() -> ManifestSummary:
            return ManifestSummary.of(await self.client.get_manifest(self.repository, digest))

        summary: ManifestSummary = await self._once(digest, fetch)
        self.cache.put_manifest(summary)
        return summary

    async def _once(self, digest: str, fetch: Callable[[], Awaitable[Any]]) -> Any:
        """Fetch ``digest`` once however many tasks ask for it at the same time."""
        pending = self._inflight.get(digest)
        if pending is None:
            pending = self._inflight[digest] = asyncio.ensure_future(self._request(fetch()))
            pending.add_done_callback(lambda _: self._inflight.pop(digest, None))
        return await asyncio.shield(pending)

    async def _request(self, request: Awaitable[Any]) -> Any:
        async with self._limit:
            return await request

    def _wants(self, child: ManifestDescriptor) -> bool:
        if not self.platforms:
            return True
        if not child.platform:
            return False
        try:
            return wants_platform(self.platforms, parse_platform(child.platform))
        except ConstraintError:
            return False

    def _platform_text(self) -> str:
        return ", ".join(str(p) for p in self.platforms) or "any platform"
