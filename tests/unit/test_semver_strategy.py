"""The semver strategy: what it selects, what it skips and how it explains itself."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from image_updater.errors import ConstraintError
from image_updater.selection.base import Skipped, Strategy, TagInfo
from image_updater.selection.semver import SemverStrategy
from image_updater.selection.versions import parse_version

TAGS = ["latest", "1.0.0", "1.1.0", "1.1.7", "v1.1.9", "1.2.0", "1.10.1", "2.0.0-rc.1", "2.0.0", "sha-abc123"]


def tags(*names: str) -> list[TagInfo]:
    return [TagInfo(name) for name in names]


@pytest.mark.parametrize(
    ("constraint", "available", "selected"),
    [
        pytest.param("~1.1", TAGS, "v1.1.9", id="tilde-minor: highest 1.1.x, v prefix kept"),
        pytest.param("^1.0", TAGS, "1.10.1", id="caret-major: numeric not lexical order (1.10 > 1.2)"),
        pytest.param("1.1", TAGS, "v1.1.9", id="bare partial (nginx:1.1) means 1.1.x"),
        pytest.param("1.1.7", TAGS, "1.1.7", id="bare full version pins exactly"),
        pytest.param(None, TAGS, "2.0.0", id="no constraint: highest of all"),
        pytest.param(None, ["1.0.0", "2.0.0-rc.1"], "1.0.0", id="no constraint: pre-releases left out (AIU: in)"),
        pytest.param("", ["1.0.0", "2.0.0-rc.1"], "1.0.0", id="empty constraint means none"),
        pytest.param(">=0.0.0-0", ["1.0.0", "2.0.0-rc.1"], "2.0.0-rc.1", id="any version, pre-releases included"),
        pytest.param(">=1.0", ["1.0.0", "2.0.0-rc.1"], "1.0.0", id="constraint without pre skips pre-releases"),
        pytest.param(">=2.0.0-0", ["1.0.0", "2.0.0-rc.1"], "2.0.0-rc.1", id="constraint naming a pre admits them"),
        pytest.param("<1.0.0", ["1.0.0", "2.0.0"], None, id="nothing satisfies"),
        pytest.param("~1.2", ["1.2", "v1.2.0", "1.2.0"], "v1.2.0", id="tie in precedence: highest tag string"),
        pytest.param("1.x || >=3", ["1.5.0", "2.9.0", "3.0.1"], "3.0.1", id="or: best of all groups"),
        pytest.param("1.2 - 1.4.5", ["1.1.0", "1.4.5", "1.4.6"], "1.4.5", id="hyphen range inclusive"),
        pytest.param("~1.1", [], None, id="no tags at all"),
    ],
)
def test_selected(constraint: str | None, available: list[str], selected: str | None) -> None:
    assert SemverStrategy(constraint).select(tags(*available)).selected == selected


def test_selection_explains_every_tag() -> None:
    selection = SemverStrategy("~1.1").select(tags(*TAGS))
    assert selection.strategy == "semver"
    assert selection.considered == ("1.1.0", "1.1.7", "v1.1.9")  # best last
    assert selection.reason == "highest of 3 versions satisfying ~1.1"
    assert selection.skipped == (
        Skipped("latest", "not a semantic version"),
        Skipped("1.0.0", "does not satisfy ~1.1"),
        Skipped("1.2.0", "does not satisfy ~1.1"),
        Skipped("1.10.1", "does not satisfy ~1.1"),
        Skipped("2.0.0-rc.1", "pre-release, and the constraint names none"),
        Skipped("2.0.0", "does not satisfy ~1.1"),
        Skipped("sha-abc123", "not a semantic version"),
    )
    assert len(selection.considered) + len(selection.skipped) == len(TAGS)


@pytest.mark.parametrize(
    ("constraint", "available", "reason"),
    [
        pytest.param(
            "~3",
            ["latest", "main", "1.0.0", "2.0.0", "3.0.0-rc.1"],
            "no tag satisfies ~3 (5 tags: 2 not semantic versions, 2 out of range, 1 pre-release)",
            id="nothing qualifies: counts by cause",
        ),
        pytest.param("~3", ["1.0.0"], "no tag satisfies ~3 (1 tag: 1 out of range)", id="nothing qualifies: singular"),
        pytest.param(None, ["latest", "main"], "no tag is a semantic version (2 tags)", id="no versions at all"),
        pytest.param("~1", [], "no tags to choose from", id="empty tag list"),
        pytest.param(
            None, ["1.0.0"], "highest of 1 version (no constraint; pre-releases left out)", id="no constraint"
        ),
        pytest.param(
            None,
            ["2.0.0-rc.1", "latest"],
            "no release version, and no constraint admits pre-releases "
            "(2 tags: 1 not a semantic version, 1 pre-release)",
            id="no constraint, only pre-releases",
        ),
        pytest.param(
            ">=3.0.0-0 <4",
            ["3.0.0-rc.1", "4.1.0-rc.1"],
            "highest of 1 version satisfying >=3.0.0-0 <4",
            id="reason names the constraint as written",
        ),
    ],
)
def test_reason(constraint: str | None, available: list[str], reason: str) -> None:
    assert SemverStrategy(constraint).select(tags(*available)).reason == reason


def test_prerelease_out_of_a_named_range_is_out_of_range() -> None:
    # the constraint names a pre-release, so a pre-release it rejects is simply out of range
    selection = SemverStrategy("~3.0.0-0").select(tags("4.0.0-rc.1"))
    assert selection.skipped == (Skipped("4.0.0-rc.1", "does not satisfy ~3.0.0-0"),)


@pytest.mark.parametrize(
    "constraint",
    [
        pytest.param("latest", id="tag name given as constraint"),
        pytest.param(">=1.0,,<2", id="double comma"),
        pytest.param("~1.2.3-01", id="leading zero in pre-release"),
    ],
)
def test_invalid_constraint_fails_at_construction(constraint: str) -> None:
    with pytest.raises(ConstraintError, match="invalid constraint"):
        SemverStrategy(constraint)


def test_is_a_strategy() -> None:
    strategy: Strategy = SemverStrategy("^1")
    assert strategy.name == "semver"
    assert strategy.needs_metadata is False


def test_order_of_registry_tags_does_not_matter() -> None:
    shuffled = TAGS[:]
    expected = SemverStrategy("^1").select(tags(*TAGS))
    for _ in range(5):
        random.shuffle(shuffled)
        got = SemverStrategy("^1").select(tags(*shuffled))
        assert (got.selected, got.considered) == (expected.selected, expected.considered)


_tag_text = st.one_of(
    st.text("0123456789.v-+rcab", min_size=1, max_size=12),
    st.builds(lambda a, b, c: f"{a}.{b}.{c}", *(st.integers(0, 3) for _ in range(3))),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(_tag_text, max_size=15), st.sampled_from([None, "~1.1", "^0.2", ">=1.0.0-0", "1.x || 3"]))
def test_selection_is_consistent(names: list[str], constraint: str | None) -> None:
    selection = SemverStrategy(constraint).select(tags(*names))
    assert len(selection.considered) + len(selection.skipped) == len(names)
    assert selection.selected == (selection.considered[-1] if selection.considered else None)
    versions = [parse_version(name) for name in selection.considered]
    assert versions == sorted(versions)  # type: ignore[type-var]
    assert selection.reason


@pytest.mark.parametrize(
    ("constraint", "current", "selected", "expected"),
    [
        ("~1.1", "1.1.9", "1.1.5", True),  # running tag vanished from the listing: stay
        ("~1.1", "2.0.0", "1.1.5", False),  # running tag is outside the constraint: follow the constraint
        (None, "1.2.0", "1.10.0", False),  # an upgrade is no downgrade
        (None, "2.0.0-rc.1", "1.9.0", True),  # no constraint: a pre-release run by hand is not replaced by older
        ("~1.1", "latest", "1.1.5", False),  # a non-version current tag is simply replaced
    ],
)
def test_would_downgrade(constraint: str | None, current: str, selected: str, expected: bool) -> None:
    assert SemverStrategy(constraint).would_downgrade(current, selected) is expected
