"""Splicing, verification by re-parse, and the bounds on what a file may make the editors do."""

from __future__ import annotations

import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ruamel.yaml.nodes import MappingNode

from image_updater.edit import compare
from image_updater.edit import splice as splice_module
from image_updater.edit.fastcompose import fast_documents
from image_updater.edit.nodes import (
    MAX_EXPANDED_NODES,
    STR_TAG,
    AnyNode,
    Scalar,
    check_expansion,
    children,
    mapping_documents,
    parse_documents,
)
from image_updater.edit.splice import Replacement, TextEdit, splice
from image_updater.errors import EditError
from tests.unit import yamlgen


def edit_of(text: str) -> tuple[TextEdit, MappingNode]:
    documents = parse_documents(text)
    return TextEdit(text, documents, file="f.yaml"), next(mapping_documents(documents))


def test_splice_keeps_the_order_of_insertions_at_one_offset() -> None:
    text = "abcdef"
    replacements = [Replacement(3, 3, "1"), Replacement(1, 2, "B"), Replacement(3, 3, "2"), Replacement(3, 4, "D")]
    assert splice(text, replacements) == "aBc12Def"


def test_splice_refuses_overlaps() -> None:
    with pytest.raises(EditError, match="overlapping"):
        splice("abcdef", [Replacement(1, 4, "x"), Replacement(2, 3, "y")])


def test_no_replacement_returns_the_text_unparsed_again() -> None:
    edit, _ = edit_of("a: 1\n")
    assert not edit.changed
    assert edit.apply() == "a: 1\n"


def test_set_value_keeps_everything_else() -> None:
    text = "# c\r\na: 1.0  # why\r\nb: 'x'\r\n"
    edit, mapping = edit_of(text)
    edit.set_value(mapping, "a", "1.20")
    edit.set_value(mapping, "b", "y")
    assert edit.apply() == "# c\r\na: \"1.20\"  # why\r\nb: 'y'\r\n"


def test_remove_pair_takes_its_line_and_comment() -> None:
    edit, mapping = edit_of("a: 1\nb: 2  # gone\nc: 3\n")
    edit.remove_pair(mapping, "b")
    assert edit.apply() == "a: 1\nc: 3\n"


def test_remove_last_pair_keeps_a_missing_final_newline() -> None:
    edit, mapping = edit_of("a: 1\r\nb: 2")
    edit.remove_pair(mapping, "b")
    assert edit.apply() == "a: 1"


def test_add_pairs_after_one_another() -> None:
    edit, mapping = edit_of("a: 1\nz: 2\n")
    edit.add_pair(mapping, "b", "x", after="a")
    edit.add_pair(mapping, "c", "v", after="b")
    assert edit.apply() == "a: 1\nb: x\nc: v\nz: 2\n"


def test_add_pairs_to_an_empty_flow_mapping() -> None:
    edit, mapping = edit_of("a: {}\n")
    inner = mapping.value[0][1]
    edit.add_pair(inner, "b", "1.0")
    edit.add_pair(inner, "c", "x", after="b")
    assert edit.apply() == 'a: {b: "1.0", c: x}\n'


def test_conflicting_edits_of_one_node_are_refused() -> None:
    edit, mapping = edit_of("a: &x 1\nb: *x\n")
    edit.set_value(mapping, "a", "2")
    edit.set_value(mapping, "b", "2")  # the same node through the alias: one edit
    with pytest.raises(EditError, match="conflicting"):
        edit.set_value(mapping, "b", "3")
    assert edit.apply() == 'a: &x "2"\nb: *x\n'


def test_verification_refuses_a_text_that_changed_more(monkeypatch: pytest.MonkeyPatch) -> None:
    # Pretend the renderer forgot to quote: 1.20 would read back as a float, and the edit is refused.
    monkeypatch.setattr(splice_module, "render_scalar", lambda value, style=None: value)
    edit, mapping = edit_of("a: x\n")
    edit.set_value(mapping, "a", "1.20")
    with pytest.raises(EditError, match="change more than the intended values") as caught:
        edit.apply()
    assert caught.value.path == "f.yaml"


