"""Reading and setting tags in kustomization ``images:`` entries: reads, shapes, errors, quoting."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from image_updater.edit.kustomization import edit_kustomization, read_kustomization_tag
from image_updater.errors import EditError
from image_updater.model.ref import TAG_PATTERN, parse_image_name

NGINX = parse_image_name("nginx")
DIGEST = "sha256:" + "a" * 64


def edit(text: str, new_tag: str = "1.26.0", **kwargs: str) -> str:
    return edit_kustomization(text, NGINX, new_tag, image_label="nginx", **kwargs).text


# -- reading ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("images:\n- name: nginx\n  newTag: 1.25.3\n", "1.25.3"),
        ("images:\n- name: docker.io/library/nginx\n  newTag: 1.10\n", "1.10"),  # as written, not 1.1
        ("images:\n- name: index.docker.io/library/nginx:ignored\n  newTag: '7'\n", "7"),
        (f"images:\n- name: nginx\n  newTag: 1.0\n  digest: {DIGEST}\n", f"1.0@{DIGEST}"),
        (f"images:\n- name: nginx\n  digest: {DIGEST}\n", f"@{DIGEST}"),
        ("images:\n- name: nginx\n  newTag:\n", None),
        ("images:\n- name: nginx\n  newName: mirror/nginx\n", None),
        ("images:\n- name: nginx-exporter\n  newTag: 1.0\n", None),
        ("images:\n- name: ghcr.io/acme/nginx\n  newTag: 1.0\n", None),
        ("resources: [nginx.yaml]\n", None),
        ("images:\n- name: nginx\n  newTag: 1\n---\nimages:\n- name: nginx\n  newTag: 2\n", "1"),
    ],
)
def test_read_current_tag(text: str, expected: str | None) -> None:
    assert read_kustomization_tag(text, NGINX) == expected


def test_read_with_a_kustomize_name_matches_the_name_exactly() -> None:
    text = "images:\n- name: docker.io/library/nginx\n  newTag: 1\n- name: nginx\n  newTag: 2\n"
    assert read_kustomization_tag(text, NGINX, kustomize_name="nginx") == "2"
    assert read_kustomization_tag(text, NGINX, kustomize_name="docker.io/library/nginx") == "1"
    assert read_kustomization_tag(text, NGINX, kustomize_name="library/nginx") is None


def test_read_skips_a_file_that_cannot_mention_the_image_without_parsing_it() -> None:
    assert read_kustomization_tag("images: [ this is not yaml", parse_image_name("redis")) is None
    with pytest.raises(EditError):
        read_kustomization_tag("images: [ nginx", NGINX)


# -- editing ------------------------------------------------------------------------------------------


def test_an_entry_already_at_the_new_tag_is_no_change() -> None:
    text = "images:\n- name: nginx\n  newTag: '1.26.0'\n"
    result = edit_kustomization(text, NGINX, "1.26.0", image_label="nginx")
    assert result.text is text
    assert result.changes == ()
    assert not result.changed


def test_every_matching_entry_changes_and_changes_are_distinct_by_old_tag() -> None:
    text = "images:\n- name: nginx\n  newTag: 1.0\n- name: docker.io/nginx\n  newTag: 1.0\n"
    result = edit_kustomization(text, NGINX, "2.0.0", image_label="nginx", file="k.yaml")
    assert result.text == text.replace("1.0", "2.0.0")
    assert [c.describe() for c in result.changes] == ["nginx: 1.0 -> 2.0.0"]
    assert result.changes[0].file == "k.yaml"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("images: [{name: nginx}]\n", "images: [{name: nginx, newTag: 1.26.0}]\n"),
        ("images: []\n", "images: [{name: nginx, newTag: 1.26.0}]\n"),
        ("images: ~\n", "images: [{name: nginx, newTag: 1.26.0}]\n"),
        ("images:   # none\nx: 1\n", "images:   # none\n- name: nginx\n  newTag: 1.26.0\nx: 1\n"),
        ("{kind: Kustomization}\n", "{kind: Kustomization, images: [{name: nginx, newTag: 1.26.0}]}\n"),
        ("images:\n- name: nginx\n  newTag: ~\n", "images:\n- name: nginx\n  newTag: 1.26.0\n"),
        ("images:\n- name: nginx\n  newTag: !!str 1\n", "images:\n- name: nginx\n  newTag: !!str 1.26.0\n"),
        ("images:\n- name: nginx\n  newTag: &t 1\nx: *t\n", "images:\n- name: nginx\n  newTag: &t 1.26.0\nx: *t\n"),
        (f"images:\n- digest: {DIGEST}\n  name: nginx\n", "images:\n- name: nginx\n  newTag: 1.26.0\n"),
        (
            f"images: [{{name: nginx, newTag: '1', digest: {DIGEST}}}]\n",
            "images: [{name: nginx, newTag: '1.26.0'}]\n",
        ),
        (
            "\ufeff# café 😀\nimages:\n- name: nginx\n  newTag: 1\n",
            "\ufeff# café 😀\nimages:\n- name: nginx\n  newTag: 1.26.0\n",
        ),
    ],
)  # fmt: skip
def test_shapes(text: str, expected: str) -> None:
    assert edit(text) == expected


def test_a_new_entry_is_named_after_the_kustomize_name_or_the_label() -> None:
    # AIU's override for kustomize.image-name "web" is web=nginx:2: the entry renames web to the image
    text = "images:\n- name: nginx\n  newTag: 1\n"
    result = edit_kustomization(text, NGINX, "2", image_label="nginx", kustomize_name="web")
    assert result.text == text + '- name: web\n  newName: nginx\n  newTag: "2"\n'
    assert [(c.old, c.new) for c in result.changes] == [(None, "2")]
    result = edit_kustomization("kind: Kustomization\n", NGINX, "2", image_label="docker.io/nginx")
    assert result.text == 'kind: Kustomization\nimages:\n- name: docker.io/nginx\n  newTag: "2"\n'


def test_a_digest_is_set_beside_the_tag() -> None:
    text = f"images:\n- name: nginx\n  newTag: 1\n  digest: sha256:{'b' * 64}\n"
    assert edit(text, f"1.26.0@{DIGEST}") == f"images:\n- name: nginx\n  newTag: 1.26.0\n  digest: {DIGEST}\n"


@settings(max_examples=200, deadline=None)
@given(st.from_regex(TAG_PATTERN, fullmatch=True))
def test_any_valid_tag_reads_back_as_the_same_string(tag: str) -> None:
    for text in ("images:\n- name: nginx\n  newTag: x\n", "images:\n- name: nginx\n", "kind: K\n"):
        written = edit(text, tag)
        assert read_kustomization_tag(written, NGINX) == tag
        for version in ((1, 1), (1, 2)):
            yaml = YAML(typ="safe", pure=True)
            yaml.version = version
            assert yaml.load(written)["images"][-1]["newTag"] == tag


# -- errors -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("images: [nginx\n", "not valid YAML"),
        ("- nginx\n", r"document 1 \(line 1\) is a list, not a mapping"),
        ("kind: Kustomization\n---\nnginx\n", r"document 2 \(line 3\) is a single value, not a mapping"),
        ("images: nginx\n", r"images \(line 1\) is not a list"),
        ("images:\n- nginx\n", r"an images entry \(line 2\) is not a mapping"),
        ("images:\n-\n- name: nginx\n", "is empty"),
        ("images:\n- newTag: 1\n- name: nginx\n", "has no name"),
        ("images:\n- name: [nginx]\n", "name .* is not a single value"),
        ("images:\n- name: nginx\n  newTag: {a: 1}\n", r"newTag \(line 3\) is not a single value"),
        ("images:\n- name: nginx\n  newTag: 1\n  newTag: 2\n", "duplicate key 'newTag'"),
        ("", "no kustomization document"),
        ("---\n# nginx\n", "no kustomization document"),
        ("a: &x 1\nb: *x\n", "cannot add after an alias"),
    ],
)
def test_errors(text: str, message: str) -> None:
    with pytest.raises(EditError, match=message) as caught:
        edit_kustomization(text, NGINX, "1.26.0", image_label="nginx", file="apps/web/kustomization.yaml")
    assert caught.value.path == "apps/web/kustomization.yaml"


def test_an_invalid_new_tag_is_refused() -> None:
    with pytest.raises(EditError, match="cannot write tag"):
        edit("images:\n- name: nginx\n  newTag: 1\n", "1.0 # comment")
    with pytest.raises(EditError, match="cannot write tag"):
        edit("images:\n- name: nginx\n  newTag: 1\n", "1.0@md5:zz")
