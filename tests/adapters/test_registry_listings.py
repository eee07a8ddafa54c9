"""RememberedListings: a repository that lists the same tags again gets the same TagInfo values."""

from __future__ import annotations

import httpx
import pytest

from image_updater.adapters.registry.pool import RegistryPool, RememberedListings
from image_updater.config import RegistrySettings
from image_updater.model.ref import ImageName, parse_image_name
from image_updater.model.spec import ImageSpec
from image_updater.selection.base import TagInfo

pytestmark = pytest.mark.anyio

WEB = ImageName("registry.example", "team/web")
API = ImageName("registry.example", "team/api")
DB = ImageName("registry.example", "team/db")



def test_the_same_listing_gives_the_same_values_in_a_new_list() -> None:
    listings = RememberedListings()
    first = listings.tag_infos(WEB, ["1.0", "1.1"])
    again = listings.tag_infos(WEB, ["1.0", "1.1"])
    assert first == again == [TagInfo("1.0"), TagInfo("1.1")]
    assert all(a is b for a, b in zip(first, again, strict=True))
    assert first is not again
    again.append(TagInfo("changed by the caller"))
    assert listings.tag_infos(WEB, ["1.0", "1.1"]) == first


def test_a_changed_listing_keeps_the_values_of_the_tags_it_kept_in_its_own_order() -> None:
    listings = RememberedListings()
    first = listings.tag_infos(WEB, ["1.0", "1.1"])
    changed = listings.tag_infos(WEB, ["1.2", "1.1"])
    assert changed == [TagInfo("1.2"), TagInfo("1.1")]
    assert changed[1] is first[1]
    assert listings.tag_infos(WEB, []) == []
    assert listings.size == 0


def test_repositories_do_not_share_listings() -> None:
    listings = RememberedListings()
    listings.tag_infos(WEB, ["1.0"])
    assert listings.tag_infos(API, ["2.0"]) == [TagInfo("2.0")]
    assert listings.size == 2


def test_at_the_bound_listings_not_asked_for_since_are_dropped_and_busy_ones_stay() -> None:
    listings = RememberedListings(max_tags=4)
    web = listings.tag_infos(WEB, ["1", "2"])
    listings.tag_infos(API, ["1", "2"])
    listings.tag_infos(DB, ["1", "2"])  # over the bound: nothing dropped yet, so not kept
    assert listings.size == 4
    assert listings.tag_infos(WEB, ["1", "2"])[0] is web[0]  # WEB asked for again, API not
    db = listings.tag_infos(DB, ["1", "2"])  # over the bound: API goes, DB is kept
    assert listings.tag_infos(DB, ["1", "2"])[0] is db[0]
    assert listings.tag_infos(WEB, ["1", "2"])[0] is web[0]
    assert listings.size == 4


async def test_the_pool_returns_a_new_list_of_the_same_values_for_an_unchanged_repository() -> None:
    tags = ["1.0", "1.1"]
    registry = RegistrySettings(name="example", prefix="registry.example", api_url="https://registry.example")

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"tags": tags} if request.url.path.endswith("/tags/list") else {})

    image = ImageSpec(name=parse_image_name("registry.example/team/web"), written_name="registry.example/team/web")
    async with RegistryPool([registry], client_options={"transport": httpx.MockTransport(handler)}) as pool:
        first = await pool.list_tags(image)
        again = await pool.list_tags(image)
        tags.append("1.2")
        changed = await pool.list_tags(image)
    assert again == first and again is not first and again[0] is first[0]
    assert changed == [TagInfo("1.0"), TagInfo("1.1"), TagInfo("1.2")]
