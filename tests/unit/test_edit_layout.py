"""What ruamel.yaml's marks are (the editors depend on these facts), and how text is located and written."""

from __future__ import annotations

import pytest
from ruamel.yaml import YAML
from ruamel.yaml.nodes import MappingNode, ScalarNode

from image_updater.edit.layout import (
    after_colon,
    content_end,
    line_end,
    newline_of,
    reads_as_string,
    render_block_item,
    render_block_pair,
    render_flow,
    render_scalar,
    scalar_span,
)
from image_updater.edit.nodes import parse_documents
from image_updater.errors import EditError


def root(text: str) -> MappingNode:
    node = YAML(typ="safe", pure=True).compose(text)
    assert isinstance(node, MappingNode)
    return node


def value_of(mapping: MappingNode, key: str) -> ScalarNode:
    node = next(v for k, v in mapping.value if k.value == key)
    assert isinstance(node, ScalarNode)
    return node


# -- facts about ruamel.yaml's marks ------------------------------------------------------------------


def test_mark_index_is_a_character_offset_counting_crlf_as_two_and_bom_as_one() -> None:
    text = "\ufeff# café 😀\r\nimages:\r\n  tag: v1\r\n"
    node = value_of(root(text).value[0][1], "tag")
    assert text[node.start_mark.index : node.end_mark.index] == "v1"
    assert (node.start_mark.line, node.start_mark.column) == (2, 7)


def test_start_mark_includes_anchor_and_tag_properties() -> None:
    text = "a: &x !!str 1.0\n"
    node = value_of(root(text), "a")
    assert text[node.start_mark.index : node.end_mark.index] == "&x !!str 1.0"
    assert text[slice(*scalar_span(text, node))] == "1.0"


def test_empty_value_marks_point_at_the_next_token() -> None:
    text = "a:\n  b:    # comment\n  c: 1\n"
    b = value_of(root(text).value[0][1], "b")
    assert b.value == "" and b.start_mark.index == b.end_mark.index == text.index("c:")
    key = root(text).value[0][1].value[0][0]
    assert after_colon(text, key) == text.index("b:") + 2


def test_block_scalar_end_mark_includes_trailing_line_breaks() -> None:
    text = "a: |\n  x\n\nb: 1\n"
    node = value_of(root(text), "a")
    assert text[node.start_mark.index : node.end_mark.index] == "|\n  x\n\n"
    assert text[slice(*scalar_span(text, node))] == "|\n  x"


def test_block_collection_end_mark_lies_after_following_comments() -> None:
    text = "a:\n- 1\n# about b\n\nb: 2\n"
    sequence = root(text).value[0][1]
    assert sequence.end_mark.index == text.index("b:")
    assert content_end(text, sequence) == text.index("- 1") + 3


def test_quoted_scalar_span_includes_the_quotes() -> None:
    text = "a: 'it''s'   # c\nb: \"x\\ty\"\n"
    assert text[slice(*scalar_span(text, value_of(root(text), "a")))] == "'it''s'"
    assert text[slice(*scalar_span(text, value_of(root(text), "b")))] == '"x\\ty"'


# -- locating -----------------------------------------------------------------------------------------


def test_line_end_accepts_blanks_and_a_comment_only() -> None:
    text = "a: 1   # c\r\nb: 2"
    assert line_end(text, 4) == text.index("\r")
    assert line_end(text, len(text)) == len(text)
    with pytest.raises(EditError):
        line_end("a: {b: 1}, c", 9)


def test_content_end_of_a_mapping_ending_in_an_empty_value_is_after_its_colon() -> None:
    text = "a: 1\nb:\n# tail\n"
    assert content_end(text, root(text)) == text.index("b:") + 2


def test_newline_of() -> None:
    assert newline_of("a\r\nb\n") == "\r\n"
    assert newline_of("a\nb\r\n") == "\n"
    assert newline_of("no break") == "\n"


def test_parse_documents_keeps_empty_documents_as_nulls() -> None:
    documents = parse_documents("---\n---\na: 1\n...\n")
    assert [type(d).__name__ for d in documents] == ["ScalarNode", "MappingNode"]


# -- rendering ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    ["1.20", "1", "true", "True", "yes", "on", "off", "n", "null", "Null", "~", "", "1e3", "0x10", "012",
     "08", "0o12", "1:20", "2024-01-01", "1_000", "1.2_3", ".5", ".inf", "+1", "-1", "0b101", "a: b", "x #y", "v1:"],
)  # fmt: skip
def test_values_that_would_not_read_back_as_strings_are_quoted(value: str) -> None:
    assert not reads_as_string(value)
    rendered = render_scalar(value)
    assert rendered.startswith('"')
    assert YAML(typ="safe", pure=True).load(f"k: {rendered}\n") == {"k": value}


@pytest.mark.parametrize("value", ["1.2.3", "v1.20", "latest", "1.0-rc1", "2024.01.02-abc", "sha-1234"])
def test_strings_stay_plain(value: str) -> None:
    assert reads_as_string(value)
    assert render_scalar(value) == value


def test_old_quotes_are_kept() -> None:
    assert render_scalar("1.2.3", style="'") == "'1.2.3'"
    assert render_scalar("1.2.3", style='"') == '"1.2.3"'
    assert render_scalar("it's", style="'") == "'it''s'"
    assert render_scalar('a"b\\c\td', style='"') == r'"a\"b\\c\x09d"'


def test_render_structures() -> None:
    item = {"name": "nginx", "newTag": "1.20"}
    assert render_flow([item]) == '[{name: nginx, newTag: "1.20"}]'
    assert render_block_pair("images", [item], 2) == ["  images:", "  - name: nginx", '    newTag: "1.20"']
    assert render_block_item(item, 4, 4) == ["    -   name: nginx", '        newTag: "1.20"']
    assert render_block_pair("images", [], 0) == ["images: []"]
