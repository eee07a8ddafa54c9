"""Version parsing and ordering; cases marked "Masterminds" come from its version_test.go."""

from __future__ import annotations

import itertools
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from image_updater.selection.versions import Version, parse_version

FAST = settings(max_examples=200, deadline=None)


@pytest.mark.parametrize(
    ("text", "parts"),
    [
        pytest.param("1.2.3", (1, 2, 3, "", ""), id="full version"),
        pytest.param("v1.2.3", (1, 2, 3, "", ""), id="v-prefix accepted"),
        pytest.param("1.0", (1, 0, 0, "", ""), id="short major.minor: patch is 0"),
        pytest.param("v1.0", (1, 0, 0, "", ""), id="short with v-prefix"),
        pytest.param("1", (1, 0, 0, "", ""), id="major only: minor and patch are 0"),
        pytest.param("v1", (1, 0, 0, "", ""), id="major only with v-prefix"),
        pytest.param("1.2-5", (1, 2, 0, "5", ""), id="Masterminds: short version with pre-release"),
        pytest.param("v1.2-beta.5", (1, 2, 0, "beta.5", ""), id="Masterminds: short v with dotted pre"),
        pytest.param("1.2.3+test.01", (1, 2, 3, "", "test.01"), id="Masterminds: build may have 01"),
        pytest.param("1.2.3-alpha.-1", (1, 2, 3, "alpha.-1", ""), id="Masterminds: -1 is alphanumeric"),
        pytest.param(
            "1.2.0-x.Y.0+metadata-width-hypen",
            (1, 2, 0, "x.Y.0", "metadata-width-hypen"),
            id="Masterminds: pre and build with hyphens",
        ),
        pytest.param("1.2.3-rc1-with-hypen", (1, 2, 3, "rc1-with-hypen", ""), id="Masterminds: hyphenated pre"),
        pytest.param("1.2.2147483648", (1, 2, 2147483648, "", ""), id="Masterminds: parts are 64-bit"),
        pytest.param(
            "20221209-update-renovatejson-v4",
            (20221209, 0, 0, "update-renovatejson-v4", ""),
            id="Masterminds: date-like tag with pre-release is a version",
        ),
        pytest.param("01.1.1", (1, 1, 1, "", ""), id="Masterminds v3.4+: leading zero in major coerced"),
        pytest.param("1.01.1", (1, 1, 1, "", ""), id="Masterminds v3.4+: leading zero in minor coerced"),
        pytest.param("1.1.01", (1, 1, 1, "", ""), id="Masterminds v3.4+: leading zero in patch coerced"),
        pytest.param("2024.01.15", (2024, 1, 15, "", ""), id="calver with zero-padded month reads as a version"),
        pytest.param("18446744073709551615.0.0", (2**64 - 1, 0, 0, "", ""), id="uint64 max is accepted"),
    ],
)
def test_parse_accepts(text: str, parts: tuple[int, int, int, str, str]) -> None:
    version = parse_version(text)
    assert version is not None
    assert (version.major, version.minor, version.patch, version.prerelease, version.build) == parts
    assert version.original == text  # the tag is kept as written


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("", id="empty"),
        pytest.param("latest", id="word"),
        pytest.param("foo", id="Masterminds: foo"),
        pytest.param("v", id="lone v"),
        pytest.param("V1.2.3", id="only lowercase v prefix"),
        pytest.param("vv1.2.3", id="one v prefix only"),
        pytest.param("=1.2.3", id="operator prefix is not a version"),
        pytest.param("1.2.beta", id="Masterminds: word in patch position"),
        pytest.param("\n1.2", id="Masterminds: leading newline"),
        pytest.param("1.2\n", id="trailing newline (Go's $ does not match before it)"),
        pytest.param(" 1.2.3", id="leading space"),
        pytest.param("1.2.3.4", id="Masterminds: four parts"),
        pytest.param("12.3.34.1234", id="Masterminds issue 185: four parts"),
        pytest.param("1.2.3-alpha.01", id="Masterminds: numeric pre identifier with leading zero"),
        pytest.param("1.2.3-0123", id="Masterminds: pre 0123"),
        pytest.param("1.2.31----RC-SNAPSHOT.12.09.1--.12+788", id="Masterminds: 09 in pre-release"),
        pytest.param("1.1.2+.123", id="Masterminds: empty build identifier"),
        pytest.param("1.0.0-alpha_beta", id="Masterminds: underscore in pre-release"),
        pytest.param("1.0.0-alpha..1", id="Masterminds: empty pre identifier"),
        pytest.param("9.8.7+meta+meta", id="Masterminds: two build parts"),
        pytest.param("1.2.3-", id="empty pre-release"),
        pytest.param("1.2.3+", id="empty build"),
        pytest.param("1..3", id="empty minor"),
        pytest.param("1.2.", id="trailing dot"),
        pytest.param("18446744073709551616.0.0", id="above uint64 is rejected like ParseUint"),
        pytest.param("1.2.3-é", id="non-ASCII in pre-release"),
        pytest.param("١.٢.٣", id="non-ASCII digits"),
        pytest.param("1." + "1" * 300, id="longer than 256 bytes"),
        pytest.param("sha-1a2b3c", id="commit-style tag"),
    ],
)
def test_parse_rejects(text: str) -> None:
    assert parse_version(text) is None


