"""The splice machinery's newer parts: list items in place, booleans, and a document in an empty file."""

from __future__ import annotations

import pytest
from ruamel.yaml.nodes import MappingNode, SequenceNode

from image_updater.edit.nodes import get_value, mapping_documents, parse_documents
from image_updater.edit.splice import TextEdit, write_new_document
from image_updater.errors import EditError


def edit_of(text: str) -> tuple[TextEdit, MappingNode]:
    documents = parse_documents(text)
    return TextEdit(text, documents, file="f.yaml"), next(mapping_documents(documents))


def test_set_item_keeps_quotes_and_comments() -> None:
    edit, root = edit_of("l:\n  - 'a'   # one\n  - b\n")
    items = get_value(root, "l")
    assert isinstance(items, SequenceNode)
    edit.set_item(items, 0, "x")
    edit.set_item(items, 1, "1.20")
    assert edit.apply() == "l:\n  - 'x'   # one\n  - \"1.20\"\n"


def test_set_item_refuses_what_is_not_a_single_value() -> None:
    edit, root = edit_of("l: [[a], ]\n")
    items = get_value(root, "l")
    assert isinstance(items, SequenceNode)
    with pytest.raises(EditError, match="item 0 of the list"):
        edit.set_item(items, 0, "x")


def test_booleans_are_written_as_booleans() -> None:
    edit, root = edit_of("a: 'x'\n")
    edit.add_pair(root, "b", True)
    edit.set_value(root, "a", False)
    assert edit.apply() == "a: false\nb: true\n"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "a:\n  b: c\n"),
        ("# head\n", "# head\na:\n  b: c\n"),
        ("# head", "# head\na:\n  b: c\n"),
        ("# crlf\r\n\r\n", "# crlf\r\n\r\na:\r\n  b: c\r\n"),
        ("---\n", "---\na:\n  b: c\n"),
    ],
)
def test_a_new_document_goes_after_comments_and_keeps_line_breaks(text: str, expected: str) -> None:
    assert write_new_document(text, {"a": {"b": "c"}}) == expected


@pytest.mark.parametrize("text", ["x: 1\n", "~\n", "a\n---\n"])
def test_a_new_document_never_goes_into_a_file_with_data(text: str) -> None:
    with pytest.raises(EditError):
        write_new_document(text, {"a": "b"})
