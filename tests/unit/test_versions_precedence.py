"""Precedence as a plain tuple key orders versions exactly as the ``semver`` package compares them.

``Version`` sorts by :func:`precedence_key` (compared in C during a sort) instead of ``semver.Version``
objects; the two must never disagree, pre-releases included.
"""

from __future__ import annotations

import semver
from hypothesis import given, settings
from hypothesis import strategies as st

from image_updater.selection.versions import parse_version

identifier = st.one_of(
    st.integers(min_value=0, max_value=300).map(str),
    st.text(alphabet="abcrxyzABZ-09", min_size=1, max_size=5).filter(lambda s: not (s.isdigit() and s[0] == "0")),
)
versions = st.builds(
    lambda major, minor, patch, pre, build: (
        f"{major}.{minor}.{patch}" + (f"-{'.'.join(pre)}" if pre else "") + (f"+{build}" if build else "")
    ),
    st.integers(min_value=0, max_value=3),
    st.integers(min_value=0, max_value=3),
    st.integers(min_value=0, max_value=3),
    st.lists(identifier, max_size=3),
    st.sampled_from(["", "b7", "exp.sha.5114f85"]),
)


@settings(max_examples=500, deadline=None)
@given(a=versions, b=versions)
def test_the_tuple_key_compares_as_semver_does(a: str, b: str) -> None:
    va, vb = parse_version(a), parse_version(b)
    if va is None or vb is None:  # an identifier with a leading zero: not a version
        return
    assert va.compare_precedence(vb) == semver.Version.parse(a).compare(semver.Version.parse(b))
    assert va.precedence.compare(vb.precedence) == va.compare_precedence(vb)


def test_a_parsed_tag_is_remembered() -> None:
    assert parse_version("4.5.6-rc.1") is parse_version("4.5.6-rc.1")
