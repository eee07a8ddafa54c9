"""Constraint parsing and checking; "mm" rows are Masterminds' own constraints_test.go cases."""

from __future__ import annotations

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from image_updater.errors import ConstraintError
from image_updater.selection.constraints import Constraint
from image_updater.selection.versions import Version, parse_version

FAST = settings(max_examples=200, deadline=None)

# (rule, constraint, version, satisfied)
CHECKS = [
    # exact and partial (bare) versions
    ("mm exact", "=2.0.0", "1.2.3", False),
    ("mm exact", "=2.0.0", "2.0.0", True),
    ("exact ignores build", "1.19.1", "1.19.1+b42", True),
    ("bare full version pins", "1.19.1", "1.19.2", False),
    ("mm bare partial is wildcard", "=2.0", "2.0.1", True),
    ("mm bare partial is wildcard", "4.1", "4.1.0", True),
    ("bare partial is wildcard (nginx:1.19)", "1.19", "1.19.9", True),
    ("bare partial is wildcard (nginx:1.19)", "1.19", "1.20.0", False),
    ("mm bare major", "2", "2.1.1", True),
    ("mm bare major", "2", "3.4.5", False),
    ("mm spaced operator", "= 2.0", "2.0.0", True),
    ("v prefix in constraint", "v1.2", "1.2.7", True),
    # not equal
    ("mm not-equal", "!=4.1.0", "4.1.1", True),
    ("mm not-equal partial", "!=4.1", "4.1.1", False),
    ("mm not-equal partial", "!=4.1", "5.1.0", True),
    ("mm not-equal wildcard", "!=4.x", "4.1.0", False),
    ("mm not-equal wildcard", "!=4.1.x", "4.2.0", True),
    ("mm not-equal excludes unnamed pre", "!=4.1", "5.1.0-alpha.1", False),
    ("mm not-equal with pre", "!=4.1-alpha", "4.1.0", True),
    ("mm not-equal with pre", "!=4.1-alpha", "4.1.1-alpha", False),
    # greater / less
    ("mm gt partial", ">1.1", "1.1.0", False),
    ("mm gt partial: >11.1 needs 11.2", ">11.1", "11.1.1", False),
    ("mm gt partial: >11.1 needs 11.2", ">11.1", "11.2.1", True),
    ("mm gt major: >11 needs 12", ">11", "11.1.0", False),
    ("gt wildcard: >1.x means >=2.0.0", ">1.x", "2.0.0", True),
    ("mm gt zero", ">0", "1", True),
    ("mm gt zero excludes unnamed pre", ">0", "0.0.1-alpha", False),
    ("mm gt partial pre bound", ">0-0", "0.0.1-alpha", False),
    ("mm gt pre bound", ">0.0.0-0", "0.0.0-alpha", True),
    ("mm gt pre across patches", ">1.2.3-alpha.1", "1.3.3-alpha.2", True),
    ("mm lt major", "<11", "11.1.0", False),
    ("mm lt partial", "<1.1", "1.1.1", False),
    ("mm lt wildcard", "<1.x", "0.1.1", True),
    ("mm lt wildcard", "<1.x", "1.1.1", False),
    ("mm lt patch wildcard", "<1.1.x", "1.0.500", True),
    ("mm lt pre bound", "<0-z", "0.0.0-alpha", True),
    ("mm ge partial", ">=11.1", "11.0.2", False),
    ("mm ge excludes unnamed pre", ">=1.1", "4.1.0-beta", False),
    ("mm ge pre bound admits pre", ">=0-0", "0.0.1-alpha", True),
    ("mm ge pre bound admits any pre", ">=0.0.0-0", "3.4.5-beta.1", True),
    ("mm ge alias =>", "=> 1.2", "1.2.0", True),
    ("mm le partial widens to minor", "<=1.1", "1.1.1", True),
    ("mm le partial", "<=1.1", "1.2.3", False),
    ("mm le major widens", "<=11", "11.2.3", True),
    ("mm le wildcard", "<=2.x", "3.0.0", False),
    ("mm le patch wildcard", "<=1.1.x", "1.2.500", False),
    ("mm le with pre admits pre", "<=1.1-a", "0.1.0-alpha", True),
    ("mm le excludes unnamed pre", "<=1.1", "0.1.0-alpha", False),
    ("le alias =<", "=< 1.2", "1.2.9", True),
    # wildcards
    ("mm star", "*", "4.5.6", True),
    ("mm star excludes pre", "*", "1.2.3-alpha.1", False),
    ("mm star with -0 admits pre", "*-0", "1.2.3-alpha.1", True),
    ("mm minor wildcard", "2.*", "2.1.1", True),
    ("mm minor wildcard", "2.*", "3.4.5", False),
    ("mm patch wildcard", "2.1.*", "2.2.1", False),
    ("mm x wildcard", "4.1.x", "4.1.3", True),
    ("mm x wildcard short version", "1.x", "1.4", True),
    ("X wildcard", "1.X", "1.9.9", True),
    ("mm 0.x.x", "0.x.x", "1.2.3", False),
    ("mm 0.0.x", "0.0.x", "1.2.3", False),
    ("mm exact 0.0.0", "0.0.0", "1.2.3", False),
    # tilde
    ("mm tilde-patch", "~1.2.3", "1.2.5", True),
    ("mm tilde-patch floor", "~1.2.3", "1.2.2", False),
    ("mm tilde-patch ceiling", "~1.2.3", "1.3.2", False),
    ("tilde-minor: ~1.2 allows 1.2.9", "~1.2", "1.2.9", True),
    ("mm tilde-minor", "~1.1", "1.2.3", False),
    ("mm tilde-major: ~1 is 1.x", "~1", "1.3.5", True),
    ("mm tilde-major: ~1 is 1.x", "~1", "2.1.1", False),
    ("mm tilde-major short version", "~1", "1.4", True),
    ("mm tilde-x", "~1.x", "2.1.1", False),
    ("mm tilde-star: any", "~*", "2.1.1", True),
    ("mm tilde-zero: ~0.0.0 is any", "~0.0.0", "1.2.3", True),
    ("mm tilde zero-major", "~0.2.3", "0.3.5", False),
    ("mm tilde excludes unnamed pre", "~1.1", "1.1.1-alpha", False),
    ("mm tilde pre", "~1.1-alpha", "1.1.1-beta", True),
    ("mm tilde pre floor", "~1.1.1-beta", "1.1.1-alpha", False),
    ("mm tilde pre below release", "~1.1.1-beta", "1.1.1", True),
    ("mm tilde pre across patch (not npm)", "~1.2.3-beta.2", "1.2.4-beta.2", True),
    ("mm tilde pre not across minor", "~1.2.3-beta.2", "1.3.4-beta.2", False),
    ("tilde alias ~>", "~>1.4", "1.4.2", True),
    # caret
    ("mm caret-major", "^1.2.3", "1.8.9", True),
    ("mm caret-major ceiling", "^1.2.3", "2.8.9", False),
    ("mm caret floor", "^1.2.3", "1.2.1", False),
    ("mm caret partial", "^1.2", "1.8.9", True),
    ("mm caret-x", "^1.x", "1.1.1", True),
    ("mm caret-x excludes unnamed pre", "^1.x", "1.1.1-beta1", False),
    ("mm caret-zero: ^0.2.3 stays in 0.2", "^0.2.3", "0.5.6", False),
    ("mm caret-zero: ^0.2 allows 0.2.5", "^0.2", "0.2.5", True),
    ("caret-zero: ^0.2 excludes 0.3.0", "^0.2", "0.3.0", False),
    ("mm caret-zero-zero: ^0.0.3 is exact", "^0.0.3", "0.0.4", False),
    ("mm caret-zero-zero: ^0.0.3 is exact", "^0.0.3", "0.0.3", True),
    ("mm caret ^0.0 is <0.1.0", "^0.0", "0.0.3", True),
    ("mm caret ^0.0 is <0.1.0", "^0.0", "0.1.4", False),
    ("mm caret ^0 is <1.0.0", "^0", "0.2.3", True),
    ("mm caret ^0 is <1.0.0", "^0", "1.1.4", False),
    ("mm caret ^0.0.0 is exact", "^0.0.0", "1.2.3", False),
    ("mm caret pre", "^1.2.0-alpha.0", "1.2.1-alpha.1", True),
    ("mm caret pre floor", "^1.2.0-alpha.2", "1.2.0-alpha.1", False),
    ("mm caret pre across minor", "^1.1.2-alpha", "1.2.1-beta1", True),
    ("mm caret pre zero-major", "^0.2.3-beta.2", "0.3.4-beta.2", False),
    ("mm caret wildcard pre floor", "^1.2.x-alpha", "1.1.1-beta1", False),
    ("caret-star quirk: library code gives 0.0.0 only", "^*", "1.2.3", False),
    # AND, OR, hyphen ranges
    ("mm and-comma", ">1.1, <2", "1.2.1", True),
    ("mm and-comma", ">1.1, <3", "4.3.2", False),
    ("mm and-space", ">1.1 <2", "1.1.1", False),
    ("mm and-space many", ">=1.1    <2    !=1.2.3", "1.2.3", False),
    ("mm and spaced operators", ">= 1.1, <     2, !=1.2.3", "1.2.3", False),
    ("mm or", ">=1.1, <2, !=1.2.3 || > 3", "4.1.2", True),
    ("mm or", ">=1.1, <2, !=1.2.3 || > 3", "3.1.2", False),
    ("mm or", ">=1.1 <2 !=1.2.3 || >= 3", "3.0.0", True),
    ("mm hyphen range", "1.1 - 2", "1.1.1", True),
    ("mm hyphen range", "1.5.0 - 4.5", "3.7.0", True),
    ("hyphen range upper bound inclusive", "1.2 - 1.4.5", "1.4.5", True),
    ("hyphen range upper bound", "1.2 - 1.4.5", "1.4.6", False),
    ("hyphen partial upper widens", "1.2 - 1.4", "1.4.9", True),
    ("mm no spaces is not a range: 1.1-3 is pre 3", "1.1-3", "4.3.2", False),
    ("hyphen inside OR", "1.0.0 - 1.1.0 || 2.x", "2.5.0", True),
    # pre-release admission per OR group (Masterminds v3.4+)
    ("pre-group: any comparator naming a pre opens the group", ">=1.0.0-0, <2.0.0", "1.5.0-beta", True),
    ("pre-group: other OR group does not open it", "~1.0.0-0 || >=3", "3.1.0-rc.1", False),
    ("pre-group: same group with pre", "~1.0.0-0 || >=3", "1.0.5-rc.1", True),
    ("pre-group: still bounded", ">=1.0.0-0, <2.0.0", "2.0.1-rc.1", False),
    # Masterminds compares plain precedence, so 2.0.0-rc.1 < 2.0.0 (npm would exclude it)
    ("pre-group: <2.0.0 admits 2.0.0-rc.1", ">=1.0.0-0, <2.0.0", "2.0.0-rc.1", True),
]


