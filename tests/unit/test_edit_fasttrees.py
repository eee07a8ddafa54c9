"""libyaml's own composer for plain texts gives ruamel.yaml's trees, marks, reads and edits.

Readers and editors take PyYAML's trees from libyaml's composer when a text is plain
(:func:`~image_updater.edit.fastcompose.plain_documents`). These tests hold them to what ruamel.yaml's
tree gives, over every golden file and over texts in many layouts (:mod:`tests.unit.yamlgen`): the same
tree (kinds, tags, values, styles), the same marks for every node an edit locates, the same tag from
every reader and the same edit (text and changes, or error) from every editor. They also hold the
limits: what is not plain, the depth bound, the node count a plain text can reach.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from image_updater.edit import fastcompose, splice
from image_updater.edit.argocd_source import SourceKind, edit_argocd_source, read_argocd_source_tag
from image_updater.edit.fastcompose import (
    MAX_EXPANDED_NODES,
    PLAIN_MAX_CHARS,
    PLAIN_MAX_DEPTH,
    depth_bound,
    fast_documents,
    is_plain,
    plain_documents,
)
from image_updater.edit.helmvalues import HelmKeys, edit_helm_values, read_helm_tag
from image_updater.edit.kustomization import edit_kustomization, read_kustomization_tag
from image_updater.edit.layout import is_empty, scalar_span
from image_updater.edit.manifests import edit_manifests, read_manifest_tags
from image_updater.edit.nodes import AnyNode, Scalar, check_expansion, children, kind_name, parse_documents
from image_updater.errors import EditError
from image_updater.model.ref import parse_image_name
from tests.unit import yamlgen
from tests.unit.test_edit_fastcompose import TRICKY
from tests.unit.test_edit_golden import CASES, GOLDEN, Case, read, run

SLOW = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
NGINX = parse_image_name("nginx")


def golden_texts() -> list[Path]:
    return sorted(p for p in GOLDEN.glob("*/*") if p.suffix in (".yaml", ".yml") or p.name == "Kustomization")


def text_of(path: Path) -> str:
    with path.open(newline="", encoding="utf-8") as handle:
        return handle.read()


@contextmanager
def exact_trees() -> Iterator[None]:
    """Every reader and editor on the trees they took before libyaml's composer: no text is plain."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(fastcompose, "plain_documents", lambda text: None)
        patch.setattr(splice, "plain_documents", lambda text: None)
        yield


def outcome(call: Callable[[], Any]) -> Any:
    """What ``call`` returns, or the words of the :class:`EditError` it raises."""
    try:
        return call()
    except EditError as e:
        return ("error", str(e))


# -- trees and marks ----------------------------------------------------------------------------------


def pairs(exact: AnyNode, fast: AnyNode, seen: set[int]) -> Iterator[tuple[AnyNode, AnyNode]]:
    if id(exact) in seen:
        return
    seen.add(id(exact))
    yield exact, fast
    for a, b in zip(children(exact), children(fast), strict=True):
        yield from pairs(a, b, seen)


def same_trees_and_marks(text: str) -> bool:
    """Compare libyaml's tree of a plain ``text`` with ruamel.yaml's; ``False`` when it is not plain."""
    try:
        exact = parse_documents(text, file="f.yaml")
    except EditError as e:
        with pytest.raises(EditError) as got:
            fast_documents(text, file="f.yaml")
        assert str(got.value) == str(e)
        return False
    fast = plain_documents(text)
    if fast is None:
        return False
    assert len(fast) == len(exact)
    for a, b in (pair for x, y in zip(exact, fast, strict=True) for pair in pairs(x, y, set())):
        assert (kind_name(a), str(a.tag)) == (kind_name(b), str(b.tag))
        if isinstance(a, Scalar):
            assert (a.value, a.style or None) == (b.value, b.style or None)
        else:
            assert a.flow_style == b.flow_style
        if is_empty(a):  # its marks are the next token's in ruamel.yaml; the editors never use them
            continue
        start = (a.start_mark.index, a.start_mark.line, a.start_mark.column)
        assert start == (b.start_mark.index, b.start_mark.line, b.start_mark.column), (a, text)
        if isinstance(a, Scalar):
            assert a.end_mark.index == b.end_mark.index, (a, text)
            assert outcome(lambda a=a: scalar_span(text, a)) == outcome(lambda b=b: scalar_span(text, b))
        elif a.flow_style:
            assert a.end_mark.index == b.end_mark.index, (a, text)
    return True


