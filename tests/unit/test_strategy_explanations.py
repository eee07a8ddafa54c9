"""How each strategy explains itself, and when a selector refuses to move backwards."""

from __future__ import annotations

import datetime as dt

import pytest

from image_updater.model.ref import parse_image_name
from image_updater.model.spec import ImageSpec
from image_updater.selection.base import Skipped, TagInfo
from image_updater.selection.digest import DigestStrategy
from image_updater.selection.factory import build_selector
from image_updater.selection.newest_build import NO_CREATED_DATE, NewestBuildStrategy
from image_updater.selection.numerical import NumericalStrategy

DAY = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
SHA = "sha256:" + "c" * 64


def image(**fields: object) -> ImageSpec:
    return ImageSpec(name=parse_image_name("r.io/a/b"), written_name="r.io/a/b", **fields)  # type: ignore[arg-type]


def test_newest_build_reports_the_date_the_digest_and_each_unusable_tag() -> None:
    tags = [
        TagInfo("old", digest="sha256:" + "1" * 64, created=DAY),
        TagInfo("new", digest=SHA, created=DAY + dt.timedelta(hours=5)),
        TagInfo(
            "arm", digest="sha256:" + "2" * 64, problem="no image for linux/amd64 in the index (it has linux/arm64)"
        ),
        TagInfo("undated", digest="sha256:" + "3" * 64),
    ]
    selection = NewestBuildStrategy().select(tags)
    assert (selection.selected, selection.digest) == ("new", SHA)
    assert selection.reason == "newest of 2 images by creation date (built 2026-03-01T05:00:00Z)"
    assert selection.considered == ("old", "new")
    assert selection.skipped == (
        Skipped("arm", "no image for linux/amd64 in the index (it has linux/arm64)"),
        Skipped("undated", NO_CREATED_DATE),
    )


def test_newest_build_with_nothing_usable_says_so() -> None:
    selection = NewestBuildStrategy().select([TagInfo("a", problem="the registry no longer has this tag")])
    assert selection.selected is None and selection.reason == "no tag has a usable creation date (1 tag)"


@pytest.mark.parametrize(
    ("tags", "reason"),
    [
        ([TagInfo("latest", digest=SHA)], f"tag 'latest' points at {SHA}"),
        ([TagInfo("other", digest=SHA)], "tag 'latest' is not in the registry (or not allowed by the filters)"),
        (
            [TagInfo("latest", problem="the image is for linux/arm64, not linux/amd64")],
            "tag 'latest' cannot be used: the image is for linux/arm64, not linux/amd64",
        ),
    ],
)
def test_digest_reasons(tags: list[TagInfo], reason: str) -> None:
    assert DigestStrategy("latest").select(tags).reason == reason


def test_numerical_reasons() -> None:
    assert NumericalStrategy().select([TagInfo("x")]).reason == "no tag is a number (1 tag)"
    assert NumericalStrategy().select([TagInfo("1"), TagInfo("2")]).reason == "highest of 2 numbers"


def test_a_constraint_without_effect_is_mentioned_in_the_reason() -> None:
    selection = build_selector(image(strategy="alphabetical", constraint="1.x")).select([TagInfo("a")])
    assert (
        selection.reason
        == "last of 1 tag in byte-wise order; the image-list constraint '1.x' has no effect on alphabetical"
    )


def test_extraction_skips_come_before_strategy_skips() -> None:
    selector = build_selector(
        image(strategy="numerical", allow_tags=r"regexp:^b(\d*)(x?)$", tag_extract="$1", ignore_tags=("bz*",))
    )
    selection = selector.select([TagInfo("a1"), TagInfo("b"), TagInfo("b7"), TagInfo("bx")])
    assert [s.tag for s in selection.skipped] == ["a1", "b", "bx"]
    assert selection.selected == "b7"


@pytest.mark.parametrize(
    ("fields", "current", "selected", "expected"),
    [
        ({"strategy": "alphabetical"}, "2024-09-01", "2024-08-01", True),  # the running tag vanished: stay
        ({"strategy": "alphabetical", "ignore_tags": ("2024-09-*",)}, "2024-09-01", "2024-08-01", False),
        ({"strategy": "alphabetical", "allow_tags": "regexp:^2024-08"}, "2024-09-01", "2024-08-01", False),
        ({"strategy": "numerical"}, "120", "99", True),
        ({"strategy": "numerical"}, "latest", "99", False),
        (
            {"strategy": "numerical", "allow_tags": r"regexp:^main-[0-9a-f]+-(\d+)$", "tag_extract": "$1"},
            "main-aaa-200",
            "main-bbb-100",
            True,
        ),
        ({"strategy": "newest-build"}, "abc1234", "def5678", False),
        ({"strategy": "digest", "constraint": "latest"}, f"latest@{SHA}", "latest@sha256:" + "d" * 64, False),
        ({"constraint": "~1.2"}, "1.2.9", "1.2.3", True),
    ],
)
def test_would_downgrade(fields: dict[str, object], current: str, selected: str, expected: bool) -> None:
    assert build_selector(image(**fields)).would_downgrade(current, selected) is expected


def test_build_errors_carry_the_image() -> None:
    with pytest.raises(Exception, match=r"image r\.io/a/b: allow-tags"):
        build_selector(image(allow_tags="regexp:("))