@pytest.mark.parametrize(
    ("constraint", "version", "expected"),
    [pytest.param(c, v, ok, id=f"{rule}: {c!r} {'admits' if ok else 'excludes'} {v}") for rule, c, v, ok in CHECKS],
)
def test_check(constraint: str, version: str, expected: bool) -> None:
    parsed = parse_version(version)
    assert parsed is not None
    assert Constraint.parse(constraint).check(parsed) is expected


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(">= 1.1", id="mm spaced operator"),
        pytest.param(">40.50.60, < 50.70", id="mm and with comma"),
        pytest.param("v2.3.5-20161202202307-sha.e8fc5e5", id="mm full version with pre"),
        pytest.param(">= 1.2.3 < 2.0 || => 3.0 < 4", id="mm space-separated and or"),
        pytest.param("3 - 4 || => 3.0, < 4", id="mm range then or"),
        pytest.param("12.3.34 ~1.2.3", id="mm issue 185: two comparators"),
        pytest.param("1.x.3", id="parts after a wildcard are ignored"),
        pytest.param("01.2.3", id="leading zeros coerced in a bound"),
        pytest.param("\t>=1.0\n", id="tabs and newlines are whitespace"),
    ],
)
def test_parse_accepts(text: str) -> None:
    assert str(Constraint.parse(text)) == text


