"""Property tests for the parsers and orders beyond semver (whose properties are in test_constraints.py).

- every parser raises only the product's own error type, whatever text it is given;
- ``ignore-tags`` globs agree with a brute-force matcher written from Go's ``filepath.Match`` rules;
- ``tag-extract`` templates agree with a reference reading of Go's ``Regexp.Expand``;
- each strategy's choice is the maximum of a total order (value, then tag), whatever the listing order.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import random
import re
from decimal import Decimal

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from image_updater.adapters.registry.credentials import credentials_from_docker_config
from image_updater.adapters.registry.metadata import parse_created
from image_updater.errors import ConstraintError, ImageReferenceError, RegistryAuthError
from image_updater.model.ref import parse_image_name, parse_image_ref
from image_updater.selection.alphabetical import AlphabeticalStrategy
from image_updater.selection.base import TagInfo
from image_updater.selection.extract import TagExtractor, parse_template
from image_updater.selection.newest_build import NewestBuildStrategy
from image_updater.selection.numerical import NumericalStrategy, parse_number
from image_updater.selection.patterns import compile_glob, compile_regexp
from image_updater.selection.platforms import parse_platform

FAST = settings(max_examples=300, deadline=None)
TAG_CHARS = "abAB019._-"


# -- parsers raise only our errors ---------------------------------------------------------------------


@FAST
@given(st.text(max_size=30))
def test_regexp_translation_raises_only_constraint_errors(text: str) -> None:
    with contextlib.suppress(ConstraintError):
        compile_regexp(text, what="allow-tags")


@FAST
@given(st.text(alphabet="[]^-\\*?!:ab()${}<>PQEz", max_size=20))
def test_regexp_translation_of_tricky_text_raises_only_constraint_errors(text: str) -> None:
    with contextlib.suppress(ConstraintError):
        compile_regexp(text, what="allow-tags")


@FAST
@given(st.text(max_size=20), st.text(max_size=12))
def test_templates_never_raise_and_extractors_raise_only_constraint_errors(template: str, expression: str) -> None:
    parse_template(template)
    try:
        pattern = compile_regexp(expression, what="allow-tags")
        TagExtractor.build(template, pattern)
    except ConstraintError:
        pass


@FAST
@given(st.text(max_size=30))
def test_platforms_and_numbers_and_dates(text: str) -> None:
    with contextlib.suppress(ConstraintError):
        parse_platform(text)
    number = parse_number(text)
    assert number is None or number.is_finite()
    assert parse_created(text) is None or parse_created(text).tzinfo is not None  # type: ignore[union-attr]


@FAST
@given(st.text(alphabet="abcAB0:/@._-[]sha256", max_size=40))
def test_references_raise_only_reference_errors(text: str) -> None:
    try:
        ref = parse_image_ref(text)
    except ImageReferenceError:
        return
    assert parse_image_name(str(ref.name)) == ref.name  # a parsed name reads back as itself


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=12), children, max_size=3),
    max_leaves=8,
)


@FAST
@given(_json)
def test_docker_configs_raise_only_auth_errors(data: object) -> None:
    with contextlib.suppress(RegistryAuthError):
        credentials_from_docker_config(json.dumps(data), parse_image_name("nginx"))


# -- globs against a reference reading of Go's filepath.Match -----------------------------------------


class BadPattern(Exception):
    pass


def go_match(pattern: str, name: str) -> bool:
    """Backtracking matcher written from Go's documented filepath.Match grammar (``/`` never in tags)."""
    tokens = _go_tokens(pattern)

    def match(ti: int, ni: int) -> bool:
        if ti == len(tokens):
            return ni == len(name)
        kind, value = tokens[ti]
        if kind == "star":
            return any(match(ti + 1, k) for k in range(ni, len(name) + 1))
        if ni == len(name):
            return False
        char = name[ni]
        if kind == "any":
            ok = True
        elif kind == "lit":
            ok = char == value
        else:
            negated, ranges = value
            ok = any(lo <= char <= hi for lo, hi in ranges) != negated
        return ok and match(ti + 1, ni + 1)

    return match(0, 0)


def _go_tokens(pattern: str) -> list[tuple[str, object]]:
    tokens: list[tuple[str, object]] = []
    i = 0

    def esc(j: int) -> tuple[str, int]:
        if j >= len(pattern) or pattern[j] in "-]":
            raise BadPattern
        if pattern[j] == "\\":
            j += 1
            if j >= len(pattern):
                raise BadPattern
        return pattern[j], j + 1

    while i < len(pattern):
        char = pattern[i]
        if char == "*":
            tokens.append(("star", None))
            i += 1
        elif char == "?":
            tokens.append(("any", None))
            i += 1
        elif char == "\\":
            if i + 1 >= len(pattern):
                raise BadPattern
            tokens.append(("lit", pattern[i + 1]))
            i += 2
        elif char == "[":
            i += 1
            negated = i < len(pattern) and pattern[i] == "^"
            i += negated
            ranges: list[tuple[str, str]] = []
            while True:
                if i < len(pattern) and pattern[i] == "]" and ranges:
                    i += 1
                    break
                lo, i = esc(i)
                hi = lo
                if i < len(pattern) and pattern[i] == "-":
                    hi, i = esc(i + 1)
                if hi < lo:
                    raise BadPattern  # Go matches nothing here; we call it malformed (see patterns.py)
                ranges.append((lo, hi))
            tokens.append(("class", (negated, ranges)))
        else:
            tokens.append(("lit", char))
            i += 1
    return tokens


