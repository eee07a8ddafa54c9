"""The cycle's shared listings and selections: one listing per repository, one selection per settings,
begun at once; a selection nobody awaits fails quietly (its Application failed first)."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Sequence

import pytest

from image_updater.errors import RegistryError
from image_updater.model.ref import parse_image_name
from image_updater.model.spec import ImageSpec
from image_updater.selection.base import TagInfo
from image_updater.selection.factory import build_selector
from image_updater.service.tags import TagCache

pytestmark = pytest.mark.anyio



class Source:
    def __init__(self, fail: bool = False) -> None:
        self.listed: list[str] = []
        self.fail = fail

    async def list_tags(self, image: ImageSpec) -> list[TagInfo]:
        self.listed.append(str(image.name))
        await asyncio.sleep(0)
        if self.fail:
            raise RegistryError("the registry is down", image=image.label)
        return [TagInfo(t) for t in ("1.0.0", "1.1.0", "2.0.0")]

    async def with_metadata(self, image: ImageSpec, tags: Sequence[TagInfo]) -> list[TagInfo]:
        return list(tags)


def _image(constraint: str | None = None, repo: str = "registry.example/team/app") -> ImageSpec:
    name = parse_image_name(repo)
    return ImageSpec(name=name, written_name=str(name), constraint=constraint)


async def test_selections_begun_at_once_list_each_repository_once_and_share_equal_settings() -> None:
    source = Source()
    cache = TagCache(source, limit=10)
    images = [_image("~1"), _image("~1"), _image(), _image(repo="registry.example/team/other")]
    begun = [cache.begin(build_selector(i), i) for i in images]
    assert begun[0] is begun[1] and begun[0] is not begun[2]
    chosen = [await cache.select(build_selector(i), i) for i in images]
    assert [c.selected for c in chosen] == ["1.1.0", "1.1.0", "2.0.0", "2.0.0"]
    assert sorted(source.listed) == ["registry.example/team/app", "registry.example/team/other"]


async def test_a_failed_selection_nobody_awaits_is_not_reported_as_never_retrieved() -> None:
    loop = asyncio.get_running_loop()
    reported: list[dict[str, object]] = []
    loop.set_exception_handler(lambda _, context: reported.append(context))
    cache = TagCache(Source(fail=True), limit=10)
    image = _image()
    future = cache.begin(build_selector(image), image)
    await asyncio.wait({future})
    assert future.done() and not future.cancelled()  # failed; nobody asks for its outcome
    del future
    cache = None  # type: ignore[assignment]
    gc.collect()
    await asyncio.sleep(0)
    assert reported == []