@pytest.mark.parametrize(
    ("text", "why"),
    [
        pytest.param("", "empty", id="empty"),
        pytest.param("   ", "empty", id="blank"),
        pytest.param(">= bar", "cannot read", id="mm word as version"),
        pytest.param("BAR >= 1.2.3", "cannot read", id="mm leading word"),
        pytest.param("foo", "cannot read", id="mm foo"),
        pytest.param("12.3.4.1234", "cannot read", id="mm issue 185: four parts"),
        pytest.param("12.3.34~ 1.2.3", "cannot read", id="mm issue 185: operator glued"),
        pytest.param(">=1<2", "cannot read", id="comparators need a separator"),
        pytest.param("1.2 ||", "cannot read", id="empty OR group"),
        pytest.param(">=1.0,,<2", "cannot read", id="double comma"),
        pytest.param("1.2.3-01", "not a version", id="leading zero in bound pre-release"),
        pytest.param("1|2", "not a version", id="single pipe inside a part"),
        pytest.param("1x.2", "not a version", id="digit-wildcard mix"),
        pytest.param("latest", "cannot read", id="tag name is not a constraint"),
        pytest.param(">=1, <2, " + "!=1.0.0, " * 60 + "!=1.5", "longer than 512", id="too long"),
        pytest.param(" || ".join(["1"] * 33), "more than 32", id="too many OR groups"),
    ],
)
def test_parse_rejects(text: str, why: str) -> None:
    with pytest.raises(ConstraintError) as caught:
        Constraint.parse(text)
    assert why in str(caught.value)
    assert "constraint" in str(caught.value)