def test_verification_refuses_an_insertion_that_would_change_a_kept_block_scalar() -> None:
    edit, mapping = edit_of("a: |+\n  keep\n\n")
    edit.add_pair(mapping, "b", "x")
    with pytest.raises(EditError, match="file left untouched"):
        edit.apply()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a: [\n", r"not valid YAML: .*\(line 2, column 1\)"),
        ("a: b: c\n", "not valid YAML"),
        ("a: *nowhere\n", "undefined alias"),
        ("a:\tb\n\x00", "not valid YAML"),
        ("a: " + "[" * 200 + "]" * 200 + "\n", "maximum depth"),
    ],
)
def test_unparsable_text_is_an_edit_error(text: str, message: str) -> None:
    with pytest.raises(EditError, match=message) as caught:
        parse_documents(text, file="apps/web/kustomization.yaml")
    assert str(caught.value).startswith("apps/web/kustomization.yaml: ")


def test_a_recursive_alias_is_refused() -> None:
    with pytest.raises(EditError, match="recursive alias"):
        parse_documents("a: &a [1, *a]\n")


def billion_laughs() -> str:
    lines = ['l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]" for i in range(1, 10)]
    return "\n".join(lines) + "\n"


def test_an_alias_bomb_is_refused_cheaply() -> None:
    start = time.perf_counter()
    with pytest.raises(EditError, match="expands past"):
        parse_documents(billion_laughs())
    assert time.perf_counter() - start < 1.0


def test_shared_nodes_are_counted_once_per_reference_not_copied() -> None:
    documents = parse_documents("a: &a [1, 2, 3]\nb: *a\nc: *a\n")
    assert check_expansion(documents) == 1 + 3 + 3 * (1 + 3)  # root, keys, each list expanded
    assert MAX_EXPANDED_NODES >= 100_000


def test_a_non_mapping_document_is_reported() -> None:
    with pytest.raises(EditError, match=r"document 2 \(line 3\) is a list, not a mapping"):
        list(mapping_documents(parse_documents("a: 1\n---\n- b\n"), file="f.yaml"))


# -- verification by walking both trees side by side --------------------------------------------------


def canon_says(before: list, after: list, replaced: dict[int, object]) -> bool:
    return compare.canon_all(before, replaced)[0] == compare.canon_all(after, {})[0]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(first=yamlgen.texts(), second=yamlgen.texts(), data=st.data())
def test_walking_both_trees_says_what_comparing_their_data_says(first: str, second: str, data: st.DataObject) -> None:
    try:
        before = parse_documents(first)
        others = [parse_documents(second), fast_documents(first), parse_documents(first)]
    except EditError:
        return
    scalars = [n for d in before for n in walk(d) if isinstance(n, Scalar)]
    replaced: dict[int, object] = {}
    if scalars and data.draw(st.booleans()):
        node = data.draw(st.sampled_from(scalars))
        replaced[id(node)] = data.draw(st.sampled_from([(str(node.tag), str(node.value)), (STR_TAG, "x"), None]))
        if replaced[id(node)] is None:
            replaced[id(node)] = compare.data_of(["x", {"k": True}])
    for after in others:
        assert compare.same_but_replaced(before, after, replaced) == canon_says(before, after, replaced)


def walk(node: AnyNode, seen: set[int] | None = None) -> list[AnyNode]:
    seen = set() if seen is None else seen
    if id(node) in seen:
        return []
    seen.add(id(node))
    return [node, *(n for child in children(node) for n in walk(child, seen))]


def test_walking_both_trees_compares_each_alias_where_it_is() -> None:
    before = parse_documents("a: &x [1, 2]\nb: *x\n")
    assert compare.same_but_replaced(before, parse_documents("a: [1, 2]\nb: [1, 2]\n"), {})
    assert not compare.same_but_replaced(before, parse_documents("a: &x [1, 2]\nb: [1, 3]\n"), {})
    assert not compare.same_but_replaced(before, parse_documents("a: [1, 2]\n"), {})
