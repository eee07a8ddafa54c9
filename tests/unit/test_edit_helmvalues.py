"""Helm values: keys with dots and list indexes, the spec key, the name key, new keys, refusals."""

from __future__ import annotations

import pytest

from image_updater.edit.helmvalues import HelmKeys, edit_helm_values, parse_key, read_helm_tag
from image_updater.errors import EditError
from image_updater.model.ref import parse_image_name

NGINX = parse_image_name("nginx")
KEYS = HelmKeys.of(spec=None, name="image.repository", tag="image.tag")


def edit(text: str, new_tag: str = "1.26.0", keys: HelmKeys = KEYS, image: str = "nginx") -> str:
    return edit_helm_values(text, parse_image_name(image), new_tag, keys=keys, image_label=image).text


@pytest.mark.parametrize(
    ("key", "parts"),
    [("image.tag", ["image", "tag"]), ("a.b[0].c", ["a", "b", 0, "c"]), ("m[1][2]", ["m", 1, 2]), ("x", ["x"])],
)
def test_parse_key(key: str, parts: list[str | int]) -> None:
    assert parse_key(key) == parts


@pytest.mark.parametrize("key", ["", "a..b", "a[x]", "a[1", "[0]", "a.[0]"])
def test_a_malformed_key_is_refused(key: str) -> None:
    with pytest.raises(EditError, match="invalid Helm values key"):
        parse_key(key)


def test_aiu_defaults_and_which_name_keys_are_created() -> None:
    assert HelmKeys.of(spec=None, name=None, tag=None) == HelmKeys("image.name", "image.tag", None, False)
    assert HelmKeys.of(spec="s", name="n", tag="t") == HelmKeys(None, None, "s", False)
    # a chart keeping its image in image.repository must not grow AIU's default image.name
    text = "image:\n  repository: nginx\n  tag: 1.0\n"
    assert edit(text, keys=HelmKeys.of(spec=None, name=None, tag=None)) == text.replace("1.0", "1.26.0")
    assert edit("image:\n  tag: 1.0\n") == "image:\n  tag: 1.26.0\n  repository: nginx\n"


def test_the_name_key_is_set_only_when_it_names_another_image() -> None:
    text = "image:\n  repository: docker.io/library/nginx\n  tag: 1.0\n"
    assert edit(text) == text.replace("1.0", "1.26.0")
    other = "image:\n  repository: mirror.example.com/nginx\n  tag: 1.0\n"
    assert edit(other) == "image:\n  repository: nginx\n  tag: 1.26.0\n"


def test_reading() -> None:
    text = "image:\n  repository: nginx\n  tag: 1.10\napp: {image: 'nginx:2@sha256:" + "a" * 64 + "'}\n"
    assert read_helm_tag(text, NGINX, KEYS) == "1.10"
    assert read_helm_tag(text, NGINX, HelmKeys.of(spec="app.image", name=None, tag=None)) == "2@sha256:" + "a" * 64
    assert read_helm_tag(text, parse_image_name("redis"), HelmKeys.of(spec="app.image", name=None, tag=None)) is None
    assert read_helm_tag("image:\n  tag:\n", NGINX, KEYS) is None
    assert read_helm_tag("", NGINX, KEYS) is None


def test_the_spec_key_keeps_the_name_as_written_or_takes_the_image() -> None:
    keys = HelmKeys.of(spec="image", name=None, tag=None)
    assert edit("image: docker.io/library/nginx:1.0\n", keys=keys) == "image: docker.io/library/nginx:1.26.0\n"
    assert edit("image: redis:7\n", keys=keys) == "image: nginx:1.26.0\n"
    assert edit("other: 1\n", keys=keys) == "other: 1\nimage: nginx:1.26.0\n"


def test_nothing_changes_when_the_tag_is_current() -> None:
    text = "image:\n  repository: nginx\n  tag: '1.26.0'\n"
    result = edit_helm_values(text, NGINX, "1.26.0", keys=KEYS, image_label="nginx")
    assert result.text is text and result.changes == ()


def test_a_null_parent_gets_the_new_keys_beneath_it() -> None:
    assert edit("image:\nother: 1\n") == "image:\n  repository: nginx\n  tag: 1.26.0\nother: 1\n"
    assert edit("image: ~\n") == "image: {repository: nginx, tag: 1.26.0}\n"


def test_tags_that_would_read_as_numbers_are_quoted() -> None:
    assert edit("image:\n  repository: nginx\n  tag: 1.19\n", "1.20") == 'image:\n  repository: nginx\n  tag: "1.20"\n'


def test_a_value_shared_through_an_alias_is_edited_at_its_anchor() -> None:
    text = "base: &img\n  repository: nginx\n  tag: 1.0\nweb:\n  image: *img\n"
    keys = HelmKeys.of(spec=None, name="web.image.repository", tag="web.image.tag")
    assert edit(text, keys=keys) == text.replace("tag: 1.0", "tag: 1.26.0")


@pytest.mark.parametrize(
    ("text", "key", "message"),
    [
        ("w: [a]\n", "w[3].tag", "has no item 3"),
        ("w: {a: 1}\n", "w[0].tag", "not a list"),
        ("image: nginx\n", "image.tag", "is not a mapping"),
        ("image:\n  tag: [1]\n", "image.tag", "is not a single value"),
        ("other: 1\n", "w[0].tag", "cannot create a list item"),
        ("a: 1\n---\nb: 2\n", "image.tag", "holds one document"),
        ("- a\n", "image.tag", "not a mapping"),
    ],
)
def test_shapes_that_do_not_fit_are_refused(text: str, key: str, message: str) -> None:
    with pytest.raises(EditError, match=message):
        edit(text, keys=HelmKeys.of(spec=None, name=None, tag=key))


def test_two_writes_below_one_new_parent_make_one_block() -> None:
    keys = HelmKeys.of(spec=None, name="a.b.repository", tag="a.b.tag")
    assert edit("a:\n  x: 1\n", keys=keys) == "a:\n  x: 1\n  b:\n    repository: nginx\n    tag: 1.26.0\n"
