"""The fast reader composes the trees ``parse_documents`` composes, and falls back wherever it might not.

Readers and the files source use :mod:`image_updater.edit.fastcompose` (libyaml's parser, ruamel's node
classes and YAML 1.2 resolver); editors keep ruamel's own composer. These tests hold the two to the same
trees (kinds, tags, values, styles, shared alias nodes, start lines and columns) over every golden file
and a set of texts where YAML 1.1 and 1.2, or the two parsers, could differ.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode

from image_updater.edit import fastcompose
from image_updater.edit.fastcompose import load_all, read_documents
from image_updater.edit.nodes import parse_documents
from image_updater.errors import EditError

GOLDEN = Path(__file__).resolve().parents[1] / "golden"

TRICKY = [
    "a: yes\nb: no\nc: on\nd: off\ne: y\nf: True\ng: FALSE\n",
    "a: 010\nb: 0o10\nc: 0x1F\nd: 1_000\ne: +12\nf: -0\n",
    "a: 1.20\nb: .5\nc: 1e3\nd: .inf\ne: -.Inf\nf: .nan\ng: 1.0e+3\n",
    "a: ~\nb: null\nc: Null\nd:\ne: ''\nf: \"\"\n",
    "a: 2001-12-14t21:59:43.10-05:00\nb: 2002-12-14\nc: 12:30:45\n",
    "base: &b {x: 1, y: 2}\nderived:\n  <<: *b\n  y: 3\nlist: [*b, *b]\n",
    "a: !!str 1.0\nb: !!int '7'\nc: !custom value\nd: !!binary aGk=\n",
    "---\na: 1\n...\n---\n- x\n- y\n---\n",
    "---\n---\n",
    "",
    "# only a comment\n",
    "? complex key\n: value\n? [a, b]\n: {c: d}\n",
    "text: |\n  line one\n   line two\nfolded: >-\n  a\n  b\n\nkeep: |+\n  x\n\n",
    "q: 'it''s'\nd: \"tab\\tand \\u00e9\"\nplain: multi\n  line\n  scalar\n",
    "\ufeffa: 1\r\nb:\r\n  - c\r\n  - d\r\n",
    'images:\n- name: nginx\n  newTag: "1.20"\n- name: redis  # comment\n  newTag: 7.0.0\n',
    "flow: {a: [1, {b: c}], 'd': \"e\"}\nempty_map: {}\nempty_seq: []\n",
    'key with spaces: v\n"quoted key": v\n123: int key\n',
    'é: ü\nemoji: "\U0001f600"\n',
    "a: &anchor\n  b: c\nd: *anchor\ne: &anchor 2\nf: *anchor\n",
]

INVALID = [
    "a: [\n",
    "a: b: c\n",
    "a: *nowhere\n",
    "a:\tb\n\x00",
    "a: " + "[" * 200 + "]" * 200 + "\n",
    "a: &a [1, *a]\n",
    "key: 'unterminated\n",
]


def shape(node: Node, memo: dict[int, int]) -> Any:
    """A comparable picture of a tree: alias sharing kept, marks reduced to line and column."""
    if id(node) in memo:
        return ("shared", memo[id(node)])
    memo[id(node)] = len(memo)
    head = (type(node).__name__, str(node.tag), node.start_mark.line, node.start_mark.column)
    if isinstance(node, ScalarNode):
        if node.value == "" and node.style is None:  # an empty plain scalar has no text of its own
            head = head[:2]
        return (*head, node.value, node.style)
    if isinstance(node, MappingNode):
        return (*head, node.flow_style, [(shape(k, memo), shape(v, memo)) for k, v in node.value])
    return (*head, node.flow_style, [shape(item, memo) for item in node.value])


def same_trees(text: str) -> None:
    expected = [shape(document, {}) for document in parse_documents(text)]
    assert [shape(document, {}) for document in read_documents(text)] == expected


def golden_texts() -> list[Path]:
    return sorted(p for p in GOLDEN.glob("*/*") if p.suffix in (".yaml", ".yml") or p.name == "Kustomization")


def test_libyaml_is_there() -> None:
    # the speed of a cycle at scale depends on it; PyYAML's wheels ship it
    assert fastcompose.FAST


@pytest.mark.parametrize("path", golden_texts(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_golden_file_reads_as_parse_documents_composes_it(path: Path) -> None:
    with path.open(newline="", encoding="utf-8") as handle:
        same_trees(handle.read())


@pytest.mark.parametrize("text", TRICKY)
def test_tricky_texts_read_as_parse_documents_composes_them(text: str) -> None:
    same_trees(text)


@pytest.mark.parametrize("text", INVALID)
def test_errors_are_parse_documents_errors(text: str) -> None:
    with pytest.raises(EditError) as expected:
        parse_documents(text, file="f.yaml")
    with pytest.raises(EditError) as got:
        read_documents(text, file="f.yaml")
    assert str(got.value) == str(expected.value)


def test_a_version_directive_is_left_to_ruamel() -> None:
    text = "%YAML 1.1\n---\na: yes\n"
    assert read_documents(text)[0].value[0][1].tag == "tag:yaml.org,2002:bool"
    same_trees(text)


def test_nesting_far_past_the_limit_neither_crashes_nor_recurses() -> None:
    # libyaml's own composer in PyYAML recurses in C and crashes on this; ours is iterative
    deep = "[" * 100_000 + "]" * 100_000
    with pytest.raises(EditError, match=r"depth|deep"):
        read_documents(deep)


def test_one_text_is_composed_once() -> None:
    text = "images:\n- name: cached\n  newTag: 1.0.0\n"
    assert read_documents(text) is read_documents(text)


LOADABLE = [*TRICKY[:6], "a: !!str 1.0\nb: !!int '7'\n", "apiVersion: v1\nkind: Application\nmetadata: {name: x}\n"]


@pytest.mark.parametrize("text", LOADABLE)
def test_load_all_gives_ruamels_data(text: str) -> None:
    assert load_all(text) == list(YAML(typ="safe", pure=True).load_all(text))


def test_load_all_raises_ruamels_errors() -> None:
    from ruamel.yaml.error import YAMLError

    for text in ("a: [\n", "a: 1\na: 2\n", "a: !unknown x\n"):
        with pytest.raises(YAMLError):
            load_all(text)
    assert load_all("b: 2\n") == [{"b": 2}]  # a loader that failed half-way is not used again


scalars = st.one_of(
    st.sampled_from(["yes", "No", "on", "null", "~", "1.20", "010", "0x1f", "1e3", "2020-01-01", "", "a: b", "- x"]),
    st.text(alphabet="ab1.:-_ #'\"é\t", max_size=8),
    st.integers(),
    st.floats(allow_nan=False),
    st.booleans(),
    st.none(),
)
data = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(alphabet="abk -", max_size=5), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=150, deadline=None)
@given(value=data, flow=st.sampled_from([None, True, False]), width=st.integers(min_value=20, max_value=120))
def test_whatever_ruamel_dumps_reads_the_same_both_ways(value: Any, flow: bool | None, width: int) -> None:
    import io

    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = flow
    yaml.width = width
    out = io.StringIO()
    yaml.dump(value, out)
    text = out.getvalue()
    try:
        parse_documents(text)
    except EditError as e:  # ruamel.yaml dumps a few texts it cannot read back: so must the reader fail
        with pytest.raises(EditError) as got:
            read_documents(text)
        assert str(got.value) == str(e)
        return
    same_trees(text)


def test_a_planning_view_reads_each_file_once() -> None:
    from image_updater.planner import ReadOnce

    class Counting:
        def __init__(self) -> None:
            self.reads: list[str] = []

        def read(self, relative: str) -> str | None:
            self.reads.append(relative)
            return "x: 1\n" if relative == "a.yaml" else None

        def list_files(self, relative: str) -> list[str]:
            self.reads.append(f"list {relative}")
            return ["a.yaml"]

    inner = Counting()
    view = ReadOnce(inner)
    assert [view.read("a.yaml"), view.read("a.yaml"), view.read("b.yaml"), view.read("b.yaml")] == [
        "x: 1\n",
        "x: 1\n",
        None,
        None,
    ]
    assert view.list_files(".") == view.list_files(".") == ["a.yaml"]
    assert inner.reads == ["a.yaml", "b.yaml", "list ."]