@pytest.mark.parametrize(
    ("text", "normalized"),
    [
        pytest.param("v1.2-beta.5", "1.2.0-beta.5", id="Masterminds coerce: v and short form dropped"),
        pytest.param("1", "1.0.0", id="Masterminds coerce: major only"),
        pytest.param("v1.2.0-x.Y.0+metadata", "1.2.0-x.Y.0+metadata", id="Masterminds coerce: build kept"),
        pytest.param("007.0.1", "7.0.1", id="leading zeros removed"),
    ],
)
def test_normalized_form(text: str, normalized: str) -> None:
    version = parse_version(text)
    assert version is not None
    assert version.normalized == normalized
    assert str(version) == text


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        pytest.param("1.2.3", "1.5.1", -1, id="Masterminds compare: minor decides"),
        pytest.param("2.2.3", "1.5.1", 1, id="Masterminds compare: major decides"),
        pytest.param("2.2.3", "2.2.2", 1, id="Masterminds compare: patch decides"),
        pytest.param("3.2-beta", "3.2-beta", 0, id="Masterminds compare: same pre-release"),
        pytest.param("1.3", "1.1.4", 1, id="Masterminds compare: short form"),
        pytest.param("4.2", "4.2-beta", 1, id="Masterminds compare: release above its pre-release"),
        pytest.param("4.2-alpha", "4.2-beta", -1, id="Masterminds compare: pre identifiers ASCII order"),
        pytest.param("4.2-beta.2", "4.2-beta.1", 1, id="Masterminds compare: numeric identifier"),
        pytest.param("4.2-beta2", "4.2-beta1", 1, id="Masterminds compare: alphanumeric identifier"),
        pytest.param("4.2-beta", "4.2-beta.2", -1, id="Masterminds compare: fewer identifiers lower"),
        pytest.param("4.2-beta.foo", "4.2-beta", 1, id="Masterminds compare: more identifiers higher"),
        pytest.param("1.2+bar", "1.2+baz", 0, id="Masterminds compare: build ignored"),
        pytest.param("1.0.0-beta.4", "1.0.0-beta.-2", -1, id="Masterminds compare: numeric below alphanumeric"),
        pytest.param("1.0.0-beta.-2", "1.0.0-beta.-3", -1, id="Masterminds compare: -2 and -3 as strings"),
        pytest.param("7.43.0-SNAPSHOT.99", "7.43.0-SNAPSHOT.103", -1, id="Masterminds: 99 < 103 numerically"),
        pytest.param("7.43.0-SNAPSHOT.FOO", "7.43.0-SNAPSHOT.103", 1, id="Masterminds: FOO above 103"),
        pytest.param("7.43.0-SNAPSHOT100", "7.43.0-SNAPSHOT99", -1, id="alphanumeric ids compare as ASCII text"),
        pytest.param("1.0.0-rc.1", "1.0.0-RC.1", 1, id="case-sensitive ASCII: rc above RC"),
        pytest.param("v1.2.0", "1.2", 0, id="v prefix and short form do not change precedence"),
    ],
)
def test_precedence(a: str, b: str, expected: int) -> None:
    va, vb = parse_version(a), parse_version(b)
    assert va is not None and vb is not None
    assert va.compare_precedence(vb) == expected
    assert vb.compare_precedence(va) == -expected