def test_names_prerelease() -> None:
    assert Constraint.parse(">=1.0.0-rc.0 || ~2").names_prerelease
    assert not Constraint.parse("~1.2 || ^3").names_prerelease


# --- properties -------------------------------------------------------------------------------------

_OPS = ["", "=", "!=", ">", "<", ">=", "=>", "<=", "=<", "~", "~>", "^"]
_small = st.integers(0, 3)
_pre = st.sampled_from(["", "0", "alpha", "alpha.1", "beta", "rc.2"])


@st.composite
def full_versions(draw: st.DrawFn) -> str:
    pre = draw(_pre)
    return f"{draw(_small)}.{draw(_small)}.{draw(_small)}" + (f"-{pre}" if pre else "")


@st.composite
def simple_constraints(draw: st.DrawFn) -> list[list[tuple[str, str]]]:
    """OR groups of AND-ed comparators, each an operator and a full x.y.z[-pre] version."""
    return draw(
        st.lists(
            st.lists(st.tuples(st.sampled_from(_OPS), full_versions()), min_size=1, max_size=3),
            min_size=1,
            max_size=3,
        )
    )


def _render(groups: list[list[tuple[str, str]]], comma: bool) -> str:
    joiner = ", " if comma else " "
    return " || ".join(joiner.join(op + v for op, v in group) for group in groups)


def _triple(v: Version) -> tuple[int, int, int]:
    return (v.major, v.minor, v.patch)


def _reference(op: str, bound: Version, v: Version) -> bool:
    """The documented meaning of one comparator over a full version, written out plainly."""
    c = v.compare_precedence(bound)
    if op in ("", "="):
        return c == 0
    if op == "!=":
        return c != 0
    if op == ">":
        return c > 0
    if op == "<":
        return c < 0
    if op in (">=", "=>"):
        return c >= 0
    if op in ("<=", "=<"):
        return c <= 0
    if c < 0:
        return False
    b = _triple(bound)
    if op in ("~", "~>"):  # >=x.y.z, same x.y; ~0.0.0 is anything
        return b == (0, 0, 0) or _triple(v)[:2] == b[:2]
    # ^: same major when it is >0; else same minor when it is >0; else exactly 0.0.z
    if b[0] > 0:
        return v.major == b[0]
    if b[1] > 0:
        return v.major == 0 and v.minor == b[1]
    return _triple(v) == b


def _reference_check(groups: list[list[tuple[str, str]]], v: Version) -> bool:
    for group in groups:
        bounds = [(op, parse_version(text)) for op, text in group]
        if v.is_prerelease and not any(b.is_prerelease for _, b in bounds):  # type: ignore[union-attr]
            continue
        if all(_reference(op, b, v) for op, b in bounds):  # type: ignore[arg-type]
            return True
    return False


@FAST
@given(simple_constraints(), full_versions(), st.booleans())
def test_check_agrees_with_reference(groups: list[list[tuple[str, str]]], version: str, comma: bool) -> None:
    v = parse_version(version)
    assert v is not None
    assert Constraint.parse(_render(groups, comma)).check(v) is _reference_check(groups, v)


@FAST
@given(st.sampled_from(["", "~", "^", ">=", "<="]), _small, _small, full_versions())
def test_partial_bound_equals_its_wildcard(op: str, major: int, minor: int, version: str) -> None:
    # "1.2" and "1.2.x" (and "1.2.*") are the same constraint
    v = parse_version(version)
    assert v is not None
    short = Constraint.parse(f"{op}{major}.{minor}").check(v)
    assert Constraint.parse(f"{op}{major}.{minor}.x").check(v) is short
    assert Constraint.parse(f"{op}{major}.{minor}.*").check(v) is short


_GRAMMAR = st.text("0123456789.xX*|-+ ,<>=!~^va\t", max_size=40)


@FAST
@given(st.one_of(st.text(max_size=60), _GRAMMAR), full_versions())
def test_parse_raises_only_constraint_error(text: str, version: str) -> None:
    try:
        constraint = Constraint.parse(text)
    except ConstraintError:
        return
    v = parse_version(version)
    assume(v is not None)
    constraint.check(v)  # type: ignore[arg-type]