@settings(max_examples=600, deadline=None)
@given(st.text(alphabet="ab*?[]^-\\!", max_size=8), st.lists(st.text(alphabet="ab!-^\\", max_size=6), max_size=6))
def test_globs_agree_with_go_filepath_match(pattern: str, names: list[str]) -> None:
    try:
        _go_tokens(pattern)  # malformed or not, whether or not there are names to match
        reference = [go_match(pattern, name) for name in names]
    except BadPattern:
        try:
            compile_glob(pattern, what="ignore-tags")
        except ConstraintError:
            return
        raise AssertionError(f"{pattern!r} is malformed for Go but compiled here") from None
    compiled = compile_glob(pattern, what="ignore-tags")
    assert [bool(compiled.fullmatch(name)) for name in names] == reference


# -- tag-extract against a reference reading of Go's Regexp.Expand ------------------------------------


def go_expand(template: str, match: re.Match[str]) -> str:
    out = []
    i = 0
    while i < len(template):
        if template[i] != "$":
            out.append(template[i])
            i += 1
            continue
        if template[i + 1 : i + 2] == "$":
            out.append("$")
            i += 2
            continue
        braced = template[i + 1 : i + 2] == "{"
        j = i + 2 if braced else i + 1
        k = j
        while k < len(template) and (template[k].isascii() and (template[k].isalnum() or template[k] == "_")):
            k += 1
        name = template[j:k]
        if not name or (braced and template[k : k + 1] != "}"):
            out.append("$")
            i += 1
            continue
        i = k + 1 if braced else k
        try:
            group = match.group(int(name) if name.isdigit() else name)
        except IndexError:
            group = None
        out.append(group or "")
    return "".join(out)


@FAST
@given(
    st.text(alphabet="$ab1{}_-", max_size=10),
    st.lists(st.text(alphabet="xy0123", min_size=1, max_size=6), min_size=1, max_size=5),
)
def test_extraction_agrees_with_go_expand(template: str, tags: list[str]) -> None:
    pattern = re.compile(r"^(?P<a>[xy]*)(?P<b1>[0-9]*)$", re.ASCII)
    try:
        extractor = TagExtractor.build(template, pattern)
    except ConstraintError:
        return
    for tag in tags:
        match = pattern.search(tag)
        expected = go_expand(template, match) if match else ""
        assert extractor.value(tag) == (expected or None)


# -- the strategies choose the maximum of a total order -----------------------------------------------


_tags = st.lists(st.text(alphabet=TAG_CHARS, min_size=1, max_size=6), min_size=1, max_size=12, unique=True)


@FAST
@given(_tags, st.randoms(use_true_random=False))
def test_alphabetical_is_the_byte_wise_maximum_in_any_order(names: list[str], rng: random.Random) -> None:
    shuffled = names[:]
    rng.shuffle(shuffled)
    selection = AlphabeticalStrategy().select([TagInfo(n) for n in shuffled])
    assert selection.selected == max(names, key=str.encode)
    assert list(selection.considered) == sorted(names, key=str.encode)


@FAST
@given(st.lists(st.integers(-(10**30), 10**30), min_size=1, max_size=12), st.randoms(use_true_random=False))
def test_numerical_is_the_exact_maximum(values: list[int], rng: random.Random) -> None:
    names = list(dict.fromkeys(str(v) for v in values))
    rng.shuffle(names)
    selection = NumericalStrategy().select([TagInfo(n) for n in names])
    assert Decimal(selection.selected or "nan") == max(Decimal(n) for n in names)
    ranked = [Decimal(n) for n in selection.considered]
    assert ranked == sorted(ranked)


@FAST
@given(
    st.lists(st.tuples(st.text(alphabet="abc0", min_size=1, max_size=4), st.integers(0, 3)), min_size=1, max_size=10),
    st.randoms(use_true_random=False),
)
def test_newest_build_is_the_newest_then_the_greatest_name(items: list[tuple[str, int]], rng: random.Random) -> None:
    built = dict(items)  # one date per tag
    assume(built)
    base = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    infos = [TagInfo(tag, created=base + dt.timedelta(days=day)) for tag, day in built.items()]
    rng.shuffle(infos)
    selection = NewestBuildStrategy().select(infos)
    assert selection.selected == max(built, key=lambda tag: (built[tag], tag.encode()))