def test_equal_precedence_sorts_by_tag_string() -> None:
    # tie-break: equal precedence, ordered by the tag text so the result never depends on input order
    tags = ["v1.2.0", "1.2", "1.2.0+b7", "1.2.0", "v1.2"]
    versions = [parse_version(t) for t in tags]
    assert all(v is not None for v in versions)
    expected = sorted(tags)
    for _ in range(5):
        random.shuffle(versions)
        assert [v.original for v in sorted(versions)] == expected  # type: ignore[union-attr]


def test_version_is_a_frozen_value() -> None:
    version = parse_version("v1.2.3-rc.1+b")
    assert version == Version(1, 2, 3, "rc.1", "b", "v1.2.3-rc.1+b")
    assert version.is_prerelease
    with pytest.raises(AttributeError):
        version.major = 2  # type: ignore[misc, union-attr]


# --- properties -------------------------------------------------------------------------------------

_numbers = st.one_of(st.integers(0, 3), st.integers(0, 2**64 - 1))
_numeric_id = st.integers(0, 200).map(str)
_alnum_id = st.text("abcAZ-09", min_size=1, max_size=4).filter(lambda s: not s.isdigit())
_pre = st.lists(st.one_of(_numeric_id, _alnum_id), min_size=0, max_size=3).map(".".join)
_build = st.lists(st.text("ab09-", min_size=1, max_size=3), max_size=2).map(".".join)


@st.composite
def version_texts(draw: st.DrawFn) -> str:
    """Tags Masterminds accepts: optional v, one to three parts, optional pre-release and build."""
    count = draw(st.integers(1, 3))
    numbers = [str(draw(_numbers)) for _ in range(count)]
    text = draw(st.sampled_from(["", "v"])) + ".".join(numbers)
    pre, build = draw(_pre), draw(_build)
    return text + (f"-{pre}" if pre else "") + (f"+{build}" if build else "")


def _reference_cmp(a: Version, b: Version) -> int:
    """semver 2.0 section 11 written out independently of the semver package."""

    def sign(x: int) -> int:
        return (x > 0) - (x < 0)

    for x, y in ((a.major, b.major), (a.minor, b.minor), (a.patch, b.patch)):
        if x != y:
            return sign(x - y)
    if not a.prerelease or not b.prerelease:
        return sign(bool(b.prerelease) - bool(a.prerelease))
    pa, pb = a.prerelease.split("."), b.prerelease.split(".")
    for x, y in zip(pa, pb, strict=False):
        if x == y:
            continue
        if x.isdigit() and y.isdigit():
            return sign(int(x) - int(y))
        if x.isdigit() != y.isdigit():
            return -1 if x.isdigit() else 1
        return -1 if x < y else 1
    return sign(len(pa) - len(pb))


@FAST
@given(st.lists(version_texts(), min_size=1, max_size=12))
def test_sorting_is_total_and_follows_precedence(texts: list[str]) -> None:
    versions = [parse_version(t) for t in texts]
    assert all(v is not None for v in versions)
    ordered = sorted(versions)  # type: ignore[type-var]
    for low, high in itertools.pairwise(ordered):
        assert _reference_cmp(low, high) <= 0
        if _reference_cmp(low, high) == 0:
            assert low.original <= high.original
    assert sorted(reversed(versions)) == ordered  # type: ignore[type-var]


@FAST
@given(version_texts(), version_texts())
def test_exactly_one_of_less_equal_greater(a_text: str, b_text: str) -> None:
    a, b = parse_version(a_text), parse_version(b_text)
    assert a is not None and b is not None
    assert [a < b, a == b, a > b].count(True) == 1
    assert a.compare_precedence(b) == _reference_cmp(a, b)


@FAST
@given(version_texts())
def test_parse_reads_what_was_written(text: str) -> None:
    version = parse_version(text)
    assert version is not None
    assert version.original == text
    assert parse_version(version.normalized) is not None


@FAST
@given(st.one_of(st.text(), st.text("0123456789.v-+xX*abc ", max_size=30)))
def test_parse_never_raises(text: str) -> None:
    parse_version(text)
