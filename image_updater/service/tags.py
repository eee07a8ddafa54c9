"""Tag listings and selections of one cycle: one request per distinct repository, one selection per
repository and settings, shared by every Application and image that asks the same.

The cycle's own work (reading an Application, making a selection, planning an Application) runs in
pieces, each holding :attr:`TagCache.turn`: the pieces take turns, so the event loop takes in the
listings' responses between any two of them, however many repositories are being planned at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Protocol

from image_updater.model.ref import ImageName
from image_updater.model.spec import ImageSpec
from image_updater.selection.base import Listing, Selection, TagInfo
from image_updater.selection.factory import Selector

__all__ = ["TagCache", "TagSource", "select_tags"]


class TagSource(Protocol):
    """Where tags come from (the registries, in production)."""

    async def list_tags(self, image: ImageSpec) -> list[TagInfo]:
        """Every tag of the image's repository."""
        ...

    async def with_metadata(self, image: ImageSpec, tags: Sequence[TagInfo]) -> list[TagInfo]:
        """``tags`` with ``digest`` and ``created`` filled in, for strategies that need them."""
        ...


class TagCache:
    """Tag listings of one cycle, one request per distinct repository, shared by all users."""

    def __init__(self, source: TagSource, limit: int) -> None:
        self.source = source
        self._tasks: dict[ImageName, asyncio.Task[list[TagInfo]]] = {}
        self._semaphore = asyncio.Semaphore(limit)
        self._selections: dict[tuple[object, ...], asyncio.Future[Selection]] = {}
        #: held for each piece of the cycle's own work (reading one Application, one selection,
        #: planning one Application): handed on in turn, so the event loop takes in tag listings'
        #: responses between any two pieces, however many repositories are being planned
        self.turn = asyncio.Lock()

    async def select(self, selector: Selector, image: ImageSpec) -> Selection:
        """The selection for ``image``: made once for every image of the cycle with the same repository
        and the same selection settings (at scale, many Applications track one image the same way)."""
        return await asyncio.shield(self.begin(selector, image))

    def begin(self, selector: Selector, image: ImageSpec) -> asyncio.Future[Selection]:
        """Start the selection for ``image`` (its listing first) unless it is under way: the cycle
        begins every selection at once, so that each is made as soon as its listing is in, while the
        Git repositories are still being synced."""
        key = (
            image.name,
            image.written_name,
            image.strategy,
            image.constraint,
            image.allow_tags,
            image.ignore_tags,
            image.tag_extract,
            image.platforms,
            image.pull_secret,
        )
        made = self._selections.get(key)
        if made is None:
            made = self._selections[key] = asyncio.ensure_future(self._select(selector, image))
            made.add_done_callback(_retrieved)  # a selection nobody awaits (its Application failed first)
        return made

    async def _select(self, selector: Selector, image: ImageSpec) -> Selection:
        tags = await self.get(image)
        async with self.turn:
            kept, skipped = selector.filter.apply(tags)
        if selector.needs_metadata and kept:
            kept = await self.source.with_metadata(image, kept)
        async with self.turn:
            return selector.choose(kept, skipped)

    def start(self, image: ImageSpec) -> None:
        if image.name not in self._tasks:
            self._tasks[image.name] = asyncio.create_task(self._fetch(image))

    async def _fetch(self, image: ImageSpec) -> list[TagInfo]:
        async with self._semaphore:
            # a Listing: every image selecting from it filters and ranks it once (selection.base.derived)
            return Listing(await self.source.list_tags(image))

    async def get(self, image: ImageSpec) -> list[TagInfo]:
        self.start(image)
        return await asyncio.shield(self._tasks[image.name])

    def cancel(self) -> None:
        for task in [*self._tasks.values(), *self._selections.values()]:
            task.cancel()


async def select_tags(selector: Selector, image: ImageSpec, tags: Sequence[TagInfo], source: TagSource) -> Selection:
    """Filter, fetch metadata for what is left when the strategy needs it, then choose."""
    kept, skipped = selector.filter.apply(tags)
    if selector.needs_metadata and kept:
        kept = await source.with_metadata(image, kept)
    return selector.choose(kept, skipped)


def _retrieved(future: asyncio.Future[Selection]) -> None:
    """Mark the outcome of a selection as seen: whoever awaits it hears of its error, and one nobody
    awaits must not be reported by asyncio as an error never retrieved."""
    if not future.cancelled():
        future.exception()