@pytest.mark.parametrize("path", golden_texts(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_golden_files_compose_alike_with_ruamels_marks(path: Path) -> None:
    text = text_of(path)
    assert same_trees_and_marks(text) == is_plain(text)


@pytest.mark.parametrize("text", [*TRICKY, "a: \U0001f600 x\nb: [\U0001f600, 'é']\nc: d\n"])
def test_tricky_texts_compose_alike_with_ruamels_marks(text: str) -> None:
    same_trees_and_marks(text)


@SLOW
@given(text=yamlgen.texts())
def test_texts_in_many_layouts_compose_alike_with_ruamels_marks(text: str) -> None:
    same_trees_and_marks(text)


@settings(max_examples=150, deadline=None)
@given(value=yamlgen.values, style=st.sampled_from([None, "'", '"', "|", ">"]), flow=st.sampled_from([None, False]))
def test_whatever_ruamel_dumps_composes_alike(value: Any, style: str | None, flow: bool | None) -> None:
    import io

    from ruamel.yaml import YAML

    yaml = YAML(typ="safe", pure=True)
    yaml.default_style = style
    yaml.default_flow_style = flow
    out = io.StringIO()
    yaml.dump({"root": value}, out)
    same_trees_and_marks(out.getvalue())


# -- what is plain ------------------------------------------------------------------------------------

NOT_PLAIN = [
    "a: &x 1\nb: *x\n",
    "a: !!str 1\n",
    "%YAML 1.2\n---\na: 1\n",
    "\ufeffa: 1\n",
    "a: 1\rb: 2\r",
    "a: 1\x85b: 2\n",
    "a: 1\u2028b: 2\n",
    "- " * 50 + "x\n",
    "a: " + "[" * 50 + "]" * 50 + "\n",
    "".join(" " * n + f"k{n}:\n" for n in range(0, 100, 2)) + " " * 100 + "v: 1\n",
    "a: " + "x" * PLAIN_MAX_CHARS + "\n",
]


@pytest.mark.parametrize("text", NOT_PLAIN, ids=range(len(NOT_PLAIN)))
def test_texts_that_need_care_are_not_plain_and_read_as_before(text: str) -> None:
    assert plain_documents(text) is None
    assert outcome(lambda: fast_documents(text)) == outcome(lambda: fastcompose.read_documents(text))


def test_a_text_that_does_not_parse_is_not_plain() -> None:
    assert is_plain("a: [\n") and plain_documents("a: [\n") is None


def depth(node: AnyNode) -> int:
    return 1 + max((depth(child) for child in children(node)), default=0)


@SLOW
@given(text=yamlgen.texts())
def test_the_depth_bound_bounds_the_depth(text: str) -> None:
    documents = plain_documents(text)
    if documents is not None:
        assert max((depth(d) for d in documents), default=0) <= depth_bound(text)
    assert fastcompose._shallow(text) == (depth_bound(text) <= PLAIN_MAX_DEPTH)


@pytest.mark.parametrize(
    "text",
    ["- - - - - x\n", "a:\n- b:\n  - - c: [d, {e: [f]}]\n", "? - a\n: - b\n", "[a: [b: {c: d}]]\n", "x\n"],
)
def test_the_depth_bound_bounds_compact_and_flow_nesting(text: str) -> None:
    documents = plain_documents(text)
    assert documents is not None
    assert max(depth(d) for d in documents) <= depth_bound(text)


@pytest.mark.parametrize(
    ("head", "unit", "tail"), [("", "?\n", ""), ("", "- \n", ""), ("", "-\n", ""), ("{", "a,", "}"), ("[", "[],", "]")]
)
def test_a_plain_text_cannot_reach_the_node_limit(head: str, unit: str, tail: str) -> None:
    # the densest texts known hold about one node per character
    text = head + unit * ((PLAIN_MAX_CHARS - 2) // len(unit)) + tail
    documents = plain_documents(text)
    assert documents is not None
    assert check_expansion(documents) < MAX_EXPANDED_NODES // 2


# -- readers ------------------------------------------------------------------------------------------


def read_everything(text: str) -> list[Any]:
    """What every reader says about ``nginx`` in ``text``."""
    keys = [HelmKeys(), HelmKeys.of(spec="image", name=None, tag=None), HelmKeys.of(spec=None, name="a.b", tag="a.c")]
    return [
        outcome(lambda: read_kustomization_tag(text, NGINX)),
        outcome(lambda: read_kustomization_tag(text, NGINX, kustomize_name="nginx")),
        outcome(lambda: read_manifest_tags(text, NGINX)),
        *(outcome(lambda k=k: read_helm_tag(text, NGINX, k)) for k in keys),
        *(outcome(lambda kind=kind: read_argocd_source_tag(text, NGINX, kind=kind)) for kind in SourceKind),
    ]


def reads_alike(text: str) -> None:
    fast = read_everything(text)
    with exact_trees():
        assert read_everything(text) == fast


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_golden_reads_are_the_same_on_either_tree(case: Case) -> None:
    text = text_of(GOLDEN / case.name / "input.yaml")
    fast = outcome(lambda: read(case, text))
    reads_alike(text)
    with exact_trees():
        assert outcome(lambda: read(case, text)) == fast


#: documents like the targets' (kustomizations, workloads, Helm values, .argocd-source files), with extras
image_names = st.sampled_from(["nginx", "docker.io/library/nginx", "redis", "web"])
tags = st.sampled_from(["1.25.3", "1.20", "", None, "latest"])
images_entries = st.lists(
    st.fixed_dictionaries({"name": image_names}, optional={"newTag": tags, "newName": image_names, "x": tags}),
    max_size=3,
)
containers = st.lists(
    st.fixed_dictionaries(
        {"name": st.sampled_from(["web", "side"]), "image": st.sampled_from(["nginx:1.25.3", "nginx", "redis:7"])},
        optional={"ports": st.lists(st.fixed_dictionaries({"containerPort": st.integers(1, 9)}), max_size=2)},
    ),
    min_size=1,
    max_size=3,
)
target_documents = st.one_of(
    st.fixed_dictionaries(
        {"kind": st.just("Kustomization"), "images": images_entries},
        optional={"resources": st.lists(yamlgen.words, max_size=2), "extra": yamlgen.values},
    ),
    st.fixed_dictionaries(
        {
            "kind": st.sampled_from(["Deployment", "Job"]),
            "spec": st.fixed_dictionaries(
                {"template": st.fixed_dictionaries({"spec": st.fixed_dictionaries({"containers": containers})})}
            ),
        },
        optional={"metadata": st.fixed_dictionaries({"name": yamlgen.words})},
    ),
    st.fixed_dictionaries(
        {"image": st.fixed_dictionaries({"repository": image_names}, optional={"tag": tags, "pullPolicy": tags})},
        optional={
            "app": st.fixed_dictionaries({"image": st.sampled_from(["nginx:1.0", "redis:1"])}),
            "x": yamlgen.values,
        },
    ),
    st.fixed_dictionaries(
        {"kustomize": st.fixed_dictionaries({"images": st.lists(st.sampled_from(["nginx:1.25.3", "web=nginx:1"]))})},
        optional={
            "helm": st.fixed_dictionaries(
                {
                    "parameters": st.lists(
                        st.fixed_dictionaries({"name": st.sampled_from(["image.tag", "image.name"]), "value": tags}),
                        max_size=2,
                    )
                }
            )
        },
    ),
)


@SLOW
@given(text=yamlgen.texts(target_documents))
def test_every_reader_reads_the_same_on_either_tree(text: str) -> None:
    reads_alike(text)


# -- editors ------------------------------------------------------------------------------------------


@pytest.fixture
def exact_parses(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The texts the editors compose with ruamel.yaml."""
    parsed: list[str] = []
    real = splice.parse_documents

    def counting(text: str, *, file: str = "") -> list[AnyNode]:
        parsed.append(text)
        return real(text, file=file)

    monkeypatch.setattr(splice, "parse_documents", counting)
    return parsed


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_golden_edits_are_made_on_libyamls_tree_when_plain_and_the_same_on_ruamels(
    case: Case, exact_parses: list[str]
) -> None:
    text = text_of(GOLDEN / case.name / "input.yaml")
    fast = outcome(lambda: run(case, text))
    if is_plain(text):
        assert exact_parses == [], "a plain golden file was edited on ruamel.yaml's tree"
    with exact_trees():
        assert outcome(lambda: run(case, text)) == fast


def edit_everything(text: str) -> list[Any]:
    """Every editor's result of setting ``nginx`` to a new tag in ``text``."""
    label = {"image_label": "nginx", "file": "f.yaml"}
    return [
        outcome(lambda: edit_kustomization(text, NGINX, "1.26.0", **label)),
        outcome(lambda: edit_kustomization(text, NGINX, "1.20", kustomize_name="web", **label)),
        outcome(lambda: edit_manifests(text, NGINX, "1.26.0", **label)),
        outcome(lambda: edit_helm_values(text, NGINX, "1.26.0", keys=HelmKeys(), **label)),
        outcome(
            lambda: edit_helm_values(text, NGINX, "2", keys=HelmKeys.of(spec="app.image", name=None, tag=None), **label)
        ),
        *(
            outcome(lambda kind=kind: edit_argocd_source(text, NGINX, "1.26.0", kind=kind, **label))
            for kind in SourceKind
        ),
    ]


def edits_alike(text: str) -> None:
    fast = edit_everything(text)
    with exact_trees():
        assert edit_everything(text) == fast


@SLOW
@given(text=yamlgen.texts(target_documents))
def test_every_editor_edits_the_same_on_either_tree(text: str) -> None:
    edits_alike(text)


@SLOW
@given(text=yamlgen.texts())
def test_editors_do_the_same_on_either_tree_with_any_content(text: str) -> None:
    edits_alike(text)


def test_an_edit_at_an_empty_value_is_left_to_ruamels_marks(exact_parses: list[str]) -> None:
    # libyaml puts an empty value's marks where it is, ruamel.yaml at the next token: the layout of a
    # list whose first item is empty is read from ruamel's tree
    text = "images:\n-\n- name: redis\n"
    edits_alike(text)
    assert exact_parses
