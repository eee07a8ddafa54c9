"""Selections from a shared :class:`Listing` are the selections made from scratch.

A cycle selects every image of a repository from one ``Listing``, which remembers what was filtered,
extracted and ranked for earlier images (``selection.base.derived``), and strategies explain left-out
tags only when asked (``LazySkips``). Whatever the tags and the order of the images' settings, each
selection must equal the one a fresh, plain list gives: chosen tag, reason, candidates and every
left-out tag with its reason, in listing order.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from image_updater.model.ref import parse_image_name
from image_updater.model.spec import ImageSpec
from image_updater.selection.base import LazySkips, Listing, Selection, Skipped, TagInfo, derived
from image_updater.selection.factory import build_selector
from image_updater.selection.semver import SemverStrategy

FAST = settings(max_examples=200, deadline=None)

#: tags of the kinds a repository lists: versions, short and prefixed ones, pre-releases, builds, junk
TAGS = st.lists(
    st.one_of(
        st.builds(
            lambda v, a, b, c, pre: f"{v}{a}.{b}.{c}{pre}",
            st.sampled_from(["", "v"]),
            st.integers(0, 3),
            st.integers(0, 3),
            st.integers(0, 3),
            st.sampled_from(["", "-rc.1", "-alpha", "+b7"]),
        ),
        st.builds(lambda a, b: f"{a}.{b}", st.integers(0, 3), st.integers(0, 3)),
        st.builds(lambda n: f"build-{n}", st.integers(0, 40)),
        st.sampled_from(["latest", "main", "1.2.3.4", "-bad", "x" * 130, "2024.06.01"]),
    ),
    max_size=40,
)

#: image settings several images of one repository may have
SETTINGS = st.sampled_from(
    [
        {"strategy": "semver", "constraint": None},
        {"strategy": "semver", "constraint": "~1.2"},
        {"strategy": "semver", "constraint": "^2"},
        {"strategy": "semver", "constraint": ">=1.0.0-0 <3"},
        {"strategy": "semver", "constraint": "9.x"},
        {"strategy": "semver", "constraint": "1.x", "ignore_tags": ("*-rc*",)},
        {"strategy": "semver", "constraint": None, "allow_tags": r"regexp:^v"},
        {"strategy": "alphabetical", "allow_tags": r"regexp:^build-\d+$"},
        {"strategy": "alphabetical"},
        {"strategy": "numerical", "allow_tags": r"regexp:^build-(?P<n>\d+)$", "tag_extract": "$n"},
        {"strategy": "numerical"},
        {"strategy": "semver", "allow_tags": r"regexp:^v?(\d+\.\d+)", "tag_extract": "$1"},
        {"strategy": "alphabetical", "constraint": "1.x"},
    ]
)


def _image(options: dict[str, object]) -> ImageSpec:
    name = parse_image_name("registry.example/team/app")
    return ImageSpec(name=name, written_name=str(name), alias="app", **options)  # type: ignore[arg-type]


def _plain(selection: Selection) -> tuple[object, ...]:
    return (
        selection.strategy,
        selection.selected,
        selection.reason,
        selection.considered,
        tuple(selection.skipped),
        selection.digest,
        selection.extra,
    )


@FAST
@given(TAGS, st.lists(SETTINGS, min_size=1, max_size=6))
def test_a_shared_listing_selects_as_a_fresh_list_does(tags: list[str], images: list[dict[str, object]]) -> None:
    infos = [TagInfo(tag) for tag in tags]
    shared = Listing(infos)
    for options in images:
        selector = build_selector(_image(options))
        assert _plain(selector.select(shared)) == _plain(selector.select(list(infos)))


@FAST
@given(TAGS, st.sampled_from([None, "~1.2", ">=1.0.0-0", "9.x", "^0.1"]))
def test_explanations_left_for_later_are_those_worked_out_at_once(tags: list[str], constraint: str | None) -> None:
    strategy = SemverStrategy(constraint)
    infos = Listing([TagInfo(tag) for tag in tags])
    lazy = strategy.select(infos)
    eager = strategy._explained(infos)
    assert _plain(lazy) == _plain(eager)
    # every tag is either a candidate or explained, once
    assert sorted([*lazy.considered, *(s.tag for s in lazy.skipped)]) == sorted(tags)


def test_derived_work_is_done_once_per_listing_and_key() -> None:
    listing = Listing([TagInfo("1.0.0")])
    calls: list[str] = []

    def make(what: str) -> str:
        calls.append(what)
        return what

    assert derived(listing, "a", lambda: make("a")) == "a"
    assert derived(listing, "a", lambda: make("again")) == "a"
    assert derived(listing, "b", lambda: make("b")) == "b"
    assert calls == ["a", "b"]
    plain = [TagInfo("1.0.0")]
    derived(plain, "a", lambda: make("plain"))
    derived(plain, "a", lambda: make("plain"))
    assert calls == ["a", "b", "plain", "plain"]  # a plain list remembers nothing


def test_filtered_tags_are_a_listing_so_ranking_them_is_shared_too() -> None:
    listing = Listing([TagInfo("v1.0.0"), TagInfo("1.1.0"), TagInfo("v2.0.0-rc.1")])
    selector = build_selector(_image({"strategy": "semver", "allow_tags": "regexp:^v"}))
    kept, skipped = selector.filter.apply(listing)
    assert isinstance(kept, Listing)
    assert selector.filter.apply(listing)[0] is kept
    assert [i.tag for i in kept] == ["v1.0.0", "v2.0.0-rc.1"]
    assert skipped == (Skipped("1.1.0", "does not match allow-tags 'regexp:^v'"),)


def test_lazy_skips_explain_once_when_read_and_compare_as_tuples() -> None:
    calls = 0

    def explain() -> list[Skipped]:
        nonlocal calls
        calls += 1
        return [Skipped("a", "why"), Skipped("b", "why not")]

    skips = LazySkips(explain)
    assert calls == 0
    assert skips == (Skipped("a", "why"), Skipped("b", "why not"))
    assert len(skips) == 2 and skips[1].tag == "b" and skips[:1] == (Skipped("a", "why"),)
    assert (Skipped("z", "first"),) + skips == (Skipped("z", "first"), *skips)  # noqa: RUF005 (radd)
    assert skips != (Skipped("a", "why"),)
    assert calls == 1
